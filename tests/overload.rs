//! Limits and overload against the real server (issue 7): one test per row of docs/limits.md that
//! no other test file covers. Rows covered elsewhere: connections per session (4429), browser inbound
//! frame (1009) and liveness (4408) in `tests/browser_socket.rs`; Lua heap / instructions in
//! `tests/lua_session.rs`; the backend row in `tests/backend.rs` and the backend vectors.
//!
//! Nothing here fails on wall-clock latency: timings are measured and printed only.

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use ui_gateway::gateway::RunningGateway;
use ui_gateway::ids::SessionId;

/// Everything the gateway logs at info level in this test binary (one global subscriber), so tests
/// can check the `reason` of a `session destroyed` line by the session's internal id.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let _ = tracing::subscriber::set_global_default(log_subscriber(buf.clone()));
        buf
    })
    .clone()
}

/// The `reason` of the `session destroyed` line logged for `id`, once there is one.
async fn destroyed_reason(id: &str) -> String {
    let logs = logs();
    let deadline = Instant::now() + STEP;
    loop {
        let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
        // Ids are redacted to their first 8 hex digits by default.
        if let Some(line) = text.lines().find(|l| l.contains("session destroyed") && l.contains(&id[..8])) {
            let reason = line.split("reason=").nth(1).expect("a reason field").split_whitespace().next().unwrap();
            return reason.trim_matches('"').to_string();
        }
        assert!(Instant::now() < deadline, "no `session destroyed` line for {id}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn exists(gw: &RunningGateway, id: &str) -> bool {
    gw.gateway.sessions.session_exists(&id.parse::<SessionId>().unwrap())
}

/// Waits (up to a generous bound) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn increments(n: usize) -> Value {
    let messages: Vec<Value> = (0..n).map(|_| json!({"type":"update","data":{"varId":3,"value":null}})).collect();
    json!({"userEvent": true, "messages": messages})
}

/// docs/limits.md row "live sessions": at `--max-sessions` with every session connected (an unconnected one would
/// be evicted for the newcomer, see tests/isolation/admission.rs), `GET /` is `503` with
/// `Retry-After: 30` and a small HTML page; existing sessions are unaffected, and a freed slot can be
/// used again.
#[tokio::test]
async fn session_cap_answers_503_and_existing_sessions_keep_working() {
    let mut a = args();
    a.max_sessions = 2;
    let gw = start(a).await;
    let first = new_session(&gw).await;
    let second = new_session(&gw).await;
    let mut ws = connect(&gw, &first, None).await.unwrap();
    let _second_ws = connect(&gw, &second, None).await.unwrap();
    eventually("both sockets are counted", || {
        [&first, &second].iter().all(|id| {
            let handle = gw.gateway.sessions.get_session(&id.parse().unwrap()).unwrap();
            handle.activity.open_connections() == 1
        })
    })
    .await;
    let r = http().get(format!("http://{}/", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "30");
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("<html"));
    assert_eq!(gw.gateway.sessions.count(), 2);
    // The existing sessions work: page, socket, Lua.
    assert_eq!(http().get(format!("http://{}/{first}", gw.addr)).send().await.unwrap().status(), 200);
    let mut m = demo_counter(&mut ws).await;
    ws.send(increments(1)).await;
    ws.until(&mut m, |m| m.value(2) == json!(1)).await;
    // A destroyed session frees its slot.
    gw.gateway.sessions.destroy_session(&second.parse().unwrap(), ui_gateway::session::EndReason::Destroyed);
    new_session(&gw).await;
}

/// docs/limits.md row "never-connected sessions": a session that never had a WebSocket is destroyed after
/// `--unclaimed-timeout` with reason `unclaimed`; one whose browser sent a frame lives on (the longer
/// idle timeout applies to it). A socket that opens and closes without a frame does not claim
/// (tests/isolation/admission.rs).
#[tokio::test]
async fn never_connected_sessions_are_destroyed_as_unclaimed() {
    let mut a = args();
    a.unclaimed_timeout = Duration::from_millis(300);
    a.session_timeout = Duration::from_secs(3600);
    let gw = start(a).await;
    logs();
    let unclaimed = new_session(&gw).await;
    let claimed = new_session(&gw).await;
    let mut ws = connect(&gw, &claimed, None).await.unwrap();
    ws.send(watch(1)).await;
    assert!(!ws.recv().await.is_empty());
    drop(ws);
    eventually("the unclaimed session is gone", || !exists(&gw, &unclaimed)).await;
    assert_eq!(destroyed_reason(&unclaimed).await, "unclaimed");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(exists(&gw, &claimed), "a session whose browser sent a frame is not unclaimed");
}

/// docs/limits.md row "idle sessions": a session with no connection is destroyed after `--session-timeout`
/// (reason `timeout`); a session with an open (silent) connection never expires.
#[tokio::test]
async fn idle_sessions_time_out_but_connected_ones_never_do() {
    let mut a = args();
    a.session_timeout = Duration::from_millis(300);
    a.unclaimed_timeout = Duration::from_secs(3600);
    let gw = start(a).await;
    logs();
    let idle = new_session(&gw).await;
    let connected = new_session(&gw).await;
    let mut ws = connect(&gw, &connected, None).await.unwrap();
    // A real frame claims the session, so the idle timeout (not the unclaimed one) applies.
    let mut closed = connect(&gw, &idle, None).await.unwrap();
    closed.send(watch(1)).await;
    assert!(!closed.recv().await.is_empty());
    drop(closed);
    eventually("the idle session is gone", || !exists(&gw, &idle)).await;
    assert_eq!(destroyed_reason(&idle).await, "timeout");
    // The connected session has been silent for several timeouts (and sweep periods) and is alive.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(exists(&gw, &connected), "a session with an open connection never expires");
    ws.send(watch(1)).await;
    assert!(!ws.recv().await.is_empty());
    // Once its connection closes, it expires too.
    drop(ws);
    eventually("the formerly connected session is gone", || !exists(&gw, &connected)).await;
    assert_eq!(destroyed_reason(&connected).await, "timeout");
}

/// docs/limits.md row "messages per frame": more than `--max-messages` in one frame is one `limit-exceeded`
/// error (varId 0); none of its messages runs; the session keeps working (exactly the limit is fine).
#[tokio::test]
async fn too_many_messages_is_limit_exceeded_and_nothing_runs() {
    let mut a = args();
    a.max_messages = 3;
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let mut m = demo_counter(&mut ws).await;
    assert_eq!(m.value(2), json!(0));
    ws.send(increments(4)).await;
    let frame = ws.recv().await;
    assert_eq!(frame.len(), 1, "{frame:?}");
    assert_eq!(frame[0]["type"], "error");
    assert_eq!(frame[0]["data"]["varId"], 0);
    assert_eq!(frame[0]["data"]["code"], "limit-exceeded");
    assert!(frame[0]["data"]["description"].is_string());
    ws.send(increments(3)).await;
    ws.until(&mut m, |m| m.value(2) == json!(3)).await;
    assert_eq!(m.value(2), json!(3), "the refused frame's four increments did not run");
}

/// docs/limits.md row "JSON depth": a frame nested deeper than `--max-json-depth` is one `bad-message` error
/// (varId 0); nothing in it runs; the session keeps working.
#[tokio::test]
async fn too_deep_json_is_bad_message_and_nothing_runs() {
    let mut a = args();
    a.max_json_depth = 6;
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let mut m = demo_counter(&mut ws).await;
    // wrapper 1, messages 2, message 3, data 4, value 5…8.
    ws.send(json!({"userEvent":true,"messages":[
        {"type":"update","data":{"varId":3,"value":null}},
        {"type":"update","data":{"varId":3,"value":[[[[1]]]]}}]}))
        .await;
    let frame = ws.recv().await;
    assert_eq!(frame.len(), 1, "{frame:?}");
    assert_eq!(frame[0]["type"], "error");
    assert_eq!(frame[0]["data"]["varId"], 0);
    assert_eq!(frame[0]["data"]["code"], "bad-message");
    // Depth 6 exactly is accepted.
    ws.send(json!({"userEvent":true,"messages":[{"type":"update","data":{"varId":3,"value":[[1]]}}]})).await;
    ws.until(&mut m, |m| m.value(2) == json!(1)).await;
    assert_eq!(m.value(2), json!(1), "the refused frame's increment did not run");
}

/// docs/limits.md row "variables per session": past `--max-variables` (all owners) a create is `limit-exceeded`
/// for its id; nothing else changes, and a freed slot can be used again.
#[tokio::test]
async fn variable_limit_is_limit_exceeded_and_the_session_keeps_working() {
    let mut a = args();
    a.site = Some(site(&[("lua/main.lua", "session:createAppVariable({a = 1, b = 2, c = 3, d = 4, e = 5})")]));
    a.max_variables = 5;
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let mut m = Mirror::default();
    ws.send(watch(1)).await;
    ws.until(&mut m, |m| m.values.contains_key(&1)).await;
    // Variable 1 plus four creates reach the limit; the fifth create is refused.
    ws.send(creates(&[
        (2, 1, json!({"path":"a","access":"r"})),
        (3, 1, json!({"path":"b","access":"r"})),
        (4, 1, json!({"path":"c","access":"r"})),
        (5, 1, json!({"path":"d","access":"r"})),
        (6, 1, json!({"path":"e","access":"r"})),
    ]))
    .await;
    ws.until(&mut m, |m| m.errors.contains_key(&6) && m.values.contains_key(&5)).await;
    assert_eq!(m.errors[&6], "limit-exceeded");
    assert_eq!((m.value(2), m.value(5)), (json!(1), json!(4)));
    // The session keeps working: destroy one, and the refused create now succeeds.
    ws.send(json!({"userEvent":false,"messages":[{"type":"destroy","data":{"varId":5}}]})).await;
    ws.send(creates(&[(6, 1, json!({"path":"e","access":"r"}))])).await;
    ws.until(&mut m, |m| m.value(6) == json!(5)).await;
    // One more is over the limit again.
    ws.send(creates(&[(7, 1, json!({"path":"a","access":"r"}))])).await;
    ws.until(&mut m, |m| m.errors.contains_key(&7)).await;
    assert_eq!(m.errors[&7], "limit-exceeded");
}

/// docs/limits.md row "session mailbox": with `--mailbox 1`, a burst of frames from a browser makes its socket
/// reader wait (TCP back-pressure) and loses nothing: every frame is applied and every error answered.
#[tokio::test]
async fn a_burst_through_a_tiny_mailbox_loses_nothing() {
    const FRAMES: usize = 300;
    let mut a = args();
    a.mailbox = 1;
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let mut m = demo_counter(&mut ws).await;
    let (mut tx, mut rx) = ws.stream.split();
    let started = Instant::now();
    // Each frame: one increment and one watch of an id this tab does not know (answered not-found).
    let sender = tokio::spawn(async move {
        for _ in 0..FRAMES {
            let frame = json!({"userEvent":true,"messages":[
                {"type":"update","data":{"varId":3,"value":null}},
                {"type":"watch","data":{"varId":999}}]});
            tx.send(Message::Text(frame.to_string().into())).await.unwrap();
        }
        tx
    });
    let mut not_found = 0;
    while not_found < FRAMES || m.value(2) != json!(FRAMES) {
        let msg = tokio::time::timeout(STEP, rx.next()).await.expect("progress").unwrap().unwrap();
        let Message::Text(text) = msg else { continue };
        let frame: Vec<Value> = serde_json::from_str(&text).unwrap();
        not_found += frame.iter().filter(|f| f["type"] == "error" && f["data"]["code"] == "not-found").count();
        m.apply(&frame);
    }
    let _tx = sender.await.unwrap();
    assert_eq!(not_found, FRAMES, "every frame answered once");
    assert_eq!(m.value(2), json!(FRAMES), "every increment applied");
    println!("mailbox: {FRAMES} frames through a mailbox of 1 in {:?}", started.elapsed());
}

/// A Lua app whose `flood()` makes the session change a 32 KiB string every 5 ms for as long as it
/// lives, so a tab that watches `blob` gets far more than it can buffer if it stops reading.
const FLOOD_APP: &str = r#"
App = session:prototype("App", {count = 0, blob = ""})
function App:increment() self.count = self.count + 1 end
function App:flood()
  if self.flooding then return end
  self.flooding = true
  local n = 0
  session:setInterval(function()
    n = n + 1
    self.blob = string.rep(string.char(65 + n % 26), 32768) .. n
  end, 5)
end
session:createAppVariable(App:new())
"#;

/// Starts the flood on a raw tab of a new session that then stops reading; returns the session id.
async fn flooding_tab(gw: &RunningGateway) -> (String, RawWs) {
    let id = new_session(gw).await;
    // A small receive buffer: the bytes in flight are mostly the server's send buffer.
    let mut raw = RawWs::connect(gw.addr, &format!("/ws/{id}"), Some(4096)).await;
    let frame = json!({"userEvent":true,"messages":[
        {"type":"watch","data":{"varId":1}},
        {"type":"create","data":{"id":2,"parentId":1,"properties":{"path":"blob","access":"r"}}},
        {"type":"create","data":{"id":3,"parentId":1,"properties":{"path":"flood()","access":"action"}}},
        {"type":"update","data":{"varId":3,"value":null}}]});
    raw.send(&frame.to_string()).await;
    (id, raw)
}

/// Whether the session still has the variable the slow tab created (a closed connection's
/// variables go with it), read from the debug page, which the session's own task produces.
async fn has_variable(gw: &RunningGateway, id: &str, var: i64) -> bool {
    let r = http().get(format!("http://{}/{id}/variables.json", gw.addr)).send().await.unwrap();
    let items: Vec<Value> = r.json().await.unwrap();
    items.iter().any(|i| i["id"] == var)
}

fn flood_args() -> ui_gateway::config::ServeArgs {
    let mut a = args();
    a.site = Some(site(&[("lua/main.lua", FLOOD_APP)]));
    a.max_outbound = 256 << 10;
    a
}

/// docs/limits.md row "browser outbound backlog": a tab that stops reading while its session produces output is
/// closed with **1013** once more than `--max-outbound` bytes are unsent, and handled like any
/// disconnect (its variables go). A tab of another session keeps getting its answers meanwhile
/// (latency printed, never asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_closed_with_1013_while_other_sessions_keep_working() {
    let gw = start(flood_args()).await;
    // The normal tab, in its own session.
    let other = new_session(&gw).await;
    let mut ws = connect(&gw, &other, None).await.unwrap();
    let mut m = demo_counter(&mut ws).await;
    assert_eq!(m.value(2), json!(0));

    let started = Instant::now();
    let (slow, mut raw) = flooding_tab(&gw).await;
    let mut latencies = Vec::new();
    // The slow tab's variable 2 appears when its frame is processed and goes when it is disconnected.
    let (mut seen, mut detached) = (false, None);
    let mut count = 0;
    while detached.is_none() || latencies.len() < 20 {
        count += 1;
        let sent = Instant::now();
        ws.send(set(3, Value::Null, true)).await;
        ws.until(&mut m, |m| m.value(2) == json!(count)).await;
        latencies.push(sent.elapsed());
        if detached.is_none() {
            let has = has_variable(&gw, &slow, 2).await;
            if seen && !has {
                detached = Some(started.elapsed());
            }
            seen |= has;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the slow tab was never closed");
    }
    // The slow tab now reads: what was already sent, then the close frame with 1013.
    let (code, skipped) = raw.until_close().await;
    assert_eq!(code, Some(1013), "after {skipped} frames");
    // The session itself lives on and takes a new tab.
    assert!(exists(&gw, &slow));
    let mut again = connect(&gw, &slow, None).await.unwrap();
    again.send(watch(1)).await;
    assert!(!again.recv().await.is_empty());
    latencies.sort();
    println!(
        "slow reader: closed {:?} after the flood started ({skipped} frames were in flight); other session's \
         round trips meanwhile: n={} p50={:?} max={:?}",
        detached.unwrap(),
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies.last().unwrap()
    );
}

/// docs/limits.md row "browser outbound backlog", the other half: a tab that never reads again does not pin its
/// connection. After the 1013 decision the server waits at most `--idle-close` (capped at 10 s) for
/// the peer to take the frame it is blocked on, then drops the socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_never_reads_again_is_dropped() {
    let mut a = flood_args();
    a.idle_close = Duration::from_millis(500);
    a.ping_interval = Duration::from_secs(3600);
    let gw = start(a).await;
    let (slow, mut raw) = flooding_tab(&gw).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while has_variable(&gw, &slow, 2).await || gw.gateway.live_sockets.count() > 0 {
        assert!(Instant::now() < deadline, "the never-reading tab still holds a socket");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Reading now: whatever the kernel buffered, then the end of the stream.
    let (code, skipped) = raw.until_close().await;
    println!("dead reader: {skipped} frames buffered, close frame {code:?}");
}

/// docs/limits.md row "HTTP keep-alive": an idle keep-alive connection is closed (60 s by default; shortened here
/// through the non-flag `http_idle_timeout`, together with `--idle-close`, which is its floor), while
/// a connection that keeps talking stays open.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut a = args();
    a.http_idle_timeout = Duration::from_secs(2);
    a.idle_close = Duration::from_secs(2);
    let gw = start(a).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut buf = vec![0u8; 4096];

    // Busy: a request every second for 4 s, twice the limit; every answer comes on the same connection.
    let mut busy = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    for _ in 0..4 {
        busy.write_all(request).await.unwrap();
        let n = busy.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Idle: after one answer, the server ends the connection.
    let mut idle = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    idle.write_all(request).await.unwrap();
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let n = tokio::time::timeout(Duration::from_secs(30), idle.read(&mut buf))
        .await
        .expect("the server closes an idle keep-alive connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed, no more data");
}
