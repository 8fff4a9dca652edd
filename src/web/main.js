// Entry point of the built-in frontend (docs/attributes.md lists what it implements): inject the stylesheet, find the session and the
// app root, connect, and expose the test hooks as window.uiGateway.
import { appRoot, sessionId, socketUrl } from "./bootstrap.js";
import { Client } from "./client.js";
import { injectStyle } from "./style.js";

injectStyle();
const root = appRoot();
const id = sessionId();
const client = new Client({ appRoot: root, socketUrl: id ? socketUrl(id) : null });
window.uiGateway = client.hooks();

// Forms inside the app never navigate: buttons in them fire actions instead.
document.addEventListener("submit", (ev) => {
  if (ev.target instanceof Element && ev.target.closest("[ui-app]")) ev.preventDefault();
});

client.start();
