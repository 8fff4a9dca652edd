// Value and attribute helpers shared by every binding (docs/attributes.md "Paths and options", "ui-value").

/**
 * The text form of a value as the DOM shows it: null → "", strings as is, numbers and booleans via
 * String, arrays as JSON, object references as "" (an object has no text of its own).
 */
export function text(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return JSON.stringify(v);
  return "";
}

/**
 * Splits `path?k=v&flag` at the first `?`. Query keys become create properties; a key without `=`
 * means "true" (URLSearchParams alone cannot tell `flag` from `flag=`, so each part is looked at).
 */
export function parseBinding(attr) {
  const raw = attr ?? "";
  const q = raw.indexOf("?");
  const path = (q < 0 ? raw : raw.slice(0, q)).trim();
  const query = {};
  if (q >= 0) {
    for (const part of raw.slice(q + 1).split("&")) {
      if (part === "") continue;
      if (part.includes("=")) {
        for (const [k, v] of new URLSearchParams(part)) query[k] = v;
      } else {
        for (const [k] of new URLSearchParams(part)) query[k] = "true";
      }
    }
  }
  return { path, query };
}

/** "call" for `m()`, "setter" for `m(_)`, else "plain". */
export function pathKind(path) {
  if (path.endsWith("(_)")) return "setter";
  if (path.endsWith("()")) return "call";
  return "plain";
}

/** Access values under which a binding writes back (docs/attributes.md "ui-value"). */
export function writable(access) {
  return access === "rw" || access === "w" || access === "action";
}

/** Readable variables get a first update (or an error) from the server; the others never do. */
export function readable(access) {
  return access === undefined || access === "" || access === "r" || access === "rw";
}
