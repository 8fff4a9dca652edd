//! HTTP surface and session lifecycle against the real server (issue: foundation).

mod common;

use std::time::Duration;

use common::*;
use ui_gateway::ids::{SessionId, VendedId};

#[tokio::test]
async fn get_root_redirects_to_a_fresh_session_url() {
    let gw = start(args()).await;
    let r = http().get(format!("http://{}/", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let loc = r.headers()["location"].to_str().unwrap();
    assert_eq!(loc.len(), 33);
    assert!(loc.starts_with('/'));
    let id = &loc[1..];
    assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{loc}");
    assert!(gw.gateway.sessions.session_exists(&id.parse::<SessionId>().unwrap()));
}

#[tokio::test]
async fn session_page_serves_the_shell_with_the_cookie() {
    let gw = start(args()).await;
    let id = new_session(&gw).await;
    let r = http().get(format!("http://{}/{id}", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["set-cookie"], format!("ui-session={id}; Path=/; SameSite=Lax").as_str());
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["content-security-policy"], "frame-ancestors 'self'");
    assert!(r.text().await.unwrap().contains("<html"));
    // Deeper paths under the session serve the shell too.
    let r = http().get(format!("http://{}/{id}/contacts/3", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Behind an https proxy the cookie is Secure.
    let r = http().get(format!("http://{}/{id}", gw.addr)).header("x-forwarded-proto", "https").send().await.unwrap();
    assert!(r.headers()["set-cookie"].to_str().unwrap().ends_with("; Secure"));
}

#[tokio::test]
async fn unknown_session_gets_a_404_page_linking_home() {
    let gw = start(args()).await;
    let r = http().get(format!("http://{}/{}", gw.addr, SessionId::generate())).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().get("set-cookie").is_none());
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(r.text().await.unwrap().contains("href=\"/\""));
}

#[tokio::test]
async fn only_get_root_creates_sessions() {
    let gw = start(args()).await;
    let r = http().head(format!("http://{}/", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = http().post(format!("http://{}/", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers()["allow"].to_str().unwrap().contains("GET"));
    let r = http().get(format!("http://{}/healthz", gw.addr)).send().await.unwrap();
    let health: serde_json::Value = r.json().await.unwrap();
    assert_eq!(health["sessions"], 0);
    assert_eq!(health["mode"], "embedded");
    assert_eq!(gw.gateway.sessions.count(), 0);
}

#[tokio::test]
async fn each_session_gets_its_own_vended_id_lua_state_and_variable_one() {
    let dir = site(&[(
        "lua/main.lua",
        "seen = (seen or 0) + 1\nlocal App = {type = 'App' .. seen .. '_' .. session._sessionID}\nApp.__index = App\nsession:createAppVariable(setmetatable({}, App))",
    )]);
    let mut a = args();
    a.site = Some(dir);
    let gw = start(a).await;
    let first = new_session(&gw).await;
    let second = new_session(&gw).await;
    let m = &gw.gateway.sessions;
    assert_eq!(m.get_vended_id(&first.parse().unwrap()), Some(VendedId(1)));
    assert_eq!(m.get_vended_id(&second.parse().unwrap()), Some(VendedId(2)));
    for (id, expected_type) in [(&first, "App1_1"), (&second, "App1_2")] {
        let mut ws = connect(&gw, id, None).await.unwrap();
        ws.send(watch(1)).await;
        let frame = ws.recv().await;
        let update = frame.last().unwrap();
        assert_eq!(update["data"]["varId"], 1);
        assert_eq!(update["data"]["value"], serde_json::json!({"obj": 1}));
        // `seen` is 1 in both: the second session's main.lua did not see the first one's global.
        assert_eq!(update["data"]["properties"]["type"], expected_type);
    }
}

#[tokio::test]
async fn static_files_assets_and_robots() {
    let dir = site(&[
        ("html/app.css", "body{}"),
        ("html/index.html", "<html>custom shell</html>"),
        ("lua/main.lua", "session:createAppVariable({})"),
    ]);
    let mut a = args();
    a.site = Some(dir);
    let gw = start(a).await;
    let r = http().get(format!("http://{}/app.css", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = http().get(format!("http://{}/app.css", gw.addr)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(http().get(format!("http://{}/index.html", gw.addr)).send().await.unwrap().status(), 404);
    assert_eq!(http().get(format!("http://{}/%2e%2e/lua/main.lua", gw.addr)).send().await.unwrap().status(), 404);
    let r = http().get(format!("http://{}/robots.txt", gw.addr)).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("Disallow: /"));
    let id = new_session(&gw).await;
    let r = http().get(format!("http://{}/{id}", gw.addr)).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), "<html>custom shell</html>");
    let r = http().get(format!("http://{}/_ui/shell.js", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
}

/// At the cap with the only session connected (nothing to evict): 503.
#[tokio::test]
async fn session_cap_answers_503_with_retry_after() {
    let mut a = args();
    a.max_sessions = 1;
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    ws.send(watch(1)).await;
    assert!(!ws.recv().await.is_empty(), "the socket is open and counted");
    let r = http().get(format!("http://{}/", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "30");
}

#[tokio::test]
async fn expired_sessions_are_destroyed() {
    let mut a = args();
    a.session_timeout = Duration::from_millis(300);
    a.unclaimed_timeout = Duration::from_millis(300);
    let gw = start(a).await;
    let id = new_session(&gw).await;
    // Connected, the session never expires.
    let ws = connect(&gw, &id, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(gw.gateway.sessions.session_exists(&id.parse().unwrap()));
    drop(ws);
    // Idle after the close: gone within the timeout plus a sweep period or two.
    let mut gone = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if !gw.gateway.sessions.session_exists(&id.parse().unwrap()) {
            gone = true;
            break;
        }
    }
    assert!(gone, "idle session expired");
    assert_eq!(http().get(format!("http://{}/{id}", gw.addr)).send().await.unwrap().status(), 404);
    let mut ws = connect(&gw, &id, None).await.unwrap();
    assert_eq!(ws.closed().await, 4404);
}

#[tokio::test]
async fn metrics_expose_every_listed_family() {
    let gw = start(args()).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    ws.send(watch(1)).await;
    ws.recv().await;
    ws.send_raw("not json").await;
    ws.recv().await;
    let r = http().get(format!("http://{}/metrics", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let text = r.text().await.unwrap();
    for family in [
        "ui_build_info{",
        "ui_sessions ",
        "ui_sessions_created_total ",
        "ui_sessions_rejected_total{reason=\"capacity\"} ",
        "ui_sessions_destroyed_total{reason=\"evicted\"} ",
        "ui_connections{kind=\"browser\"} ",
        "ui_frames_received_total{kind=\"browser\"} ",
        "ui_frames_sent_total{kind=\"browser\"} ",
        "ui_bytes_received_total{kind=\"browser\"} ",
        "ui_bytes_sent_total{kind=\"browser\"} ",
        "ui_messages_received_total{kind=\"browser\",type=\"watch\"} ",
        "ui_errors_sent_total{code=\"bad-message\"} ",
        "ui_batch_duration_seconds_bucket{",
        "ui_variables{owner=\"lua\"} ",
        "ui_lua_memory_bytes ",
        "ui_backend_connected ",
        "ui_backend_buffered_messages ",
        "ui_backend_buffer_dropped_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
        "process_cpu_seconds_total ",
        "ui_sessions_destroyed_total{reason=\"timeout\"} ",
        "ui_connections_closed_total{kind=\"browser\",code=\"1000\"} ",
        "ui_connections_refused_total{kind=\"backend\",reason=\"busy\"} ",
        "ui_lua_limit_hits_total{limit=\"memory\"} ",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    gw.shutdown(std::time::Duration::from_secs(2)).await;

    let mut a = args();
    a.no_metrics = true;
    let gw = start(a).await;
    let r = http().get(format!("http://{}/metrics", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    gw.shutdown(std::time::Duration::from_secs(2)).await;
}

/// One series of `/metrics`, e.g. `ui_sessions_destroyed_total{reason="ended"}`.
async fn metric(gw: &ui_gateway::gateway::RunningGateway, series: &str) -> f64 {
    let text = http().get(format!("http://{}/metrics", gw.addr)).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("{series} missing"));
    line[series.len()..].trim().parse().unwrap()
}

/// `DELETE /<id>` (docs/deployment.md "HTTP routes"): 204, the session's socket closes with 4404, the
/// backend hears `closed`, the URL is dead afterwards and the end is counted with reason `ended`. Only
/// `/<id>` itself can be deleted; an unknown id is a 404. (The one test in this binary that ends
/// sessions this way or refuses by origin, so the metric deltas are exact.)
#[tokio::test]
async fn delete_ends_a_session_and_refuses_other_sites() {
    let mut a = args();
    a.mode = ui_gateway::config::Mode::Connected;
    a.allowed_origins = vec!["https://app.example".into()];
    let gw = start(a).await;
    let ended_before = metric(&gw, "ui_sessions_destroyed_total{reason=\"ended\"}").await;
    let refused_before = metric(&gw, "ui_http_refused_total{reason=\"origin\"}").await;
    let mut k = connect_backend(&gw, &[]).await.unwrap();
    assert_eq!(k.recv_json().await["welcome"]["mode"], "connected");
    let id = new_session(&gw).await;
    let other = new_session(&gw).await;
    let exists = |id: &str| gw.gateway.sessions.session_exists(&id.parse().unwrap());
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let url = format!("http://{}/{id}", gw.addr);

    // Another site's page cannot end it: 403, and the session lives on. A name this gateway does not
    // answer to is refused before routing (421), as for every browser route.
    let r = http().delete(&url).header("origin", "http://evil.example").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = http().delete(&url).header("host", "evil.example").send().await.unwrap();
    assert_eq!(r.status(), 421);
    assert!(exists(&id));
    assert_eq!(metric(&gw, "ui_http_refused_total{reason=\"origin\"}").await - refused_before, 1.0);

    // The page itself (same origin) may end it.
    let r = http().delete(&url).header("origin", format!("http://{}", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(ws.closed().await, 4404);
    loop {
        let m = k.recv_json().await;
        if m["event"] == "closed" {
            assert_eq!(m["session"], "1", "the deleted session, not the other one: {m}");
            break;
        }
    }
    assert!(!exists(&id) && exists(&other));
    assert_eq!(http().get(&url).send().await.unwrap().status(), 404);
    assert_eq!(http().delete(&url).send().await.unwrap().status(), 404, "already ended");
    let unknown = format!("http://{}/{}", gw.addr, SessionId::generate());
    assert_eq!(http().delete(&unknown).send().await.unwrap().status(), 404);

    // Only the session URL itself; other methods on it name DELETE as allowed.
    let r = http().delete(format!("http://{}/{other}/variables", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    let r = http().post(format!("http://{}/{other}", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD, DELETE");
    assert!(exists(&other));

    // A listed --allowed-origin may end it; so may a client that sends no Origin (not a browser).
    let r = http()
        .delete(format!("http://{}/{other}", gw.addr))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let third = new_session(&gw).await;
    assert_eq!(http().delete(format!("http://{}/{third}", gw.addr)).send().await.unwrap().status(), 204);
    assert_eq!(gw.gateway.sessions.count(), 0);
    assert_eq!(metric(&gw, "ui_sessions_destroyed_total{reason=\"ended\"}").await - ended_before, 3.0);
}
