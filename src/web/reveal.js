// No-flash rendering and the busy flag.
//
// A render outside hidden content inserts its element roots hidden (class ui-new-view) next to the
// nodes it replaces. It is revealed, and the replaced nodes removed, once every readable variable
// created by it (or by renders nested inside its hidden content) has had its first update or an
// error, or after 200 ms. So a view appears complete instead of filling in piece by piece.

const REVEAL_TIMEOUT_MS = 200;
export const HIDDEN_CLASS = "ui-new-view";

class Group {
  constructor(mgr, oldNodes) {
    this.mgr = mgr;
    this.oldNodes = oldNodes;
    this.hidden = [];
    this.pending = new Set();
    this.sealed = false;
    this.done = false;
    this.timer = setTimeout(() => this.reveal(), REVEAL_TIMEOUT_MS);
  }

  /** Makes elements hidden roots of this group. */
  hide(els) {
    for (const el of els) {
      el.classList.add(HIDDEN_CLASS);
      this.mgr.roots.set(el, this);
      this.hidden.push(el);
    }
  }

  /** Called once the render's binding walk is over: a render that awaits nothing shows at once. */
  seal() {
    this.sealed = true;
    if (this.pending.size === 0) this.reveal();
  }

  arrived(id) {
    if (this.pending.delete(id) && this.sealed && this.pending.size === 0) this.reveal();
  }

  reveal() {
    if (this.done) return;
    this.finish();
    for (const n of this.oldNodes) n.remove();
    for (const el of this.hidden) {
      el.classList.remove(HIDDEN_CLASS);
      this.mgr.changed(el);
    }
    this.mgr.update();
  }

  /** Abandons the group (its view re-renders or clears): hidden nodes go, old nodes are returned. */
  cancel() {
    if (this.done) return [];
    this.finish();
    for (const el of this.hidden) el.remove();
    this.mgr.update();
    return this.oldNodes.filter((n) => n.isConnected);
  }

  finish() {
    this.done = true;
    clearTimeout(this.timer);
    for (const el of this.hidden) this.mgr.roots.delete(el);
    for (const id of this.pending) this.mgr.groupOf.delete(id);
    this.mgr.groups.delete(this);
  }
}

export class Reveal {
  /** update() is told when busy may have changed; changed(node) reports revealed DOM. */
  constructor({ update, changed }) {
    this.update = update;
    this.changed = changed;
    this.roots = new WeakMap(); // hidden root element → group
    this.groups = new Set();
    this.awaiting = new Set(); // readable variables without a first update or error
    this.groupOf = new Map(); // variable id → group waiting for it
  }

  get busy() {
    return this.awaiting.size > 0 || this.groups.size > 0;
  }

  /** Forgets all groups and waits (a new connection); the DOM is left as it is. */
  reset() {
    for (const g of [...this.groups]) {
      g.done = true;
      clearTimeout(g.timer);
    }
    this.groups.clear();
    this.awaiting.clear();
    this.groupOf.clear();
    this.roots = new WeakMap();
    this.update();
  }

  begin(oldNodes) {
    const g = new Group(this, oldNodes);
    this.groups.add(g);
    this.update();
    return g;
  }

  /** The group whose hidden content holds `node` (or whose hidden root `node` is), if any. */
  groupAt(node) {
    let el = node && node.nodeType === Node.ELEMENT_NODE ? node : node?.parentElement;
    while (el) {
      const hit = el.closest(`.${HIDDEN_CLASS}`);
      if (!hit) return null;
      const g = this.roots.get(hit);
      if (g && !g.done) return g;
      el = hit.parentElement;
    }
    return null;
  }

  isHiddenRoot(node) {
    const g = node.nodeType === Node.ELEMENT_NODE ? this.roots.get(node) : undefined;
    return g !== undefined && !g.done ? g : null;
  }

  /** A readable variable was created at `anchor`: busy until it arrives; its group waits for it. */
  expect(id, anchor) {
    this.awaiting.add(id);
    const g = anchor ? this.groupAt(anchor) : null;
    if (g) {
      g.pending.add(id);
      this.groupOf.set(id, g);
    }
    this.update();
  }

  /** A first update or an error arrived (or the variable went away). */
  arrived(id) {
    if (!this.awaiting.delete(id)) return;
    const g = this.groupOf.get(id);
    this.groupOf.delete(id);
    g?.arrived(id);
    this.update();
  }
}
