//! Admission (security review H6, the H5 memory ceiling, L1, L4, L7, L8): no client can lock others
//! out, and the HTTP edge refuses what the review found let through. Clients other than 127.0.0.1 are
//! simulated with `--trusted-proxy 127.0.0.1/32` and distinct `X-Forwarded-For` addresses.
//!
//! Tests that read the log run on the default current-thread runtime with a thread-local subscriber
//! (`capture`), so the gateway's tasks log into that test's buffer alone.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use ui_gateway::config::{Mode, ServeArgs};
use ui_gateway::gateway::RunningGateway;
use ui_gateway::session::manager::admission::SessionRate;
use ui_gateway::session::EndReason;

use crate::common::*;

/// A log buffer for this thread: every event the gateway logs at info level while the guard lives.
fn capture() -> (tracing::subscriber::DefaultGuard, Arc<Mutex<Vec<u8>>>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let subscriber = log_subscriber(buf.clone());
    let guard = tracing::subscriber::set_default(subscriber);
    logs_on();
    (guard, buf)
}

/// Recomputes every callsite's interest. Tests on other threads register callsites while this thread's
/// subscriber comes and goes; a registration that races with that can leave a callsite cached as
/// disabled. Called right before the steps whose lines a test reads, so a stale cache cannot hide them.
fn logs_on() {
    tracing::callsite::rebuild_interest_cache();
}

/// The `session destroyed` lines logged so far.
fn destroyed_lines(buf: &Arc<Mutex<Vec<u8>>>) -> Vec<String> {
    let text = String::from_utf8_lossy(&buf.lock().unwrap()).to_string();
    text.lines().filter(|l| l.contains("session destroyed")).map(str::to_string).collect()
}

