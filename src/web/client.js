// The client: one per page. Owns the connection, the store, the viewdefs and the root view, applies
// incoming frames, and re-bootstraps on every successful open without reloading the page.
import { CLOSE_TOO_MANY_TABS, Connection } from "./connection.js";
import { Outbox } from "./outbox.js";
import { devMode, Problems } from "./problems.js";
import { Router } from "./router.js";
import { Reveal } from "./reveal.js";
import { Scroller } from "./scroll.js";
import { sessionEndedMessage, StatusArea } from "./status.js";
import { Store } from "./store.js";
import { readable } from "./values.js";
import { View } from "./view.js";
import { Viewdefs } from "./viewdefs.js";

const LOST_NOTICE_DELAY_MS = 1000;
const ERROR_NOTICE_MS = 10000;
// In development, a page whose app did not start asks again this often: a save that fixes main.lua
// (hot reload reruns it) then shows the app without a reload.
const APP_RETRY_MS = 1500;
export const WAITING_MESSAGE = "Waiting for the application…";

export class Client {
  constructor({ appRoot, socketUrl }) {
    this.appRoot = appRoot;
    this.store = new Store();
    this.viewdefs = new Viewdefs();
    this.views = new Set();
    this.pending = new Set(); // views whose type has no viewdef yet
    this.valueSyncs = new WeakMap(); // element → its two-way ui-value's sync (docs/attributes.md "ui-value")
    this.nextElementId = 1; // page-wide, never reset: ids stay unique across reconnections
    this.root = null;
    this.router = null; // URL paths, once variable 1 says the app registered some
    this.status = new StatusArea();
    this.problems = new Problems({ dev: devMode(), status: this.status });
    this.appRetry = null;
    this.waiting = false; // connected mode: no backend has created variable 1 yet
    this.scroller = new Scroller();
    this.reveal = new Reveal({ update: () => this.refreshBusy(), changed: (n) => this.changed(n) });
    this.lostTimer = null;
    this.lastCloseCode = 0;
    this.conn = socketUrl
      ? new Connection(socketUrl, {
          onOpen: () => this.bootstrap(),
          onMessage: (text) => this.receive(text),
          onState: (state, code) => this.stateChanged(state, code),
        })
      : null;
    this.outbox = new Outbox({
      send: (text) => this.conn.send(text),
      canSend: () => this.isOpen(),
      changed: () => this.refreshBusy(),
    });
  }

  start() {
    if (this.conn) this.conn.start();
    else this.stateChanged("ended", 0);
  }

  get state() {
    return this.conn ? this.conn.state : "ended";
  }

  isOpen() {
    return this.conn !== null && this.conn.isOpen;
  }

  // ---- services used by views and bindings ----

  elementId(el) {
    if (!el.id) el.id = `ui-${this.nextElementId++}`;
    return el.id;
  }

  /** Creates a client variable under `parentId`; readable ones keep the page busy until they arrive. */
  createVar(parentId, props, anchor) {
    const id = this.store.allocate();
    this.store.add(id, parentId, props);
    this.outbox.enqueue("create", { id, parentId, properties: props });
    if (readable(props.access)) this.reveal.expect(id, anchor);
    return id;
  }

  /** Local destroy: only the top variable is sent; it and its descendants go at once. */
  destroyVar(id) {
    if (!this.store.get(id)) return;
    this.outbox.enqueue("destroy", { varId: id });
    for (const rec of this.store.drop(id)) this.reveal.arrived(rec.id);
  }

  /** Write-back (docs/attributes.md "ui-value"): the cache takes the value, no watcher is told, normal flush. */
  write(id, value) {
    this.store.setLocal(id, value);
    this.outbox.enqueue("update", { varId: id, value });
  }

  /** An action or event (docs/attributes.md "ui-action"): always sent, and everything queued goes now as a user event. */
  fire(id, value) {
    this.outbox.enqueue("update", { varId: id, value });
    this.outbox.flush(true);
  }

  changed(node) {
    this.scroller.changed(node);
  }

  refreshBusy() {
    const busy = (this.outbox?.size ?? 0) > 0 || this.reveal.busy;
    document.documentElement.toggleAttribute("ui-busy", busy);
  }

  // ---- connection ----

  /** Every successful open: drop all client state, keep the old DOM visible and inert, watch 1. */
  bootstrap() {
    if (this.root) this.root.dispose();
    this.router?.dispose();
    this.router = null;
    for (const v of [...this.views]) v.dispose();
    this.reveal.reset();
    this.scroller.reset();
    this.store.reset();
    this.viewdefs.clear();
    this.pending.clear();
    this.outbox.clear();
    // The server restates the site's problems, if any, in its answer to this watch of variable 1.
    this.problems.siteProblems("[]");
    this.store.add(1, 0, {});
    this.reveal.expect(1, null);
    this.outbox.enqueue("watch", { varId: 1 });
    this.root = new View(this, 1, { container: this.appRoot });
  }

  stateChanged(state, code) {
    const html = document.documentElement;
    clearTimeout(this.lostTimer);
    this.lostTimer = null;
    if (state === "open") {
      html.removeAttribute("ui-disconnected");
      this.status.setConnection(null);
      return;
    }
    if (state === "connecting") return;
    html.setAttribute("ui-disconnected", "");
    this.outbox.clear();
    if (state === "ended") {
      this.status.setConnection(sessionEndedMessage());
      return;
    }
    if (code) this.lastCloseCode = code;
    // A blip shorter than a second shows nothing but the dimming.
    this.lostTimer = setTimeout(() => {
      this.status.setConnection(
        this.lastCloseCode === CLOSE_TOO_MANY_TABS
          ? "Too many open tabs for this session"
          : "Connection lost, reconnecting…",
      );
    }, LOST_NOTICE_DELAY_MS);
  }

