// ViewList (docs/attributes.md "ui-viewlist"): a positional list of item Views over an array value. Reordering is
// the server's business; the client only grows and shrinks at the end.
import { clearError, showError } from "./errors.js";
import { parseBinding } from "./values.js";
import { View } from "./view.js";

export class ViewList {
  constructor(ctx, view, el, namespaces) {
    this.ctx = ctx;
    this.el = el;
    const { path, query } = parseBinding(el.getAttribute("ui-viewlist"));
    // The exemplar is taken before anything is created: every item is a clone of it.
    this.exemplar = el.firstElementChild ?? document.createElement("div");
    this.exemplarNamespace = this.exemplar.getAttribute("ui-namespace");
    el.replaceChildren();
    this.items = [];
    const props = { path, access: "r", ...namespaces, elementId: ctx.elementId(el), ...query };
    this.varId = ctx.createVar(view.varId, props, el);
    this.scroll = query.scrollOnOutput !== undefined;
    if (this.scroll) ctx.scroller.mark(el);
    this.unwatch = ctx.store.watch(this.varId, (rec, ch) => this.changed(rec, ch));
  }

  changed(rec, ch) {
    if (ch.destroyed) {
      this.shrinkTo(0, false);
      return;
    }
    if (ch.error) {
      showError(this.el, this.varId, ch.error);
      return;
    }
    clearError(this.el, this.varId);
    if (ch.value) this.sync(rec);
  }

  sync(rec) {
    const n = Array.isArray(rec.value) ? rec.value.length : 0;
    const m = this.items.length;
    if (n > m) {
      const namespace = this.exemplarNamespace ?? rec.props.namespace;
      const fallback = rec.props.fallbackNamespace;
      for (let i = m; i < n; i++) {
        const ph = this.exemplar.cloneNode(true);
        this.el.append(ph);
        const props = { path: String(i), access: "r" };
        if (namespace) props.namespace = namespace;
        if (fallback) props.fallbackNamespace = fallback;
        props.elementId = this.ctx.elementId(ph);
        const id = this.ctx.createVar(this.varId, props, ph);
        this.items.push(new View(this.ctx, id, { placeholder: ph }));
      }
      this.ctx.changed(this.el);
    } else if (n < m) {
      this.shrinkTo(n, true);
    }
  }

  shrinkTo(n, send) {
    while (this.items.length > n) {
      const item = this.items.pop();
      item.remove();
      if (send) this.ctx.destroyVar(item.varId);
      else this.ctx.store.drop(item.varId);
    }
    this.ctx.changed(this.el);
  }

  dispose() {
    this.unwatch();
    for (const item of this.items) item.dispose();
    this.items = [];
    if (this.scroll) this.ctx.scroller.unmark(this.el);
    clearError(this.el, this.varId);
  }
}