/// The reason of the `session destroyed` line for `id`, waiting for it.
async fn destroyed_reason(buf: &Arc<Mutex<Vec<u8>>>, id: &str) -> String {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        if let Some(line) = destroyed_lines(buf).into_iter().find(|l| l.contains(id)) {
            let reason = line.split("reason=").nth(1).expect("a reason field");
            return reason.split_whitespace().next().unwrap().trim_matches('"').to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no `session destroyed` line for {id} in:\n{}",
            String::from_utf8_lossy(&buf.lock().unwrap())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of one series in `/metrics` (process-wide: other tests may add to it, never subtract).
async fn metric(gw: &RunningGateway, series: &str) -> f64 {
    let text = http().get(format!("http://{}/metrics", gw.addr)).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("{series} missing"));
    line[series.len()..].trim().parse().unwrap()
}

fn exists(gw: &RunningGateway, id: &str) -> bool {
    gw.gateway.sessions.session_exists(&id.parse().unwrap())
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `GET /` as the client `forwarded_for` (through the trusted loopback proxy), or as 127.0.0.1.
async fn get_root(gw: &RunningGateway, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut req = http().get(format!("http://{}/", gw.addr));
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    req.send().await.unwrap()
}

/// The id a `302` names.
fn location(r: &reqwest::Response) -> String {
    assert_eq!(r.status(), 302, "{r:?}");
    r.headers()["location"].to_str().unwrap().trim_start_matches('/').to_string()
}

/// Meanwhile the gateway serves: `/healthz` answers and another session does an action round trip.
async fn still_serving(gw: &RunningGateway) {
    let r = http().get(format!("http://{}/healthz", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = new_session(gw).await;
    round_trip(gw, &id).await;
}

/// Bootstraps the demo counter on a new socket to `id` and increments it once.
async fn round_trip(gw: &RunningGateway, id: &str) -> Ws {
    let mut ws = connect(gw, id, None).await.unwrap();
    let mut m = demo_counter(&mut ws).await;
    let before = m.value(2).as_i64().unwrap();
    ws.send(set(3, json!(null), true)).await;
    ws.until(&mut m, |m| m.value(2) == json!(before + 1)).await;
    ws
}

/// One raw HTTP/1.1 request; the response head (status line and headers).
async fn raw_head(gw: &RunningGateway, request: &str) -> String {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return String::from_utf8_lossy(&buf[..end]).to_string();
        }
        let mut chunk = [0u8; 1024];
        let n = tokio::time::timeout(STEP, stream.read(&mut chunk)).await.expect("an answer in time").unwrap();
        assert!(n > 0, "the connection closed without an answer: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn upgrade_request(id: &str, host: &str, origins: &[&str]) -> String {
    let mut r = format!(
        "GET /ws/{id} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for o in origins {
        r.push_str(&format!("Origin: {o}\r\n"));
    }
    r.push_str("\r\n");
    r
}

fn behind_loopback_proxy() -> ServeArgs {
    let mut a = args();
    a.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    a
}

/// H6 (1): one client at `--max-sessions-per-client` gets 429 with Retry-After, while another client
/// is still admitted; a destroyed session frees its client's place.
#[tokio::test]
async fn a_client_at_its_cap_gets_429_while_another_client_is_admitted() {
    let mut a = behind_loopback_proxy();
    a.max_sessions_per_client = 2;
    let gw = start(a).await;
    let first = location(&get_root(&gw, Some("203.0.113.1")).await);
    location(&get_root(&gw, Some("203.0.113.1")).await);
    let r = get_root(&gw, Some("203.0.113.1")).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "30");
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    // The same client through a second trusted hop is still that client.
    assert_eq!(get_root(&gw, Some("203.0.113.1, 127.0.0.1")).await.status(), 429);
    // Another client is admitted.
    location(&get_root(&gw, Some("203.0.113.2")).await);
    // A freed place can be used again.
    assert!(gw.gateway.sessions.destroy_session(&first.parse().unwrap(), EndReason::Destroyed));
    location(&get_root(&gw, Some("203.0.113.1")).await);
    assert!(metric(&gw, "ui_sessions_rejected_total{reason=\"client-cap\"}").await >= 2.0);
    still_serving(&gw).await;
}

/// H6 (2): over `--session-rate`, 429 with the seconds until the next token in Retry-After.
#[tokio::test]
async fn creations_over_the_rate_get_429_with_retry_after() {
    let mut a = behind_loopback_proxy();
    a.session_rate = SessionRate::parse("1/m:2").unwrap();
    let gw = start(a).await;
    location(&get_root(&gw, Some("198.51.100.7")).await);
    location(&get_root(&gw, Some("198.51.100.7")).await);
    let r = get_root(&gw, Some("198.51.100.7")).await;
    assert_eq!(r.status(), 429);
    assert!(metric(&gw, "ui_sessions_rejected_total{reason=\"rate\"}").await >= 1.0);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // The bucket is per client (an IPv6 client counts per /64, so its neighbour shares it).
    location(&get_root(&gw, Some("2001:db8:7::1")).await);
    location(&get_root(&gw, Some("2001:db8:7::2")).await);
    assert_eq!(get_root(&gw, Some("2001:db8:7::3")).await.status(), 429);
    location(&get_root(&gw, Some("198.51.100.8")).await);
    still_serving(&gw).await;
}

/// H6 (3): a full table evicts the least recently active session without a connection (reason
/// `evicted`), so the newcomer gets 302; a session with an open WebSocket is never evicted, and when
/// every session has one, 503.
#[tokio::test]
async fn a_full_table_evicts_the_least_recently_active_unconnected_session() {
    let (_guard, logs) = capture();
    let mut a = args();
    a.max_sessions = 3;
    // The log lines are matched by whole session id.
    a.redact_ids = false;
    let gw = start(a).await;
    let connected = new_session(&gw).await;
    let mut ws = round_trip(&gw, &connected).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let older = new_session(&gw).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let newer = new_session(&gw).await;
    tokio::time::sleep(Duration::from_millis(20)).await;

    logs_on();
    let fourth = location(&get_root(&gw, None).await);
    assert_eq!(destroyed_reason(&logs, &older).await, "evicted");
    assert!(!exists(&gw, &older));
    assert!(exists(&gw, &connected) && exists(&gw, &newer) && exists(&gw, &fourth));
    let r = http().get(format!("http://{}/{older}", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 404, "an evicted session has ended");

    tokio::time::sleep(Duration::from_millis(20)).await;
    logs_on();
    let fifth = location(&get_root(&gw, None).await);
    assert_eq!(destroyed_reason(&logs, &newer).await, "evicted");
    assert!(exists(&gw, &connected), "the connected session is the oldest and stays");
    // The connected session kept working through all of it.
    let mut m = Mirror::default();
    ws.send(set(3, json!(null), true)).await;
    ws.until(&mut m, |m| m.value(2) == json!(2)).await;

    // Every session connected: nothing to evict.
    let _a = connect(&gw, &fourth, None).await.unwrap();
    let _b = connect(&gw, &fifth, None).await.unwrap();
    eventually("both sockets are counted", || {
        [&fourth, &fifth]
            .iter()
            .all(|id| gw.gateway.sessions.get_session(&id.parse().unwrap()).unwrap().activity.open_connections() == 1)
    })
    .await;
    let r = get_root(&gw, None).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "30");
    assert_eq!(gw.gateway.sessions.count(), 3);
    assert_eq!(destroyed_lines(&logs).len(), 2, "exactly the two evictions");
    assert!(metric(&gw, "ui_sessions_destroyed_total{reason=\"evicted\"}").await >= 2.0);
    assert!(metric(&gw, "ui_sessions_rejected_total{reason=\"capacity\"}").await >= 1.0);
    let r = http().get(format!("http://{}/healthz", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// H6 (4), the review's repro: with a short `--unclaimed-timeout`, a session whose socket opened and
/// closed without a frame (or with one that did not parse) is still destroyed as unclaimed; one whose
/// browser sent a real frame is claimed and lives on.
#[tokio::test]
async fn a_socket_opened_and_closed_without_a_frame_does_not_claim() {
    let (_guard, logs) = capture();
    let mut a = args();
    a.unclaimed_timeout = Duration::from_millis(300);
    a.session_timeout = Duration::from_secs(3600);
    a.redact_ids = false;
    let gw = start(a).await;
    let opened = new_session(&gw).await;
    let garbage = new_session(&gw).await;
    let claimed = new_session(&gw).await;

    logs_on();
    let ws = connect(&gw, &opened, None).await.unwrap();
    let handle = gw.gateway.sessions.get_session(&opened.parse().unwrap()).unwrap();
    eventually("the socket is counted", || handle.activity.open_connections() == 1).await;
    drop(ws);
    let mut ws = connect(&gw, &garbage, None).await.unwrap();
    ws.send_raw("not json").await;
    let reply = ws.recv().await;
    assert_eq!(reply[0]["data"]["code"], "bad-message");
    drop(ws);
    let mut ws = connect(&gw, &claimed, None).await.unwrap();
    ws.send(watch(1)).await;
    assert!(!ws.recv().await.is_empty());
    drop(ws);

    assert_eq!(destroyed_reason(&logs, &opened).await, "unclaimed");
    assert_eq!(destroyed_reason(&logs, &garbage).await, "unclaimed");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(exists(&gw, &claimed), "a real frame claims the session");
    still_serving(&gw).await;
}

/// H5 (5): over `--max-memory`, `GET /` is 503 with Retry-After and the busy page; existing sessions
/// keep working, and new ones are admitted again once memory is below the ceiling.
#[tokio::test]
async fn over_the_memory_ceiling_new_sessions_get_503_and_existing_ones_keep_working() {
    let gw = start(args()).await;
    let existing = new_session(&gw).await;
    let mut ws = round_trip(&gw, &existing).await;
    // Below the current RSS (which is well over 1 MiB).
    gw.gateway.sessions.admission().set_max_memory(1 << 20);
    let r = get_root(&gw, None).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "30");
    assert!(r.text().await.unwrap().contains("The server is busy"));
    let mut m = Mirror::default();
    ws.send(set(3, json!(null), true)).await;
    ws.until(&mut m, |m| m.value(2) == json!(2)).await;
    assert_eq!(http().get(format!("http://{}/healthz", gw.addr)).send().await.unwrap().status(), 200);
    gw.gateway.sessions.admission().set_max_memory(0);
    still_serving(&gw).await;

    // The flag itself.
    let mut a = args();
    a.max_memory = Some(1 << 20);
    let low = start(a).await;
    assert_eq!(get_root(&low, None).await.status(), 503);
    assert!(metric(&low, "ui_sessions_rejected_total{reason=\"memory\"}").await >= 2.0);
}

/// L7 (6): a `Host` that is not ours gets 421 on every browser route (DNS rebinding), names given with
/// `--allowed-host` and IP literals pass; a WebSocket request with two `Origin` headers gets 403.
#[tokio::test]
async fn foreign_hosts_get_421_and_two_origins_get_403() {
    let mut a = args();
    a.allowed_hosts = vec!["App.Example".into()];
    let gw = start(a).await;
    let addr = gw.addr;
    let get = |path: &str, host: &str| format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let id = new_session(&gw).await;
    for path in ["/".to_string(), "/_ui/main.js".into(), "/robots.txt".into(), format!("/{id}")] {
        let head = raw_head(&gw, &get(&path, "evil.example")).await;
        assert!(head.starts_with("HTTP/1.1 421"), "{path}: {head}");
    }
    // Probes and scrapers may use any name; these routes hold no session data.
    for path in ["/healthz", "/metrics"] {
        let head = raw_head(&gw, &get(path, "gateway.internal")).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    }
    assert!(raw_head(&gw, &get("/", &addr.to_string())).await.starts_with("HTTP/1.1 302"));
    assert!(raw_head(&gw, &get("/", "app.example:8443")).await.starts_with("HTTP/1.1 302"));
    assert!(raw_head(&gw, &get("/", &format!("localhost:{}", addr.port()))).await.starts_with("HTTP/1.1 302"));

    let own = format!("http://{addr}");
    // The rebinding page: its own name in Host and Origin.
    let head = raw_head(&gw, &upgrade_request(&id, "evil.example", &["http://evil.example"])).await;
    assert!(head.starts_with("HTTP/1.1 421"), "{head}");
    let head = raw_head(&gw, &upgrade_request(&id, &addr.to_string(), &[&own, "http://evil.example"])).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let head = raw_head(&gw, &upgrade_request(&id, &addr.to_string(), &[&own, &own])).await;
    assert!(head.starts_with("HTTP/1.1 403"), "two Origin headers, even equal ones: {head}");
    let head = raw_head(&gw, &upgrade_request(&id, &addr.to_string(), &[&own])).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(metric(&gw, "ui_http_refused_total{reason=\"host\"}").await >= 5.0);
    // A backend may connect by any name (it authenticates on its own): not 421.
    let head = raw_head(&gw, &get("/backend", "gateway.internal")).await;
    assert!(!head.starts_with("HTTP/1.1 421"), "{head}");
    still_serving(&gw).await;
}

/// L4 (7): other methods on `/ws/<id>` get 405 with `Allow: GET`.
#[tokio::test]
async fn other_methods_on_the_browser_socket_get_405_with_allow() {
    let gw = start(args()).await;
    let id = new_session(&gw).await;
    for method in [reqwest::Method::POST, reqwest::Method::HEAD, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let r = http().request(method.clone(), format!("http://{}/ws/{id}", gw.addr)).send().await.unwrap();
        assert_eq!(r.status(), 405, "{method}");
        assert_eq!(r.headers()["allow"], "GET", "{method}");
    }
    still_serving(&gw).await;
}

/// L8 (8): the `Bearer` scheme is case-insensitive; the token is still compared exactly.
#[tokio::test]
async fn a_lowercase_bearer_scheme_is_accepted() {
    let mut a = args();
    a.site = Some(site(&[("viewdefs/Counter.DEFAULT.html", "<template><span ui-value=\"count\"></span></template>")]));
    a.mode = Mode::Connected;
    a.backend_token = Some("0123456789abcdef-token".into());
    let gw = start(a).await;
    let refused = connect_backend(&gw, &[("authorization", "bearer 0123456789abcdef-TOKEN")]).await;
    assert!(refused.is_err(), "the token itself is case-sensitive");
    let mut k = connect_backend(&gw, &[("authorization", "bearer 0123456789abcdef-token")]).await.unwrap();
    assert_eq!(k.recv_json().await["welcome"]["protocol"], 1);
    assert_eq!(http().get(format!("http://{}/healthz", gw.addr)).send().await.unwrap().status(), 200);
}

/// L1 (9): with `--redact-ids`, `session destroyed` lines carry 8 hex digits, never the whole id, for
/// every reason (destroyed, evicted).
#[tokio::test]
async fn redacted_ids_stay_redacted_in_session_destroyed_lines() {
    let (_guard, logs) = capture();
    let mut a = args();
    a.redact_ids = true;
    a.max_sessions = 2;
    let gw = start(a).await;
    let destroyed = new_session(&gw).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let evicted = new_session(&gw).await;
    logs_on();
    assert!(gw.gateway.sessions.destroy_session(&destroyed.parse().unwrap(), EndReason::Destroyed));
    tokio::time::sleep(Duration::from_millis(20)).await;
    new_session(&gw).await;
    new_session(&gw).await; // evicts `evicted`
    assert!(!exists(&gw, &evicted));
    let lines = destroyed_lines(&logs);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (id, reason) in [(&destroyed, "destroyed"), (&evicted, "evicted")] {
        let line = lines.iter().find(|l| l.contains(&format!("internal={}", &id[..8]))).expect("a line");
        assert!(line.contains(&format!("reason=\"{reason}\"")), "{line}");
        assert!(!line.contains(id.as_str()), "the whole id is logged: {line}");
    }
    let all = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    assert!(!all.contains(destroyed.as_str()) && !all.contains(evicted.as_str()));
    still_serving(&gw).await;
}
