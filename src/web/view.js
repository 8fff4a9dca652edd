// Views (docs/viewdefs.md): one variable rendered at one place in the DOM, between two comment markers.
// The app root renders variable 1; each `ui-view` element and each ViewList item is a child View.
import { walk } from "./bindings.js";
import { clearError, showError } from "./errors.js";
import { HIDDEN_CLASS } from "./reveal.js";
import { parseBinding } from "./values.js";
import { ViewList } from "./viewlist.js";

const MISSING_VIEWDEF_GRACE_MS = 300;

export class View {
  /**
   * Either `placeholder` (an element in the DOM, replaced by renders and put back by clears) or
   * `container` (the app root: the range is its content and there is no placeholder).
   */
  constructor(ctx, varId, { placeholder = null, container = null, scroll = false } = {}) {
    this.ctx = ctx;
    this.varId = varId;
    this.placeholder = placeholder;
    this.isRoot = container !== null;
    this.scroll = scroll;
    this.key = null;
    this.owned = [];
    this.mainRoot = null;
    this.group = null;
    this.disposed = false;
    this.start = document.createComment(`ui-view ${varId}`);
    this.end = document.createComment(`/ui-view ${varId}`);
    if (container) {
      // Whatever the root holds already (a loading text, the previous connection's DOM) stays
      // visible until the first render's reveal replaces it.
      container.prepend(this.start);
      container.append(this.end);
    } else {
      placeholder.before(this.start);
      placeholder.after(this.end);
    }
    ctx.views.add(this);
    this.unwatch = ctx.store.watch(varId, (rec, ch) => this.changed(rec, ch));
  }

  /** Nodes currently between the markers. */
  nodes() {
    const out = [];
    for (let n = this.start.nextSibling; n && n !== this.end; n = n.nextSibling) out.push(n);
    return out;
  }

  changed(rec, ch) {
    if (ch.destroyed) {
      this.clear();
      return;
    }
    if (ch.error) {
      showError(this.errorTarget(), this.varId, ch.error);
      return;
    }
    clearError(this.errorTarget(), this.varId);
    this.refresh(false);
  }

  errorTarget() {
    return this.mainRoot ?? this.placeholder ?? this.start.parentElement;
  }

  /** The namespace this view looks viewdefs up with (and hands to its children by default). */
  namespace() {
    const rec = this.ctx.store.get(this.varId);
    if (this.isRoot) {
      const own = this.start.parentElement?.getAttribute("ui-namespace");
      if (own) return own;
    }
    return rec?.props.namespace ?? "";
  }

  /** Decides what to show; `force` re-renders an unchanged key (re-delivered viewdef). */
  refresh(force) {
    if (this.disposed) return;
    const rec = this.ctx.store.get(this.varId);
    if (!rec || !rec.hasValue) return;
    const type = rec.props.type;
    if (rec.value === null || rec.value === undefined || !type) {
      this.ctx.pending.delete(this);
      if (this.key !== null || !this.placeholderShown()) this.clear();
      return;
    }
    const key = this.ctx.viewdefs.resolve(type, this.namespace(), rec.props.fallbackNamespace);
    if (key === null) {
      this.ctx.pending.add(this);
      if (this.key !== null) this.clear();
      this.reportMissing(type, rec);
      return;
    }
    this.ctx.pending.delete(this);
    this.ctx.problems.resolve(`viewdef:${this.varId}`);
    if (key !== this.key || force) this.render(key);
  }

  /**
   * No viewdef for the value's type: the server sends a type's viewdefs before the first value of
   * that type, so after a short grace period (a viewdef may be on its way) this is the author's to
   * fix. The message names the files the cascade tried (docs/viewdefs.md "Choosing a viewdef").
   */
  reportMissing(type, rec) {
    clearTimeout(this.missingTimer);
    this.missingTimer = setTimeout(() => {
      if (this.disposed || this.key !== null || !this.ctx.pending.has(this)) return;
      const tried = [this.namespace(), rec.props.fallbackNamespace, "DEFAULT"]
        .filter((ns, i, all) => ns && all.indexOf(ns) === i)
        .map((ns) => `viewdefs/${type}.${ns}.html`);
      const path = rec.props.path ? ` (path "${rec.props.path}")` : "";
      const have = this.ctx.viewdefs.keys().filter((k) => k.startsWith(`${type}.`));
      const others = have.length ? `\nViewdefs of ${type} the page has: ${have.join(", ")}.` : "";
      const skipped = this.ctx.problems.skippedViewdefs();
      const notLoaded = skipped.length ? `\nViewdef files of the site that were not loaded:\n${skipped.join("\n")}` : "";
      this.ctx.problems.report(
        `viewdef:${this.varId}`,
        `no viewdef for type ${type} in variable ${this.varId}${path}`,
        `Tried ${tried.join(", ")}. A viewdef file is named Type.namespace.html.${others}${notLoaded}`,
      );
    }, MISSING_VIEWDEF_GRACE_MS);
  }

  placeholderShown() {
    const nodes = this.nodes();
    return this.isRoot ? nodes.length === 0 : nodes.length === 1 && nodes[0] === this.placeholder;
  }

