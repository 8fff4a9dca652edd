// The status area: `<div id="ui-status" role="status">` at the end of <body>,
// hidden when empty. One line for the connection, plus transient error lines.

export class StatusArea {
  constructor() {
    let el = document.getElementById("ui-status");
    if (!el) {
      el = document.createElement("div");
      el.id = "ui-status";
      el.setAttribute("role", "status");
    }
    document.body.append(el); // keep it last, whatever the shell put after it
    this.el = el;
    this.connection = null;
    this.flashes = [];
    this.render();
  }

  /** Sets (or clears, with null) the connection line: a string or a node. */
  setConnection(content) {
    this.connection = content;
    this.render();
  }

  /** Shows a line for `ms` milliseconds. */
  flash(line, ms) {
    const entry = { line };
    this.flashes.push(entry);
    this.render();
    setTimeout(() => {
      this.flashes = this.flashes.filter((e) => e !== entry);
      this.render();
    }, ms);
  }

  render() {
    const parts = [];
    if (this.connection !== null) {
      const p = document.createElement("div");
      p.className = "ui-status-connection";
      p.append(this.connection);
      parts.push(p);
    }
    for (const { line } of this.flashes) {
      const p = document.createElement("div");
      p.className = "ui-status-error";
      p.textContent = line;
      parts.push(p);
    }
    this.el.replaceChildren(...parts);
    this.el.hidden = parts.length === 0;
  }
}

/** "This session has ended." with a link to a new session. */
export function sessionEndedMessage() {
  const frag = document.createDocumentFragment();
  const a = document.createElement("a");
  a.href = "/";
  a.textContent = "Start a new session";
  frag.append("This session has ended. ", a);
  return frag;
}
