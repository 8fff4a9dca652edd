// Placeholder shell: connects to the session's WebSocket, watches variable 1 and shows what arrives.
// The full frontend (views, bindings, reconnection) replaces this file.
const id = location.pathname.split("/")[1];
const status = document.getElementById("ui-status");
const log = document.getElementById("ui-log");
const proto = location.protocol === "https:" ? "wss:" : "ws:";
const ws = new WebSocket(`${proto}//${location.host}/ws/${id}`);
ws.onopen = () => {
  status.textContent = "Connected.";
  ws.send(JSON.stringify({ userEvent: false, messages: [{ type: "watch", data: { varId: 1 } }] }));
};
ws.onmessage = (ev) => {
  log.textContent += ev.data + "\n";
};
ws.onclose = (ev) => {
  status.textContent = ev.code === 4404
    ? "This session has ended."
    : `Disconnected (${ev.code}).`;
  if (ev.code === 4404) {
    const a = document.createElement("a");
    a.href = "/";
    a.textContent = "Start a new session";
    status.append(" ", a);
  }
};
