// The binding walk and the attribute bindings (docs/attributes.md).
//
// Every binding creates one child variable of its view's variable and registers an owned item
// {varId, dispose()} with the view, so the view can tear it down.
import { applyValue, classify, currentValue, isEditable, readValue, writeEvents } from "./controls.js";
import { clearError, showError } from "./errors.js";
import { keyMatches, parseKeypress } from "./keys.js";
import { parseBinding, pathKind, text, writable } from "./values.js";

const READ_ONLY_PREFIXES = ["ui-attr-", "ui-class-", "ui-style-"];
/** The `ui-*` attributes a `ui-view` element may carry: its own, and `ui-viewdef`, the marker the
 * frontend puts on a rendered viewdef's first element (a ViewList row's viewdef often starts with a
 * `ui-view`). Any other is ignored, with a warning. */
const VIEW_ATTRIBUTES = new Set(["ui-view", "ui-namespace", "ui-viewdef"]);

/**
 * Walks freshly inserted roots depth-first in document order. `makeView(el, ns)` and
 * `makeList(el, ns)` create child Views and ViewLists; `ns` is the nearest `ui-namespace` inside
 * the view's range (or null).
 */
export function walk(ctx, view, roots, { makeView, makeList }) {
  const visit = (el, ns) => {
    const own = el.getAttribute("ui-namespace");
    const here = own !== null ? own : ns;
    if (el.hasAttribute("ui-view")) {
      for (const a of el.attributes) {
        if (a.name.startsWith("ui-") && !VIEW_ATTRIBUTES.has(a.name)) {
          console.warn(`ui-gateway: ${a.name} on a ui-view element is ignored`, el);
        }
      }
      makeView(el, here);
      return;
    }
    if (el.hasAttribute("ui-viewlist")) {
      makeList(el, here);
      bindReadOnly(ctx, view, el);
      return;
    }
    bindElement(ctx, view, el);
    for (const child of [...el.children]) visit(child, here);
  };
  for (const r of roots) if (r.nodeType === Node.ELEMENT_NODE) visit(r, null);
}

/** ui-value, ui-attr-*, ui-class-*, ui-style-*, ui-html, ui-event-*, ui-action, in that order. */
function bindElement(ctx, view, el) {
  if (el.hasAttribute("ui-value")) bindValue(ctx, view, el);
  bindReadOnly(ctx, view, el);
  if (el.hasAttribute("ui-html")) bindHtml(ctx, view, el);
  for (const a of [...el.attributes]) {
    if (!a.name.startsWith("ui-event-")) continue;
    const evt = a.name.slice("ui-event-".length);
    if (evt.startsWith("keypress-")) bindKeypress(ctx, view, el, evt.slice("keypress-".length), a.value);
    else if (evt) bindEvent(ctx, view, el, evt, a.value, false);
  }
  if (el.hasAttribute("ui-action")) bindEvent(ctx, view, el, "click", el.getAttribute("ui-action"), true);
}

function bindReadOnly(ctx, view, el) {
  for (const prefix of READ_ONLY_PREFIXES) {
    for (const a of [...el.attributes]) {
      if (a.name.startsWith(prefix) && a.name.length > prefix.length) {
        bindDisplay(ctx, view, el, prefix, a.name.slice(prefix.length), a.value);
      }
    }
  }
}

/** Common part: parse, create the variable, watch it, show its errors on `el`. */
function bind(ctx, view, el, attr, defaults, onUpdate) {
  const { path, query } = parseBinding(attr);
  if (!path) {
    console.error("ui-gateway: empty binding path", el);
    return null;
  }
  const props = { path, ...defaults, elementId: ctx.elementId(el), ...query };
  const varId = ctx.createVar(view.varId, props, el);
  const unwatch = ctx.store.watch(varId, (rec, ch) => {
    if (ch.error) showError(el, varId, ch.error);
    else if (ch.update) {
      clearError(el, varId);
      onUpdate?.(rec, ch);
    }
  });
  const item = { varId, props, listeners: [], dispose: () => dispose(item, unwatch, el) };
  view.owned.push(item);
  return item;
}

function dispose(item, unwatch, el) {
  unwatch();
  for (const [target, type, fn] of item.listeners) target.removeEventListener(type, fn);
  item.listeners = [];
  item.cleanup?.();
  clearError(el, item.varId);
}

function listen(item, target, type, fn) {
  target.addEventListener(type, fn);
  item.listeners.push([target, type, fn]);
}

/** ui-attr-NAME, ui-class-NAME, ui-style-PROP: read-only, value applied as is. */
function bindDisplay(ctx, view, el, prefix, name, attr) {
  if (pathKind(parseBinding(attr).path) === "setter") {
    console.error(`ui-gateway: ${prefix}${name} cannot bind a setter path (m(_))`, el);
    return;
  }
  const apply = {
    "ui-attr-": (v) => {
      if (v === null || v === undefined || v === false) {
        if (el.hasAttribute(name)) el.removeAttribute(name);
        return;
      }
      const s = v === true ? "true" : typeof v === "number" || typeof v === "string" ? String(v) : "";
      if (el.getAttribute(name) !== s) el.setAttribute(name, s);
    },
    "ui-class-": (v) => {
      const on = !!v;
      if (el.classList.contains(name) !== on) el.classList.toggle(name, on);
    },
    "ui-style-": (v) => {
      if (v === null || v === undefined || v === false || v === "") el.style.removeProperty(name);
      else if (el.style.getPropertyValue(name) !== String(v)) el.style.setProperty(name, String(v));
    },
  }[prefix];
  bind(ctx, view, el, attr, { access: "r" }, (rec, ch) => {
    if (!ch.value) return;
    apply(rec.value);
    ctx.changed(el);
  });
}

