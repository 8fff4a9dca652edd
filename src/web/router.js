// URL paths (docs/lua-api.md "URL paths"): when the app registered paths (variable 1 carries
// `urlPaths`), the page shows the presenter of its address instead of variable 1. One variable under
// variable 1 with the `lua.UrlPage` wrapper gives the page object; its `presenter` is rendered in
// the app root and its `path` is the address: the server moving it (session:navigate) pushes a
// history entry, and Back or Forward writes it.
import { View } from "./view.js";

/** The part of the address after the session id: "/" for the app's default view. */
export function currentPath() {
  const rest = location.pathname.split("/").slice(2).join("/");
  return "/" + rest;
}

function sessionPrefix() {
  return "/" + (location.pathname.split("/")[1] ?? "");
}

export class Router {
  constructor(client) {
    this.client = client;
    const c = client;
    this.pageId = c.createVar(1, { path: "uiUrl..", access: "r", wrapper: "lua.UrlPage", urlPath: currentPath() }, null);
    this.presenterId = c.createVar(this.pageId, { path: "presenter", access: "r" }, null);
    this.pathId = c.createVar(this.pageId, { path: "path", access: "rw" }, null);
    this.unwatch = c.store.watch(this.pathId, (rec, ch) => {
      if (!ch.value || typeof rec.value !== "string" || rec.value === currentPath()) return;
      history.pushState({ uiPath: rec.value }, "", sessionPrefix() + (rec.value === "/" ? "" : rec.value));
    });
    this.onPop = () => c.write(this.pathId, currentPath());
    window.addEventListener("popstate", this.onPop);
  }

  /** The view for the app root: the presenter of the current path. */
  view(container) {
    return new View(this.client, this.presenterId, { container });
  }

  /** Every new connection starts over (the server forgot this connection's variables). */
  dispose() {
    this.unwatch();
    window.removeEventListener("popstate", this.onPop);
  }
}