  render(key) {
    const ctx = this.ctx;
    this.teardown(true);
    let oldNodes = this.nodes();
    if (this.group && !this.group.done) {
      // A previous render still hidden: drop it, keep what was visible before it.
      oldNodes = this.group.cancel();
    }
    this.group = null;
    const frag = document.importNode(ctx.viewdefs.content(key), true);
    for (const s of frag.querySelectorAll("script")) s.remove(); // viewdef scripts never run
    const roots = [...frag.childNodes].filter(
      (n) => n.nodeType === Node.ELEMENT_NODE || (n.nodeType === Node.TEXT_NODE && n.data.trim() !== ""),
    );
    const main = roots.find((n) => n.nodeType === Node.ELEMENT_NODE && n.localName !== "style");
    if (main) {
      if (this.placeholder) mergePlaceholder(this.placeholder, main);
      main.setAttribute("ui-viewdef", key);
    }
    const elements = roots.filter((n) => n.nodeType === Node.ELEMENT_NODE && n.localName !== "style");

    // Inside content that is itself still hidden, render directly: the enclosing reveal covers it.
    const enclosing = oldNodes.map((n) => ctx.reveal.isHiddenRoot(n)).find((g) => g) ?? ctx.reveal.groupAt(this.end.parentNode);
    this.end.before(...roots);
    if (enclosing) {
      if (oldNodes.some((n) => ctx.reveal.isHiddenRoot(n))) enclosing.hide(elements);
      for (const n of oldNodes) n.remove();
    } else {
      this.group = ctx.reveal.begin(oldNodes);
      this.group.hide(elements);
    }
    this.key = key;
    this.mainRoot = main ?? null;
    const rec = ctx.store.get(this.varId);
    if (rec?.error) showError(this.errorTarget(), this.varId, rec.error);
    if (this.scroll && this.mainRoot) ctx.scroller.mark(this.mainRoot);

    walk(ctx, this, roots, {
      makeView: (el, ns) => this.childView(el, ns),
      makeList: (el, ns) => this.owned.push(new ViewList(ctx, this, el, this.childNamespaces(ns, parseBinding(el.getAttribute("ui-viewlist")).query))),
    });
    this.group?.seal();
    ctx.changed(this.mainRoot ?? this.end.parentNode);
  }

  /** namespace/fallbackNamespace for a new view or list variable created by this view (docs/viewdefs.md "Choosing a viewdef"). */
  childNamespaces(ns, query) {
    const props = {};
    const namespace = ns ?? this.namespace();
    if (namespace) props.namespace = namespace;
    const fb = this.ctx.store.get(this.varId)?.props.fallbackNamespace;
    if (fb) props.fallbackNamespace = fb;
    return Object.assign(props, query);
  }

  childView(el, ns) {
    const { path, query } = parseBinding(el.getAttribute("ui-view"));
    if (!path || path.endsWith("(_)")) {
      console.error("ui-gateway: ui-view needs a readable path", el);
      return;
    }
    const props = { path, access: "r", ...this.childNamespaces(ns, {}), elementId: this.ctx.elementId(el), ...query };
    const id = this.ctx.createVar(this.varId, props, el);
    this.owned.push(new View(this.ctx, id, { placeholder: el, scroll: query.scrollOnOutput !== undefined }));
  }

  /**
   * Content teardown: listeners of everything this view created go; with `send`, destroys for
   * the directly owned variables are queued (the server destroys their subtrees).
   */
  teardown(send) {
    for (const item of this.owned) {
      item.dispose();
      if (send) this.ctx.destroyVar(item.varId);
      else this.ctx.store.drop(item.varId);
    }
    this.owned = [];
    if (this.mainRoot) this.ctx.scroller.unmark(this.mainRoot);
  }

  /** Clear: teardown, nodes removed, the placeholder back; the variable lives on. */
  clear() {
    this.teardown(true);
    if (this.group) {
      this.group.cancel();
      this.group = null;
    }
    for (const n of this.nodes()) n.remove();
    if (this.placeholder) this.end.before(this.placeholder);
    this.key = null;
    this.mainRoot = null;
    this.ctx.changed(this.end.parentNode);
  }

  /** Removed by its owner: listeners go, nothing is sent (the owner destroys this view's variable). */
  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    this.unwatch();
    this.teardown(false);
    if (this.group) {
      this.group.cancel();
      this.group = null;
    }
    this.ctx.views.delete(this);
    this.ctx.pending.delete(this);
    clearTimeout(this.missingTimer);
    this.ctx.problems.resolve(`viewdef:${this.varId}`);
  }

  /** Disposes and removes the view's nodes and markers (a ViewList item going away). */
  remove() {
    this.dispose();
    for (const n of this.nodes()) n.remove();
    this.start.remove();
    this.end.remove();
  }
}

/** The placeholder's classes, inline style (placeholder wins) and id pass to the main root. */
function mergePlaceholder(ph, root) {
  for (const c of ph.classList) {
    if (c !== HIDDEN_CLASS && c !== "ui-error") root.classList.add(c);
  }
  const style = ph.getAttribute("style");
  if (style) {
    const own = root.getAttribute("style");
    root.setAttribute("style", own ? `${own};${style}` : style);
  }
  if (!root.id && ph.id) root.id = ph.id;
}
