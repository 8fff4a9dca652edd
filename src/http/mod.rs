//! The HTTP surface (docs/deployment.md "HTTP routes", "Security"): session creation at `/`, the shell at `/<id>`,
//! ending a session with `DELETE /<id>`, the browser WebSocket at `/ws/<id>`, `/healthz`, built-in assets and the
//! site's static files.

pub mod origin;
pub mod pages;
pub mod serve;
pub mod static_files;
pub mod timeouts;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, Response, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::Router;

use crate::browser;
use crate::config::DebugPages;
use crate::ids::SessionId;
use crate::session::manager::admission::resolve_client;
use crate::session::manager::CreateError;
use crate::session::EndReason;
use crate::state::Gateway;

/// Builds the router over the shared gateway state.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/", get(create_session).head(root_head))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/backend", any(crate::backend::socket::endpoint))
        .route("/ws/{*rest}", any(browser_socket))
        .fallback(fallback)
        .layer(axum::middleware::from_fn_with_state(gateway.clone(), check_host))
        .with_state(gateway)
}

/// Routes a browser never needs and that carry no session data: probes, scrapers and backends may
/// address the gateway by any name. `/backend` has its own authentication (token, or local requests,
/// which a browser's `Origin` never is).
const ANY_HOST_PATHS: [&str; 3] = ["/backend", "/healthz", "/metrics"];

/// Every other request: a `Host` that names something other than this gateway is refused with
/// `421 Misdirected Request` before routing (security review L7: a DNS-rebinding page would otherwise
/// pass the `Origin == Host` rule with a name of its own). See [`origin::host_allowed`].
async fn check_host(
    State(gw): State<Arc<Gateway>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response<Body> {
    let exempt = ANY_HOST_PATHS.contains(&request.uri().path());
    if !exempt && !origin::host_allowed(request.headers(), &gw.allowed_hosts) {
        crate::metrics::metrics().http_refused("host");
        return Response::builder()
            .status(StatusCode::MISDIRECTED_REQUEST)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Body::from("unknown host: add it with --allowed-host\n"))
            .expect("valid response");
    }
    next.run(request).await
}

/// Adds the headers every HTML response carries.
pub fn html_security_headers(builder: axum::http::response::Builder) -> axum::http::response::Builder {
    builder
        .header("referrer-policy", "no-referrer")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::CONTENT_SECURITY_POLICY, "frame-ancestors 'self'")
}

fn html(status: StatusCode, body: &'static str, no_store: bool) -> Response<Body> {
    let mut b = html_security_headers(Response::builder().status(status))
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8");
    if no_store {
        b = b.header(header::CACHE_CONTROL, "no-store");
    }
    b.body(Body::from(body)).expect("valid response")
}

/// `GET /`: a new session, then `302 Location: /<id>`. Refusals: `429` + `Retry-After` for this
/// client's cap or rate, `503` + `Retry-After` and the busy page for the memory ceiling or a table
/// full of connected sessions.
async fn create_session(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response<Body> {
    let forwarded = headers.get_all("x-forwarded-for").iter().map(|v| v.to_str().unwrap_or("?"));
    let client = resolve_client(peer.ip(), forwarded, &gw.trusted_proxies);
    if headers.contains_key("x-forwarded-for") && !gw.trusted_proxies.iter().any(|c| c.contains(peer.ip())) {
        gw.warn_untrusted_proxy(peer);
    }
    match gw.sessions.create_session(client).await {
        Ok(handle) => {
            tracing::info!(internal = %gw.log_id(&handle.id), vended = %handle.vended, peer = %peer, "session created");
            Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, format!("/{}", handle.id))
                .header(header::CACHE_CONTROL, "no-store")
                .body(Body::empty())
                .expect("valid response")
        }
        Err(CreateError::BuildFailed) => html(StatusCode::INTERNAL_SERVER_ERROR, pages::INTERNAL_ERROR_HTML, false),
        Err(e) => {
            match e {
                CreateError::AtCapacity(max) => gw.warn_at_capacity(max),
                CreateError::MemoryHigh { rss, limit } => gw.warn_memory_high(rss, limit),
                CreateError::ClientCap(_) | CreateError::RateLimited { .. } => {
                    tracing::debug!(client = %client, reason = e.reason(), "session refused")
                }
                CreateError::BuildFailed => {}
            }
            let status = StatusCode::from_u16(e.status()).expect("a valid status");
            let body =
                if status == StatusCode::TOO_MANY_REQUESTS { pages::TOO_MANY_HTML } else { pages::AT_CAPACITY_HTML };
            let mut r = html(status, body, true);
            r.headers_mut().insert(header::RETRY_AFTER, e.retry_after_secs().into());
            r
        }
    }
}

