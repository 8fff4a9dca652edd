// The outgoing queue: one FIFO, sent in enqueue order so a create always precedes
// every use of its id. A message entering an empty queue arms a 10 ms flush; an action flushes
// everything at once with userEvent:true.

const FLUSH_DELAY_MS = 10;

export class Outbox {
  /**
   * send(text) writes one frame; canSend() says whether the socket is open (nothing is queued
   * otherwise); changed() is told whenever the queue's emptiness may have changed.
   */
  constructor({ send, canSend, changed }) {
    this.send = send;
    this.canSend = canSend;
    this.changed = changed;
    this.queue = [];
    this.timer = null;
  }

  get size() {
    return this.queue.length;
  }

  enqueue(type, data) {
    if (!this.canSend()) return;
    this.queue.push({ type, data });
    if (this.timer === null) {
      this.timer = setTimeout(() => this.flush(false), FLUSH_DELAY_MS);
      this.changed();
    }
  }

  flush(userEvent) {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.queue.length === 0) return;
    const messages = this.queue;
    this.queue = [];
    if (this.canSend()) this.send(JSON.stringify({ userEvent, messages }));
    this.changed();
  }

  /** Drops whatever was not sent (a dropped connection loses unsent edits). */
  clear() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.queue = [];
    this.changed();
  }
}
