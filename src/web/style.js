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
#ui-dev-errors{position:fixed;top:12px;right:12px;z-index:2147483647;max-width:min(92vw,640px);max-height:70vh;
  overflow:auto;background:#fff5f5;color:#5c0011;border:2px solid #d93025;border-radius:8px;
  font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;box-shadow:0 6px 24px rgba(0,0,0,.2)}
#ui-dev-errors header{display:flex;gap:12px;align-items:center;justify-content:space-between;padding:8px 12px;
  background:#d93025;color:#fff}
#ui-dev-errors header button{font:inherit;border:1px solid #fff;background:transparent;color:#fff;border-radius:4px;
  padding:2px 8px;cursor:pointer}
#ui-dev-errors ul{list-style:none;margin:0;padding:0}
#ui-dev-errors li{padding:8px 12px;border-top:1px solid #f3c2c2}
#ui-dev-errors .ui-dev-title{font-weight:600}
#ui-dev-errors pre{margin:4px 0 0;white-space:pre-wrap;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
`;

export function injectStyle() {
  const style = document.createElement("style");
  style.id = "ui-gateway-style";
  style.textContent = CSS;
  document.head.append(style);
}