  // ---- incoming frames ----

  receive(text) {
    let msgs;
    try {
      msgs = JSON.parse(text);
    } catch (e) {
      console.error("ui-gateway: a frame that is not JSON", e);
      return;
    }
    if (!Array.isArray(msgs)) msgs = [msgs];
    for (const m of msgs) {
      if (!m || typeof m !== "object" || typeof m.type !== "string") continue;
      const d = m.data && typeof m.data === "object" ? m.data : {};
      if (m.type === "update") this.applyUpdate(d);
      else if (m.type === "destroy") this.applyDestroy(d);
      else if (m.type === "error") this.applyError(d);
    }
    this.refreshBusy();
  }

  applyUpdate(d) {
    const id = d.varId;
    let data = d;
    // Variable 1 carries two properties the page takes for itself and never stores: viewdefs, and in
    // development the site's problems (a refused --watch save, a skipped viewdef file).
    const props = d.properties;
    if (id === 1 && props && (typeof props.viewdefs === "string" || typeof props.siteProblems === "string")) {
      const { viewdefs, siteProblems, ...rest } = props;
      if (typeof viewdefs === "string" && viewdefs !== "") this.deliver(viewdefs);
      if (typeof siteProblems === "string") this.problems.siteProblems(siteProblems);
      data = { ...d, properties: rest };
      if (!("value" in d) && Object.keys(rest).length === 0) return;
    }
    if (!this.store.get(id)) return;
    if (id === 1 && !this.router && data.properties?.urlPaths === "on") this.startRouter();
    this.store.applyUpdate(id, data);
    this.problems.resolve(id === 1 ? "app" : `var:${id}`);
    if (id === 1 && this.waiting && this.store.get(1).hasValue) {
      this.waiting = false;
      this.status.setConnection(null);
    }
    // After the watchers ran: a view or list may have created variables its reveal must wait for.
    this.reveal.arrived(id);
  }

  /** The app registered URL paths: the root shows the presenter of the address instead of variable 1. */
  startRouter() {
    this.root.clear();
    this.root.remove();
    this.router = new Router(this);
    this.root = this.router.view(this.appRoot);
  }

  deliver(json) {
    const keys = this.viewdefs.deliver(json);
    for (const v of [...this.views]) {
      if (v.disposed) continue;
      if (v.key !== null && keys.has(v.key)) v.refresh(true);
      else if (this.pending.has(v) || v.key !== null) v.refresh(false);
    }
  }

  applyDestroy(d) {
    for (const id of this.store.applyDestroy(d.varId)) this.reveal.arrived(id);
  }

  applyError(d) {
    const id = d.varId;
    const code = d.code ?? "";
    const description = d.description ?? "";
    const rec = typeof id === "number" && id > 1 ? this.store.get(id) : null;
    if (rec) {
      this.store.applyError(id, code, description);
      this.reveal.arrived(id);
      this.problems.variableError(id, rec.props.path, code, description);
      return;
    }
    // A notice for a variable this connection created and has since destroyed is stale, not news:
    // the server had computed it before our destroy arrived (e.g. a view changing type). says
    // messages for unknown ids are ignored; only ids never known go to the status area (docs/attributes.md "What the frontend adds to the page").
    if (typeof id === "number" && id > 1 && id < this.store.nextId) return;
    if (id === 1) {
      this.reveal.arrived(1);
      if (!this.store.get(1)?.hasValue) return this.appMissing(code, description);
    }
    if (this.problems.dev) {
      this.problems.report(`notice:${code}:${description}`, code, description);
      return;
    }
    console.error(`ui-gateway: ${code}: ${description}`, d);
    this.status.flash(`${code}: ${description}`, ERROR_NOTICE_MS);
  }

  /**
   * Variable 1 does not exist: main.lua failed, or no backend has created it yet. In development the
   * panel says why and the page asks again until it arrives (a save with --watch fixes it).
   */
  appMissing(code, description) {
    if (code === "backend-unavailable") {
      // Connected mode before the backend has created the app: not an error, it is on its way (the
      // server sends variable 1 to this watch when the backend creates it).
      console.info(`ui-gateway: waiting for the application (${description})`);
      this.waiting = true;
      this.status.setConnection(WAITING_MESSAGE);
      return;
    }
    if (!this.problems.dev) {
      console.error(`ui-gateway: ${code}: ${description}`);
      this.status.flash(`${code}: ${description}`, ERROR_NOTICE_MS);
      return;
    }
    this.problems.report("app", `The app did not start (${code})`, `${description}\nFix it and save: this page picks up the fix.`);
    clearTimeout(this.appRetry);
    this.appRetry = setTimeout(() => {
      if (this.isOpen() && !this.store.get(1)?.hasValue) this.outbox.enqueue("watch", { varId: 1 });
    }, APP_RETRY_MS);
  }

  // ---- test and debug hooks ----

  hooks() {
    const client = this;
    return {
      get state() {
        return client.state;
      },
      store: {
        get size() {
          return client.store.size;
        },
        get(id) {
          const r = client.store.get(id);
          if (!r) return undefined;
          return { id: r.id, parentId: r.parentId, value: r.value, props: { ...r.props }, error: r.error };
        },
      },
      viewdefs: {
        keys: () => client.viewdefs.keys(),
      },
      drop: () => client.conn?.drop(),
      problems: () => client.problems.list(),
    };
  }
}
