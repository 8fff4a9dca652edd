// Error display on elements (docs/attributes.md "What the frontend adds to the page"). Several bindings can share an element, so errors are
// kept per (element, variable) and the element shows one while any remains.

const byElement = new WeakMap();

export function showError(el, varId, err) {
  if (!el) return;
  let errs = byElement.get(el);
  if (!errs) byElement.set(el, (errs = new Map()));
  errs.set(varId, err);
  paint(el, errs);
}

export function clearError(el, varId) {
  const errs = el && byElement.get(el);
  if (!errs || !errs.delete(varId)) return;
  paint(el, errs);
}

function paint(el, errs) {
  const last = [...errs.values()].pop();
  if (!last) {
    el.classList.remove("ui-error");
    el.removeAttribute("ui-error-code");
    el.removeAttribute("ui-error-description");
    return;
  }
  el.classList.add("ui-error");
  el.setAttribute("ui-error-code", last.code);
  el.setAttribute("ui-error-description", last.description);
}
