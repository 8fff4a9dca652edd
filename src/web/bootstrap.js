// Bootstrap inputs: which session, which socket URL, which app root.

const SESSION_ID = /^[0-9a-f]{32}$/;

/** The first path segment if it is a session id, else the `ui-session` cookie, else null. */
export function sessionId() {
  const first = location.pathname.split("/")[1] ?? "";
  if (SESSION_ID.test(first)) return first;
  for (const part of document.cookie.split(";")) {
    const [k, v] = part.trim().split("=");
    if (k === "ui-session" && SESSION_ID.test(v ?? "")) return v;
  }
  return null;
}

export function socketUrl(id) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/${id}`;
}

/** The first [ui-app] element, appended to <body> when the shell has none. */
export function appRoot() {
  let el = document.querySelector("[ui-app]");
  if (!el) {
    el = document.createElement("div");
    el.setAttribute("ui-app", "");
    document.body.append(el);
  }
  return el;
}
