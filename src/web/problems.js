// Errors of app code, shown where an author looks (docs/attributes.md "Errors on the page").
// Every problem goes to the console. In development (`--dev` or `--watch`: the server marks the page
// with <meta name="ui-gateway-dev">) a panel at the top of the page lists them, naming the variable,
// its path and the message; in production a visitor sees one neutral line instead of the details.

const MAX_ENTRIES = 20;
const NEUTRAL_MS = 8000;
const SITE_PROBLEM_HINT = "Fix the file and save: every open page picks up the fix.";
export const NEUTRAL_MESSAGE = "Something went wrong. Please try again, or reload the page.";

/** Whether the server marked this page for development. */
export function devMode() {
  return document.querySelector('meta[name="ui-gateway-dev"]') !== null;
}

export class Problems {
  constructor({ dev, status }) {
    this.dev = dev;
    this.status = status;
    this.entries = new Map(); // key → { title, detail }
    this.panel = null;
    this.neutralShown = false;
    this.site = []; // the site's problems as the server last listed them
  }

  /**
   * A problem with a key (a later report with the same key replaces it, `resolve(key)` removes it),
   * a one-line title and the detail text.
   */
  report(key, title, detail) {
    console.error(`ui-gateway: ${title}: ${detail}`);
    if (!this.dev) {
      this.neutral();
      return;
    }
    this.entries.delete(key);
    this.entries.set(key, { title, detail });
    while (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value);
    this.render();
  }

  /** An `error` message for a known variable (a method, getter or setter that failed, a bad path). */
  variableError(varId, path, code, description) {
    const where = path ? `variable ${varId} (path "${path}")` : `variable ${varId}`;
    const hint = code === "path-failure" ? "\nCheck the binding's path against the object's fields and methods." : "";
    this.report(`var:${varId}`, `${code} in ${where}`, `${description}${hint}`);
  }

  /**
   * The site's problems (the `siteProblems` property of variable 1: JSON text of a list of
   * `{file, message}`): a Lua file a --watch save broke, a viewdef file that was skipped. Each list
   * replaces the previous one, so a fix removes its entry.
   */
  siteProblems(json) {
    let list;
    try {
      list = JSON.parse(json);
    } catch (e) {
      console.error("ui-gateway: siteProblems that is not JSON", e);
      return;
    }
    if (!Array.isArray(list)) return;
    // One file can have two problems (a main.lua that neither compiles nor, with the old text, loads).
    const key = (p) => `site:${p.file}:${p.message}`;
    const next = new Map(list.filter((p) => p && typeof p.file === "string").map((p) => [key(p), p]));
    const gone = this.site.filter((p) => !next.has(key(p)));
    for (const p of gone) this.entries.delete(key(p));
    for (const [k, p] of next) {
      if (!this.entries.has(k)) this.report(k, p.message, SITE_PROBLEM_HINT); // else shown and logged already
    }
    this.site = [...next.values()];
    if (gone.length) this.render();
  }

  /** Site viewdef files that were skipped, as `viewdefs/…: why; skipped` lines (missing-viewdef hints). */
  skippedViewdefs() {
    return this.site.filter((p) => p.file.startsWith("viewdefs/")).map((p) => p.message);
  }

  resolve(key) {
    if (this.entries.delete(key)) this.render();
  }

  neutral() {
    if (this.neutralShown) return;
    this.neutralShown = true;
    this.status.flash(NEUTRAL_MESSAGE, NEUTRAL_MS);
    setTimeout(() => (this.neutralShown = false), NEUTRAL_MS);
  }

  list() {
    return [...this.entries.values()].map((e) => ({ ...e }));
  }

  render() {
    if (this.entries.size === 0) {
      this.panel?.remove();
      this.panel = null;
      return;
    }
    if (!this.panel) {
      this.panel = document.createElement("section");
      this.panel.id = "ui-dev-errors";
      this.panel.setAttribute("role", "alert");
      document.body.append(this.panel);
    }
    const head = document.createElement("header");
    const h = document.createElement("strong");
    h.textContent = `App errors (${this.entries.size}) — shown because the gateway runs with --dev or --watch`;
    const close = document.createElement("button");
    close.type = "button";
    close.textContent = "Dismiss";
    close.addEventListener("click", () => {
      this.entries.clear();
      this.render();
    });
    head.append(h, close);
    const items = [...this.entries.values()].map(({ title, detail }) => {
      const li = document.createElement("li");
      const t = document.createElement("div");
      t.className = "ui-dev-title";
      t.textContent = title;
      const d = document.createElement("pre");
      d.textContent = detail;
      li.append(t, d);
      return li;
    });
    const ul = document.createElement("ul");
    ul.append(...items);
    this.panel.replaceChildren(head, ul);
  }
}
