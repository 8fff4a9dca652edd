// Keypress bindings (docs/attributes.md "ui-event-keypress"): `ui-event-keypress-[mods-]KEY`.

const NAMED = {
  enter: "enter",
  escape: "escape",
  esc: "escape",
  tab: "tab",
  space: " ",
  backspace: "backspace",
  delete: "delete",
  up: "arrowup",
  down: "arrowdown",
  left: "arrowleft",
  right: "arrowright",
  home: "home",
  end: "end",
  pageup: "pageup",
  pagedown: "pagedown",
};
for (let i = 1; i <= 12; i++) NAMED[`f${i}`] = `f${i}`;

const MODIFIERS = ["ctrl", "shift", "alt", "meta"];

/**
 * Parses the part after `ui-event-keypress-`. Returns {key (as written), match (lower-case
 * KeyboardEvent.key), mods (Set)} or null when a part is not a known modifier.
 */
export function parseKeypress(spec) {
  const parts = spec.split("-");
  const key = parts.pop();
  if (!key) return null;
  const mods = new Set();
  for (const p of parts) {
    if (!MODIFIERS.includes(p)) return null;
    mods.add(p);
  }
  const lower = key.toLowerCase();
  const match = NAMED[lower] ?? (key.length === 1 ? lower : null);
  if (match === null) return null;
  return { key, match, mods };
}

/** Exactly the listed modifiers must be held, so Ctrl+Enter does not fire a plain `enter`. */
export function keyMatches(spec, ev) {
  if ((ev.key ?? "").toLowerCase() !== spec.match) return false;
  return (
    ev.ctrlKey === spec.mods.has("ctrl") &&
    ev.shiftKey === spec.mods.has("shift") &&
    ev.altKey === spec.mods.has("alt") &&
    ev.metaKey === spec.mods.has("meta")
  );
}
