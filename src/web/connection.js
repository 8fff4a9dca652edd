// The WebSocket and its lifecycle: connecting → open → reconnecting (backoff with
// jitter, no attempt limit) → open …, or ended for close code 4404.

const MAX_DELAY_MS = 15000;
const BASE_DELAY_MS = 500;
export const CLOSE_SESSION_GONE = 4404;
export const CLOSE_TOO_MANY_TABS = 4429;
const CLOSE_TEST_DROP = 4000;

export class Connection {
  /** onOpen() after each successful open, onMessage(text) per frame, onState(state, code) on changes. */
  constructor(url, { onOpen, onMessage, onState }) {
    this.url = url;
    this.onOpen = onOpen;
    this.onMessage = onMessage;
    this.onState = onState;
    this.state = "connecting";
    this.attempt = 0;
    this.ws = null;
    this.timer = null;
  }

  start() {
    // A network coming back or the tab becoming visible is a good moment to try at once instead of
    // waiting out a long backoff.
    window.addEventListener("online", () => this.tryNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.tryNow();
    });
    this.connect();
  }

  get isOpen() {
    return this.state === "open" && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  send(text) {
    if (this.isOpen) this.ws.send(text);
  }

  /** Test hook: a close the client treats exactly like a network drop. */
  drop() {
    if (this.ws) this.ws.close(CLOSE_TEST_DROP, "drop");
  }

  connect() {
    this.timer = null;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      console.error("ui-gateway: cannot open the WebSocket", e);
      this.closed(1006);
      return;
    }
    this.ws = ws;
    let framed = false;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.setState("open", 0);
      this.onOpen();
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      // The backoff restarts only once a connection has proved useful (a frame arrived), so a server
      // that accepts and immediately closes does not get hammered.
      if (!framed) {
        framed = true;
        this.attempt = 0;
      }
      this.onMessage(ev.data);
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.closed(ev.code);
    };
  }

  closed(code) {
    if (code === CLOSE_SESSION_GONE) {
      this.setState("ended", code);
      return;
    }
    this.setState("reconnecting", code);
    const k = this.attempt++;
    const delay = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** k) * (0.5 + Math.random() / 2);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  tryNow() {
    if (this.state !== "reconnecting" || this.ws !== null) return;
    clearTimeout(this.timer);
    this.connect();
  }

  setState(state, code) {
    this.state = state;
    this.onState(state, code);
  }
}
