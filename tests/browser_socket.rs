//! The browser WebSocket against the real server (issue: foundation).

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use ui_gateway::session::EndReason;

#[tokio::test]
async fn watch_of_variable_one_gets_viewdefs_then_value_and_type() {
    let gw = start(args()).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, Some(&format!("http://{}", gw.addr))).await.unwrap();
    ws.send(watch(1)).await;
    let frame = ws.recv().await;
    assert_eq!(frame.len(), 2, "{frame:?}");
    assert_eq!(frame[0]["data"]["varId"], 1);
    let viewdefs: serde_json::Value =
        serde_json::from_str(frame[0]["data"]["properties"]["viewdefs"].as_str().unwrap()).unwrap();
    assert!(viewdefs["Demo.DEFAULT"].as_str().unwrap().starts_with("<template>"));
    assert!(frame[0]["data"].get("value").is_none());
    assert_eq!(frame[1], json!({"type":"update","data":{"varId":1,"value":{"obj":1},"properties":{"type":"Demo"}}}));
    // Watching again answers the full state again, without repeating the viewdefs.
    ws.send(json!([{"type":"watch","data":{"varId":1}}])).await;
    let frame = ws.recv().await;
    assert_eq!(frame, vec![json!({"type":"update","data":{"varId":1,"value":{"obj":1},"properties":{"type":"Demo"}}})]);
}

#[tokio::test]
async fn malformed_frames_get_typed_errors_and_the_socket_stays_usable() {
    let gw = start(args()).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    for bad in ["not json", "42", "{\"messages\":{}}", "{}"] {
        ws.send_raw(bad).await;
        let frame = ws.recv().await;
        assert_eq!(
            frame,
            vec![
                json!({"type":"error","data":{"varId":0,"code":"bad-message","description":frame[0]["data"]["description"]}})
            ]
        );
    }
    // Bad messages inside a good frame: errors for those, the rest applies.
    ws.send(json!({"userEvent":true,"messages":[{"type":"poll","data":{"varId":4}},{"type":"watch","data":{"varId":1}},{"type":"watch","data":{"varId":77}}]})).await;
    let frame = ws.recv().await;
    let codes: Vec<(i64, &str)> = frame
        .iter()
        .filter(|m| m["type"] == "error")
        .map(|m| (m["data"]["varId"].as_i64().unwrap(), m["data"]["code"].as_str().unwrap()))
        .collect();
    assert_eq!(codes, vec![(4, "bad-message"), (77, "not-found")]);
    assert!(frame.iter().any(|m| m["type"] == "update" && m["data"]["varId"] == 1));
    // Browsers may not write variable 1 or destroy it.
    ws.send(json!({"userEvent":true,"messages":[{"type":"update","data":{"varId":1,"value":3}},{"type":"destroy","data":{"varId":1}}]})).await;
    let frame = ws.recv().await;
    let codes: Vec<&str> = frame.iter().map(|m| m["data"]["code"].as_str().unwrap()).collect();
    assert_eq!(codes, vec!["access-denied", "access-denied"]);
}

#[tokio::test]
async fn cross_origin_sockets_are_refused_before_the_upgrade() {
    let gw = start(args()).await;
    let id = new_session(&gw).await;
    let err = connect(&gw, &id, Some("http://evil.example")).await.err().expect("refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 403),
        other => panic!("expected HTTP 403, got {other}"),
    }
    let err = connect(&gw, &id, Some("null")).await.err().expect("refused");
    assert!(matches!(err, tokio_tungstenite::tungstenite::Error::Http(r) if r.status() == 403));
}

#[tokio::test]
async fn allowed_origins_are_accepted() {
    let mut a = args();
    a.allowed_origins = vec!["https://app.example".into()];
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, Some("https://app.example")).await.unwrap();
    ws.send(watch(1)).await;
    assert!(!ws.recv().await.is_empty());
}

#[tokio::test]
async fn unknown_sessions_are_closed_with_4404() {
    let gw = start(args()).await;
    let mut ws = connect(&gw, &ui_gateway::ids::SessionId::generate().to_string(), None).await.unwrap();
    assert_eq!(ws.closed().await, 4404);
    let mut ws = connect(&gw, "not-a-session", None).await.unwrap();
    assert_eq!(ws.closed().await, 4404);
}

