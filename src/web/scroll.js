// scrollOnOutput (docs/attributes.md "scrollOnOutput"): marked elements that contain a DOM change made by a frame (or a
// reveal) are scrolled to the bottom once that work is done.

export class Scroller {
  constructor() {
    this.marks = new Set();
    this.changes = [];
    this.scheduled = false;
  }

  mark(el) {
    if (el) this.marks.add(el);
  }

  unmark(el) {
    this.marks.delete(el);
  }

  reset() {
    this.marks.clear();
    this.changes = [];
  }

  /** Records a DOM change; the check runs once the current task's synchronous work is done. */
  changed(node) {
    if (!node || this.marks.size === 0) return;
    this.changes.push(node);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => this.run());
  }

  run() {
    this.scheduled = false;
    const changes = this.changes;
    this.changes = [];
    for (const m of this.marks) {
      if (!m.isConnected) continue;
      if (changes.some((c) => m === c || m.contains(c))) m.scrollTop = m.scrollHeight;
    }
  }
}