/// `HEAD /`: never creates a session.
async fn root_head() -> StatusCode {
    StatusCode::OK
}

/// `/metrics`: Prometheus text format (404 with `--no-metrics`).
async fn metrics(State(gw): State<Arc<Gateway>>) -> Response<Body> {
    if !gw.metrics_enabled {
        return html(StatusCode::NOT_FOUND, pages::NOT_FOUND_HTML, false);
    }
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from({
            gw.sessions.runtime().report_metrics();
            crate::metrics::metrics().render(gw.sessions.count())
        }))
        .expect("valid response")
}

async fn healthz(State(gw): State<Arc<Gateway>>) -> impl IntoResponse {
    // During shutdown (docs/deployment.md "Shutdown") open keep-alive connections still reach this: 503.
    let stopping = gw.stopping.load(std::sync::atomic::Ordering::Acquire);
    let body = serde_json::json!({
        "status": if stopping { "stopping" } else { "ok" },
        "mode": gw.mode.as_str(),
        "sessions": gw.sessions.count(),
        "backend": match &gw.backend {
            None => "none",
            Some(hub) if hub.is_connected() => "connected",
            Some(_) => "disconnected",
        },
        // Backend workers connected (0 in embedded mode).
        "workers": gw.backend.as_ref().map_or(0, |hub| hub.worker_count()),
    });
    let status = if stopping { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body.to_string())
}

/// `/ws/<id>[/…]`: upgrade checks in the spec's order (valid upgrade, Origin, session, limit).
async fn browser_socket(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response<Body> {
    let upgrade = match upgrade {
        Ok(u) => u,
        // Security review L4: a 405 names the allowed method.
        Err(WebSocketUpgradeRejection::MethodNotGet(_)) => {
            return Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header(header::ALLOW, "GET")
                .body(Body::empty())
                .expect("valid response")
        }
        Err(_) => return (StatusCode::BAD_REQUEST, "not a WebSocket upgrade").into_response(),
    };
    if !origin::origin_allowed(&headers, &gw.allowed_origins) {
        crate::metrics::metrics().connection_refused("browser", "origin");
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let id = uri.path().trim_start_matches("/ws/").split('/').next().unwrap_or("");
    let session = id.parse::<SessionId>().ok().and_then(|id| gw.sessions.get_session(&id));
    browser::upgrade(gw.clone(), upgrade, session, peer)
}

/// Everything else: `/_ui/…`, `/<id>[/…]`, robots/favicon and the site's `html/`.
async fn fallback(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    let path = uri.path();
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    // `/<id>` itself (no deeper path) is the one resource that can be deleted.
    let session_url = first.parse::<SessionId>().ok().filter(|_| path.len() == 1 + first.len());
    if method == Method::DELETE {
        if let Some(id) = session_url {
            return end_session(&gw, &id, &headers);
        }
    }
    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        let allow = if session_url.is_some() { "GET, HEAD, DELETE" } else { "GET, HEAD" };
        return Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, allow)
            .body(Body::empty())
            .expect("valid response");
    }
    if first == "_ui" {
        let name = &path["/_ui/".len().min(path.len())..];
        return match pages::ASSETS.iter().find(|(n, _, _)| *n == name) {
            Some((_, ty, body)) => static_files::respond(body.as_bytes().to_vec(), ty, &headers, head),
            None => html(StatusCode::NOT_FOUND, pages::NOT_FOUND_HTML, false),
        };
    }
    if let Ok(id) = first.parse::<SessionId>() {
        let rest = &path[1 + 32..];
        if rest == "/variables" || rest == "/variables.json" {
            return debug_page(&gw, &id, rest == "/variables.json", &peer, &headers).await;
        }
        return session_page(&gw, &id, &headers, head).await;
    }
    static_file(&gw, path, &headers, head).await
}