#[tokio::test]
async fn destroying_a_session_closes_its_sockets_with_4404() {
    let gw = start(args()).await;
    let id = new_session(&gw).await;
    let mut a = connect(&gw, &id, None).await.unwrap();
    let mut b = connect(&gw, &id, None).await.unwrap();
    a.send(watch(1)).await;
    a.recv().await;
    assert!(gw.gateway.sessions.destroy_session(&id.parse().unwrap(), EndReason::Timeout));
    assert_eq!(a.closed().await, 4404);
    assert_eq!(b.closed().await, 4404);
}

#[tokio::test]
async fn connection_limit_closes_with_4429() {
    let mut a = args();
    a.max_connections = 2;
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut first = connect(&gw, &id, None).await.unwrap();
    let _second = connect(&gw, &id, None).await.unwrap();
    let mut third = connect(&gw, &id, None).await.unwrap();
    assert_eq!(third.closed().await, 4429);
    first.send(watch(1)).await;
    assert!(!first.recv().await.is_empty(), "existing connections keep working");
}

#[tokio::test]
async fn oversized_frames_close_with_1009() {
    let mut a = args();
    a.max_frame = 1024;
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    ws.send_raw(&format!("[{}]", " ".repeat(4096))).await;
    assert_eq!(ws.closed().await, 1009);
    // The session lives on for a new connection.
    let mut ws = connect(&gw, &id, None).await.unwrap();
    ws.send(watch(1)).await;
    assert!(!ws.recv().await.is_empty());
}

#[tokio::test]
async fn failing_main_lua_keeps_the_session_and_watch_gets_lua_error() {
    let dir = site(&[("lua/main.lua", "local x = nil\nerror('cannot start: ' .. 'broken config')")]);
    let mut a = args();
    a.site = Some(dir);
    // Without --watch such a site does not start at all (see the next test).
    a.watch = true;
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    ws.send(watch(1)).await;
    let frame = ws.recv().await;
    assert_eq!(frame.len(), 1);
    assert_eq!(frame[0]["type"], "error");
    assert_eq!(frame[0]["data"]["varId"], 1);
    assert_eq!(frame[0]["data"]["code"], "lua-error");
    assert!(frame[0]["data"]["description"].as_str().unwrap().contains("cannot start: broken config"));
}

/// A `main.lua` that does not compile, or fails when run, stops the gateway at startup with the file,
/// the line and the message (exit code 1), instead of a page that breaks for every visitor.
#[tokio::test]
async fn startup_refuses_a_main_lua_that_does_not_load() {
    for (source, line, text) in [
        ("local App = {}\nfunction App:total(\nlocal x = 1\nend", 3, "expected"),
        ("local t = {}\n\nlocal n = t.count + 1", 3, "attempt to perform arithmetic"),
    ] {
        let mut a = args();
        a.site = Some(site(&[("lua/main.lua", source)]));
        let e = match ui_gateway::gateway::RunningGateway::start(&a).await {
            Err(e) => e,
            Ok(_) => panic!("a broken main.lua must not start: {source}"),
        };
        let message = e.to_string();
        assert!(matches!(e, ui_gateway::gateway::StartError::MainLua { .. }), "{message}");
        assert!(message.contains(&format!("lua/main.lua:{line}:")), "{message}");
        assert!(message.contains(text), "{message}");
        assert!(message.contains("--watch"), "the message says how to fix it while running: {message}");
        assert_eq!(e.exit_code(), 1);
    }
}

#[tokio::test]
async fn runaway_main_lua_is_a_timeout_not_a_hang() {
    let dir = site(&[("lua/main.lua", "while true do end")]);
    let mut a = args();
    a.site = Some(dir);
    a.watch = true;
    a.lua_instructions = 2_000_000;
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    ws.send(watch(1)).await;
    let frame = ws.recv().await;
    assert_eq!(frame[0]["data"]["code"], "lua-timeout");
}

#[tokio::test]
async fn binary_frames_are_accepted_and_silent_peers_are_closed() {
    let mut a = args();
    a.ping_interval = Duration::from_millis(100);
    a.idle_close = Duration::from_millis(400);
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    use futures::SinkExt;
    ws.stream
        .send(tokio_tungstenite::tungstenite::Message::Binary(watch(1).to_string().into_bytes().into()))
        .await
        .unwrap();
    assert!(!ws.recv().await.is_empty());
    // The test client answers pings only while it reads; holding off reading makes it silent.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(ws.closed().await, 4408);
}
