// Element classes for `ui-value` (docs/attributes.md "ui-value"): how a value reaches the DOM, which event writes
// it back and what is sent.
import { text } from "./values.js";

const CHECK = new Set(["sl-checkbox", "sl-switch"]);
const TEXT_TYPES = new Set(["", "text", "search", "email", "url", "tel", "password", "number"]);
const CUSTOM = new Set([
  "sl-input", "sl-textarea", "sl-select", "sl-radio-group", "sl-range", "sl-rating", "sl-color-picker",
]);
const METER = new Set([
  "progress", "meter", "sl-progress-bar", "sl-progress-ring", "sl-qr-code", "sl-copy-button",
]);

/** One of check, radio, text, choice, custom, meter, display. Decided once, at bind time. */
export function classify(el) {
  const tag = el.localName;
  if (tag === "input") {
    const type = (el.getAttribute("type") ?? "").toLowerCase();
    if (type === "checkbox") return "check";
    if (type === "radio") return "radio";
    return TEXT_TYPES.has(type) ? "text" : "choice";
  }
  if (CHECK.has(tag)) return "check";
  if (tag === "textarea") return "text";
  if (tag === "select") return "choice";
  if (CUSTOM.has(tag)) return "custom";
  if (METER.has(tag)) return "meter";
  // Other custom elements count as inputs when they expose a value (a defined form-like element).
  if (tag.includes("-") && !tag.startsWith("sl-") && "value" in el) return "custom";
  return "display";
}

/** Classes that carry a user-edited value (focus protection, docs/attributes.md "ui-value"). */
export function isEditable(cls) {
  return cls === "text" || cls === "choice" || cls === "custom";
}

/** Event names that write back, for the default mode and for `?keypress`. */
export function writeEvents(el, cls, keypress) {
  const sl = el.localName.startsWith("sl-");
  switch (cls) {
    case "check": return [sl ? "sl-change" : "change"];
    case "radio": return ["change"];
    case "text": return [keypress ? "input" : "blur"];
    case "choice": return [keypress ? "input" : "change"];
    case "custom":
      if (sl) return [keypress ? "sl-input" : "sl-change"];
      return [keypress ? "input" : "change"];
    default: return [];
  }
}

/** Puts a value into the DOM, touching a property only when it differs (no caret jumps). */
export function applyValue(el, cls, v) {
  switch (cls) {
    case "check": {
      const on = v === true || v === "true";
      if (el.checked !== on) el.checked = on;
      return;
    }
    case "radio": {
      const on = text(v) === el.value;
      if (el.checked !== on) el.checked = on;
      return;
    }
    case "text":
    case "choice": {
      const t = text(v);
      if (el.value !== t) el.value = t;
      return;
    }
    case "custom":
    case "meter": {
      const nv = typeof v === "number" ? v : text(v);
      if (el.value !== nv) el.value = nv;
      return;
    }
    default: {
      const t = text(v);
      if (el.textContent !== t) el.textContent = t;
    }
  }
}

/** The value a write-back sends: `checked` for check boxes, `value` otherwise. */
export function readValue(el, cls) {
  if (cls === "check") return !!el.checked;
  if (cls === "custom") return el.value;
  return el.value === undefined || el.value === null ? "" : String(el.value);
}

/** The element's current value for `m(_)` actions and events (docs/attributes.md "ui-action"). */
export function currentValue(el, cls) {
  if (cls === "check") return !!el.checked;
  if ("value" in el && el.value !== undefined) return el.value;
  return null;
}