/// `DELETE /<id>`: ends the session now instead of waiting for `--session-timeout` (the load generator
/// cleans up this way). The URL is the capability, as for `GET /<id>`: whoever holds it may end it.
/// A browser sends `Origin` with every DELETE, so the WebSocket's `Origin` rule applies and another
/// site's page cannot end a session whose URL it learned; a client without `Origin` is no browser.
/// `204` and the session's sockets close with 4404 and the backend hears `closed`; `404` if no such
/// session lives here; `403` for a foreign `Origin`.
fn end_session(gw: &Gateway, id: &SessionId, headers: &HeaderMap) -> Response<Body> {
    let status = if !origin::origin_allowed(headers, &gw.allowed_origins) {
        crate::metrics::metrics().http_refused("origin");
        tracing::debug!(internal = %gw.log_id(id), "DELETE refused: origin not allowed");
        StatusCode::FORBIDDEN
    } else if gw.sessions.destroy_session(id, EndReason::Ended) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    };
    Response::builder()
        .status(status)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::empty())
        .expect("valid response")
}

/// The shell for a live session, or the "session ended" page.
async fn session_page(gw: &Gateway, id: &SessionId, headers: &HeaderMap, head: bool) -> Response<Body> {
    if !gw.sessions.session_exists(id) {
        return html(StatusCode::NOT_FOUND, pages::SESSION_ENDED_HTML, true);
    }
    let shell = match gw.site.current().html_dir().map(|d| d.join("index.html")) {
        Some(p) if p.is_file() => tokio::fs::read_to_string(&p).await.ok(),
        _ => None,
    };
    let mut body = shell.unwrap_or_else(|| pages::SHELL_HTML.to_string());
    if gw.sessions.session_config().dev {
        body = pages::mark_dev(&body);
    }
    let mut cookie = format!("ui-session={id}; Path=/; SameSite=Lax");
    if origin::forwarded_https(headers) {
        cookie.push_str("; Secure");
    }
    html_security_headers(Response::builder().status(StatusCode::OK))
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::SET_COOKIE, cookie)
        .body(if head { Body::empty() } else { Body::from(body) })
        .expect("valid response")
}

/// `/<id>/variables[.json]`: the session's variables, produced by its task (404 unless allowed).
async fn debug_page(
    gw: &Gateway,
    id: &SessionId,
    json: bool,
    peer: &SocketAddr,
    headers: &HeaderMap,
) -> Response<Body> {
    let allowed = match gw.debug_pages {
        DebugPages::Off => false,
        DebugPages::On => true,
        DebugPages::Auto => origin::is_local_debug(peer, headers),
    };
    let inspected = match gw.sessions.get_session(id) {
        Some(handle) if allowed => handle.inspect().await,
        _ => None,
    };
    let Some((items, changes)) = inspected else {
        return html(StatusCode::NOT_FOUND, pages::NOT_FOUND_HTML, true);
    };
    if json {
        return Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .header("x-change-count", changes.to_string())
            .body(Body::from(serde_json::Value::Array(items).to_string()))
            .expect("valid response");
    }
    html_security_headers(Response::builder().status(StatusCode::OK))
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-change-count", changes.to_string())
        .body(Body::from(pages::variables_page(&items, changes)))
        .expect("valid response")
}

async fn static_file(gw: &Gateway, path: &str, headers: &HeaderMap, head: bool) -> Response<Body> {
    if path == "/index.html" {
        return html(StatusCode::NOT_FOUND, pages::NOT_FOUND_HTML, false);
    }
    if let Some(dir) = gw.site.current().html_dir() {
        if let Some(file) = static_files::resolve(&dir, path) {
            if let Ok(bytes) = tokio::fs::read(&file).await {
                return static_files::respond(bytes, static_files::content_type(&file), headers, head);
            }
        }
    }
    match path {
        "/robots.txt" => {
            static_files::respond(pages::ROBOTS_TXT.as_bytes().to_vec(), "text/plain; charset=utf-8", headers, head)
        }
        "/favicon.ico" => static_files::respond(FAVICON_SVG.as_bytes().to_vec(), "image/svg+xml", headers, head),
        _ => html(StatusCode::NOT_FOUND, pages::NOT_FOUND_HTML, false),
    }
}

const FAVICON_SVG: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"><rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#3451b2\"/><path d=\"M4 4v5a4 4 0 0 0 8 0V4\" stroke=\"#fff\" stroke-width=\"2\" fill=\"none\"/></svg>";