function bindHtml(ctx, view, el) {
  const attr = el.getAttribute("ui-html");
  if (pathKind(parseBinding(attr).path) === "setter") {
    console.error("ui-gateway: ui-html cannot bind a setter path (m(_))", el);
    return;
  }
  const item = bind(ctx, view, el, attr, { access: "r" }, (rec, ch) => {
    if (!ch.value) return;
    const html = rec.value === null || rec.value === undefined ? "" : String(rec.value);
    if (el.innerHTML !== html) el.innerHTML = html;
    ctx.changed(el);
  });
  if (item?.props.scrollOnOutput) markScroll(ctx, item, el);
}

function markScroll(ctx, item, el) {
  ctx.scroller.mark(el);
  const prev = item.cleanup;
  item.cleanup = () => {
    prev?.();
    ctx.scroller.unmark(el);
  };
}

/** ui-value: a two-way or display binding depending on the element class (docs/attributes.md "ui-value"). */
function bindValue(ctx, view, el) {
  const attr = el.getAttribute("ui-value");
  const { path, query } = parseBinding(attr);
  const cls = classify(el);
  const kind = pathKind(path);
  const defaults = {};
  if (kind === "call") {
    if (query.access === undefined) defaults.access = "r";
    else if (!["r", "rw", "action"].includes(query.access)) {
      console.error(`ui-gateway: ui-value access ${query.access} is not allowed on m()`, el);
      return;
    }
  } else if (kind === "setter") defaults.access = "w";
  else if (cls === "meter" || cls === "display") defaults.access = "r";

  const item = bind(ctx, view, el, attr, defaults, (rec, ch) => {
    if (!ch.value) return;
    // Focus protection: the user's unsent text in a focused control wins over incoming values.
    if (isEditable(cls) && document.activeElement === el && domText(el, cls) !== text(ch.prevValue)) return;
    applyValue(el, cls, rec.value);
    ctx.changed(el);
  });
  if (!item) return;
  if (item.props.scrollOnOutput) markScroll(ctx, item, el);

  const access = item.props.access ?? "rw";
  // A check box that also fires an action or event is display-only: the handler owns the change.
  const handlerOwned = cls === "check" && [...el.attributes].some((a) => a.name === "ui-action" || a.name.startsWith("ui-event-"));
  if (!writable(access) || handlerOwned || cls === "meter" || cls === "display") return;

  const writeBack = (value) => {
    if (!ctx.isOpen()) return;
    const rec = ctx.store.get(item.varId);
    if (!rec) return;
    if (cls === "check") {
      if (value === (rec.value === true || rec.value === "true")) return;
    } else if (text(value) === text(rec.value)) return;
    ctx.write(item.varId, value);
  };
  const sync = () => writeBack(readValue(el, cls));
  ctx.valueSyncs.set(el, sync);
  const prev = item.cleanup;
  item.cleanup = () => {
    prev?.();
    if (ctx.valueSyncs.get(el) === sync) ctx.valueSyncs.delete(el);
  };

  for (const type of writeEvents(el, cls, query.keypress !== undefined)) {
    listen(item, el, type, () => {
      if (cls === "radio" && !el.checked) return;
      sync();
    });
  }
  listen(item, el, "ui-value-change", (ev) => writeBack(ev.detail?.value));

  if (el.localName === "select") {
    // Options may arrive after the value (e.g. from a ViewList): re-apply the cached value then.
    const mo = new MutationObserver(() => {
      const rec = ctx.store.get(item.varId);
      if (rec?.hasValue) applyValue(el, cls, rec.value);
    });
    mo.observe(el, { childList: true, subtree: true, attributes: true, attributeFilter: ["value"] });
    const before = item.cleanup;
    item.cleanup = () => {
      before();
      mo.disconnect();
    };
  }
}

function domText(el, cls) {
  return text(readValue(el, cls));
}

/** ui-action (click, default prevented) and ui-event-EVT (any event, not prevented). */
function bindEvent(ctx, view, el, type, attr, isAction) {
  const { path } = parseBinding(attr);
  const kind = pathKind(path);
  const item = bind(ctx, view, el, attr, { access: "action" });
  if (!item) return;
  listen(item, el, type, (ev) => {
    if (isAction) ev.preventDefault();
    fire(ctx, el, item, kind === "setter" ? currentValue(el, classify(el)) : null);
  });
}

/** ui-event-keypress-[mods-]KEY on keydown (docs/attributes.md "ui-event-keypress"). */
function bindKeypress(ctx, view, el, spec, attr) {
  const key = parseKeypress(spec);
  if (!key) {
    console.error(`ui-gateway: unknown key in ui-event-keypress-${spec}`, el);
    return;
  }
  const { path } = parseBinding(attr);
  const kind = pathKind(path);
  const item = bind(ctx, view, el, attr, kind === "plain" ? {} : { access: "action" });
  if (!item) return;
  listen(item, el, "keydown", (ev) => {
    if (!keyMatches(key, ev)) return;
    const value = kind === "call" ? null : kind === "setter" ? currentValue(el, classify(el)) : key.key;
    fire(ctx, el, item, value);
  });
}

/** Firing (docs/attributes.md "ui-action"): sync the element's own ui-value first, so both land in one frame, value first. */
function fire(ctx, el, item, value) {
  if (!ctx.isOpen()) return;
  clearError(el, item.varId);
  ctx.valueSyncs.get(el)?.();
  ctx.fire(item.varId, value);
}
