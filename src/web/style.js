// The one stylesheet the frontend injects: hiding for no-flash renders, an outline
// for errors, dimming while disconnected and the status area. Sites style everything else.

const CSS = `
.ui-new-view{display:none!important}
.ui-error{outline:2px solid #d93025!important;outline-offset:1px}
[ui-disconnected] [ui-app]{opacity:.55;pointer-events:none;transition:opacity .3s}
#ui-status{position:fixed;left:50%;bottom:16px;transform:translateX(-50%);z-index:2147483647;
  max-width:min(90vw,560px);padding:10px 16px;border-radius:8px;background:#1f2430;color:#fff;
  font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;box-shadow:0 6px 24px rgba(0,0,0,.25)}
#ui-status[hidden]{display:none}
#ui-status a{color:#9ec1ff;font-weight:600}
#ui-status .ui-status-error{color:#ffb4ab}
`;

export function injectStyle() {
  const style = document.createElement("style");
  style.id = "ui-gateway-style";
  style.textContent = CSS;
  document.head.append(style);
}
