//! Bytes a client or backend can make the gateway hold are bounded, and protocol violations close with
//! the right code (security review H5, M2, M3, L2, L3, L5). Each test drives the hostile input, asserts
//! the typed outcome, and checks that `/healthz` and another session keep answering meanwhile.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use ui_gateway::gateway::RunningGateway;

use crate::common::{args, connect, demo_counter, http, new_session, set, start, Mirror, RawWs, Ws};

/// One client frame: `first` is the FIN/RSV/opcode byte; masked unless `masked` is false.
fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let bit = if masked { 0x80 } else { 0 };
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(bit | n as u8),
        n if n < 65536 => {
            out.push(bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Resident memory of this process (the gateway runs in it), for the log.
fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / (1 << 20) as f64
}

/// A tab of its own session on the built-in demo, with the counter bootstrapped.
struct Witness {
    ws: Ws,
    m: Mirror,
    clicks: i64,
}

impl Witness {
    async fn new(gw: &RunningGateway) -> Witness {
        let id = new_session(gw).await;
        let mut ws = connect(gw, &id, None).await.unwrap();
        let m = demo_counter(&mut ws).await;
        Witness { ws, m, clicks: 0 }
    }

    /// `/healthz` answers and this tab's session completes an action round trip; returns its latency.
    async fn check(&mut self, gw: &RunningGateway) -> Duration {
        let r = http().get(format!("http://{}/healthz", gw.addr)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let sent = Instant::now();
        self.clicks += 1;
        self.ws.send(set(3, Value::Null, true)).await;
        let want = json!(self.clicks);
        self.ws.until(&mut self.m, |m| m.value(2) == want).await;
        sent.elapsed()
    }
}

/// Reads frames until the close frame; skips pongs and text.
async fn close_code(raw: &mut RawWs) -> Option<u16> {
    raw.until_close().await.0
}

/// H5, ping flood: a client that sends pings and never reads is closed with 1013 once the pongs it owes
/// pass `--max-outbound` (they used to pile up in tungstenite's write buffer without bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_never_read_is_closed_with_1013() {
    let mut a = args();
    a.max_outbound = 64 << 10;
    let gw = start(a).await;
    let mut witness = Witness::new(&gw).await;
    let id = new_session(&gw).await;
    let mut raw = RawWs::connect(gw.addr, &format!("/ws/{id}"), Some(4096)).await;
    let before = rss_mb();
    let ping = frame(0x89, &[b'p'; 125], true);
    let batch: Vec<u8> = ping.iter().copied().cycle().take(ping.len() * 1000).collect();
    // Up to 200,000 pings (25 MB) of 125 bytes: far more pongs than 64 KiB plus the kernel's
    // buffers (loopback send buffers grow to 4 MiB). The gateway stops reading once it has asked
    // for the close, so the flood ends when a write makes no progress for 2 s.
    let mut sent = 0;
    for _ in 0..200 {
        match tokio::time::timeout(Duration::from_secs(2), raw.stream.write_all(&batch)).await {
            Ok(Ok(())) => sent += 1000,
            _ => break,
        }
    }
    let latency = witness.check(&gw).await;
    let peak = rss_mb();
    let code = close_code(&mut raw).await;
    eprintln!(
        "ping flood: {sent} pings sent unread; rss {before:.1} → {peak:.1} MiB; close {code:?}; \
         other session's round trip {latency:?}"
    );
    assert_eq!(code, Some(1013));
    witness.check(&gw).await;
}

/// A site whose app has the demo's `count` and `increment()` (so [`Witness`] works on it) and a
/// writable field `v`.
const COUNTER_APP: &str = r#"
App = {type = "App"}
App.__index = App
function App:new() return setmetatable({count = 0, v = 0}, self) end
function App:increment() self.count = self.count + 1 end
-- M3: Lua-created variables until the limit; `result` = how many were made and the error.
function App:fill()
  local n = 0
  local ok, err = pcall(function()
    for i = 1, 1000 do session:createVariable(1, {i = i}); n = n + 1 end
  end)
  self.result = n .. " " .. tostring(err)
end
-- M3: a property over --max-property-bytes set from Lua.
function App:bigprop()
  local ok, err = pcall(function() session:getVariable(1):setProperty("huge", string.rep("x", 100000)) end)
  self.result = tostring(err)
end
session:createAppVariable(App:new())
"#;

/// A raw tab of a new session.
async fn raw_tab(gw: &RunningGateway) -> RawWs {
    let id = new_session(gw).await;
    RawWs::connect(gw.addr, &format!("/ws/{id}"), None).await
}

/// L3: protocol violations close with 1002, a text frame that is not UTF-8 with 1007 (never 1000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_close_with_1002_and_bad_utf8_with_1007() {
    let gw = start(args()).await;
    let mut witness = Witness::new(&gw).await;
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("invalid UTF-8 text", frame(0x81, &[b'[', 0xff, 0xfe, b']'], true), 1007),
        ("reserved data opcode", frame(0x83, b"[]", true), 1002),
        ("reserved control opcode", frame(0x8b, b"", true), 1002),
        ("RSV1", frame(0xc1, b"[]", true), 1002),
        ("unmasked", frame(0x81, b"[]", false), 1002),
        ("126-byte ping", frame(0x89, &[0u8; 126], true), 1002),
        ("fragmented ping", frame(0x09, b"x", true), 1002),
        ("continuation first", frame(0x80, b"[]", true), 1002),
        ("interleaved fragments", [frame(0x01, b"[", true), frame(0x81, b"[]", true)].concat(), 1002),
    ];
    for (name, bytes, want) in cases {
        let mut raw = raw_tab(&gw).await;
        raw.stream.write_all(&bytes).await.unwrap();
        let code = close_code(&mut raw).await;
        assert_eq!(code, Some(want), "{name}");
        witness.check(&gw).await;
    }
}

/// L3: a single frame over `--max-frame` gets its 1009 close delivered, not a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_oversized_frame_gets_1009() {
    let gw = start(args()).await;
    let mut witness = Witness::new(&gw).await;
    // Default --max-frame (1 MiB): just over it, and the review's 16 MiB.
    for size in [(1 << 20) + 1, 16 << 20] {
        let mut raw = raw_tab(&gw).await;
        let big = frame(0x81, &vec![b' '; size], true);
        // The server stops reading mid-frame; the write may not complete.
        let _ = tokio::time::timeout(Duration::from_secs(5), raw.stream.write_all(&big)).await;
        let code = close_code(&mut raw).await;
        assert_eq!(code, Some(1009), "frame of {size} bytes");
        witness.check(&gw).await;
    }
}

/// Sends one frame on a fresh tab (after watching 1) and returns the error code answered for `var`.
async fn error_for(gw: &RunningGateway, frame_json: Value, var: i64) -> String {
    let id = new_session(gw).await;
    let mut ws = connect(gw, &id, None).await.unwrap();
    let mut m = Mirror::default();
    ws.send(frame_json).await;
    ws.until(&mut m, |m| m.errors.contains_key(&var)).await;
    m.errors[&var].clone()
}

/// L2: the most negative 64-bit id is refused like any other out-of-range id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_most_negative_id_is_refused() {
    let gw = start(args()).await;
    let mut witness = Witness::new(&gw).await;
    for id in [i64::MIN, -9007199254740992] {
        let f = json!({"userEvent":false,"messages":[{"type":"watch","data":{"varId":id}}]});
        assert_eq!(error_for(&gw, f, 0).await, "bad-message", "{id}");
        witness.check(&gw).await;
    }
}

/// L5: 32 nested arrays are the value depth limit; 33 (even empty) are `limit-exceeded`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_depth_limit_is_exact() {
    let mut a = args();
    a.site = Some(crate::common::site(&[("lua/main.lua", COUNTER_APP)]));
    let gw = start(a).await;
    let nested = |n: usize| {
        let mut v = json!([]);
        for _ in 1..n {
            v = json!([v]);
        }
        v
    };
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let mut m = Mirror::default();
    ws.send(json!({"userEvent":false,"messages":[
        {"type":"watch","data":{"varId":1}},
        {"type":"create","data":{"id":2,"parentId":1,"properties":{"path":"v","access":"rw"}}},
        {"type":"watch","data":{"varId":2}}]}))
        .await;
    ws.until(&mut m, |m| m.values.contains_key(&2)).await;
    ws.send(set(2, nested(32), false)).await;
    ws.send(set(2, nested(33), false)).await;
    ws.until(&mut m, |m| m.errors.contains_key(&2)).await;
    assert_eq!(m.errors[&2], "limit-exceeded");
    // The 32-deep value was stored: a fresh tab reads it back.
    let mut other = connect(&gw, &id, None).await.unwrap();
    let mut m2 = Mirror::default();
    other
        .send(json!({"userEvent":false,"messages":[
            {"type":"watch","data":{"varId":1}},
            {"type":"create","data":{"id":2,"parentId":1,"properties":{"path":"v","access":"r"}}},
            {"type":"watch","data":{"varId":2}}]}))
        .await;
    other.until(&mut m2, |m| m.values.contains_key(&2)).await;
    assert_eq!(m2.value(2), nested(32));
    Witness::new(&gw).await;
}

/// A frame setting properties on `var`.
fn set_props(var: i64, props: Value) -> Value {
    json!({"userEvent":false,"messages":[{"type":"update","data":{"varId":var,"properties":props}}]})
}

/// Receives until `var` has a new error (removing it first) and returns its code.
async fn next_error(ws: &mut Ws, m: &mut Mirror, var: i64) -> String {
    m.errors.remove(&var);
    ws.until(m, |m| m.errors.contains_key(&var)).await;
    m.errors[&var].clone()
}

/// H5, browser-set properties: one property over `--max-property-bytes` and the property past
/// `--max-properties` are `limit-exceeded`; the tab and its session keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn property_caps_give_limit_exceeded_and_the_session_keeps_working() {
    let mut a = args();
    a.site = Some(crate::common::site(&[("lua/main.lua", COUNTER_APP)]));
    a.max_properties = 8;
    let gw = start(a).await;
    let mut witness = Witness::new(&gw).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let mut m = demo_counter(&mut ws).await;
    // One property of 100 KB (limit 64 KiB).
    ws.send(set_props(2, json!({"big": "x".repeat(100_000)}))).await;
    assert_eq!(next_error(&mut ws, &mut m, 2).await, "limit-exceeded");
    // A path over the limit refuses the create.
    let long_path = format!("count{}", "..count".repeat(10_000));
    ws.send(crate::common::creates(&[(4, 1, json!({"path": long_path, "access": "r"}))])).await;
    assert_eq!(next_error(&mut ws, &mut m, 4).await, "limit-exceeded");
    // Names past the count cap, one per frame (variable 2 holds path and access already).
    let mut refused = None;
    for n in 0..20 {
        m.errors.remove(&2);
        ws.send(set_props(2, json!({ format!("p{n}"): "v" }))).await;
        ws.send(set(3, Value::Null, true)).await;
        let want = json!(n + 1);
        ws.until(&mut m, |m| m.value(2) == want || m.errors.contains_key(&2)).await;
        if m.errors.contains_key(&2) {
            refused = Some(n);
            break;
        }
    }
    let refused = refused.expect("the property count cap never hit");
    assert_eq!(m.errors[&2], "limit-exceeded");
    eprintln!("property count cap: new name {} refused", refused + 1);
    // 8 per variable, two of them path and access.
    assert_eq!(refused, 6);
    // The session keeps working: an action round trip on the same tab.
    ws.until(&mut m, |m| m.value(2) != Value::Null).await;
    let before = m.value(2).as_i64().unwrap();
    ws.send(set(3, Value::Null, true)).await;
    let want = json!(before + 1);
    ws.until(&mut m, |m| m.value(2) == want).await;
    witness.check(&gw).await;
}

/// H5, "bricking" through variable 1: properties browsers set on the shared variable 1 stay within the
/// caps, so a new tab's `watch 1` reply stays far below `--max-outbound` and the session takes new tabs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn properties_on_variable_1_cannot_brick_the_session() {
    let gw = start(args()).await;
    let mut witness = Witness::new(&gw).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let mut m = demo_counter(&mut ws).await;
    let mut refused = 0;
    // 20 × 1 MB (the review's vector: 16 MiB of shared state) and 100 × 60 KB.
    let sizes = std::iter::repeat_n(1_000_000, 20).chain(std::iter::repeat_n(60_000, 100));
    for (n, size) in sizes.enumerate() {
        m.errors.remove(&1);
        ws.send(set_props(1, json!({ format!("b{n}"): "x".repeat(size) }))).await;
        // A round trip orders the frames: the error (if any) comes before the click's answer.
        ws.send(set(3, Value::Null, true)).await;
        let want = json!(n as i64 + 1);
        ws.until(&mut m, |m| m.value(2) == want).await;
        if m.errors.get(&1).is_some_and(|c| c == "limit-exceeded") {
            refused += 1;
        }
    }
    eprintln!("variable 1: {refused} of 120 property writes refused");
    assert!(refused >= 20 + 100 - 64);
    // A new tab can still watch 1, and gets it.
    let mut fresh = connect(&gw, &id, None).await.unwrap();
    let mut fm = demo_counter(&mut fresh).await;
    let bytes: usize = fm.props.get(&1).map_or(0, |p| p.values().map(|v| v.as_str().map_or(0, str::len)).sum());
    eprintln!("variable 1: a new tab's watch reply carries {bytes} property bytes");
    assert!(bytes < 16 << 20);
    fresh.send(set(3, Value::Null, true)).await;
    fresh.until(&mut fm, |m| m.value(2) == json!(121)).await;
    witness.check(&gw).await;
}

/// M3: Lua's `createVariable` obeys `--max-variables` (limit-exceeded raised to Lua) and `setProperty`
/// the property caps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lua_create_variable_and_set_property_obey_the_limits() {
    let mut a = args();
    a.site = Some(crate::common::site(&[("lua/main.lua", COUNTER_APP)]));
    a.max_variables = 50;
    let gw = start(a).await;
    let mut witness = Witness::new(&gw).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let mut m = demo_counter(&mut ws).await;
    ws.send(crate::common::creates(&[
        (4, 1, json!({"path": "fill()", "access": "action"})),
        (5, 1, json!({"path": "bigprop()", "access": "action"})),
        (6, 1, json!({"path": "result", "access": "r"})),
    ]))
    .await;
    ws.send(set(4, Value::Null, true)).await;
    ws.until(&mut m, |m| m.value(6).is_string()).await;
    let result = m.value(6).as_str().unwrap().to_string();
    eprintln!("createVariable: {result}");
    let made: usize = result.split(' ').next().unwrap().parse().unwrap();
    assert!(made < 50, "{result}");
    assert!(result.contains("limit-exceeded"), "{result}");
    ws.send(set(5, Value::Null, true)).await;
    ws.until(&mut m, |m| m.value(6).as_str().is_some_and(|r| !r.starts_with(char::is_numeric))).await;
    let result = m.value(6).as_str().unwrap().to_string();
    eprintln!("setProperty: {result}");
    assert!(result.contains("limit-exceeded"), "{result}");
    witness.check(&gw).await;
}

// ----- the backend link -----

/// The counter app plus what the backend tests drive: `spin()` keeps the session busy in one long
/// Lua action (about 3 s of CPU), then sets `done`.
const HYBRID_APP: &str = r#"
App = {type = "App"}
App.__index = App
function App:new() return setmetatable({count = 0, v = 0, done = false}, self) end
function App:increment() self.count = self.count + 1 end
function App:spin()
  local t = os.clock()
  while os.clock() - t < 3 do end
  self.done = true
end
session:createAppVariable(App:new())
"#;

fn hybrid_args() -> ui_gateway::config::ServeArgs {
    let mut a = args();
    a.site = Some(crate::common::site(&[("lua/main.lua", HYBRID_APP)]));
    a.mode = ui_gateway::config::Mode::Hybrid;
    a.lua_instructions = 4_000_000_000;
    a
}

fn batch(session: &str, messages: Value) -> Value {
    json!({"session": session, "messages": messages})
}

/// A backend connection, past its welcome.
async fn backend(gw: &RunningGateway) -> Ws {
    let mut k = crate::common::connect_backend(gw, &[]).await.unwrap();
    assert!(k.recv_json().await.get("welcome").is_some());
    k
}

/// Receives backend frames until one for `session` holds an `update` of `var` with `value`; returns
/// every frame seen before it.
async fn backend_until_update(k: &mut Ws, session: &str, var: i64, value: &Value) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let f = k.recv_json().await;
        let hit = f["session"] == session
            && f["messages"].as_array().is_some_and(|ms| {
                ms.iter().any(|m| m["type"] == "update" && m["data"]["varId"] == var && m["data"]["value"] == *value)
            });
        if hit {
            return seen;
        }
        seen.push(f);
    }
}

/// A hybrid session whose tab watches 1 and has `v` as variable 2 (rw); the backend has client
/// variables on `v`: -1 (rw, to write it) and -2 (r, watched, so changes come back). Returns the
/// session's vended id as the backend sees it.
async fn hybrid_session(gw: &RunningGateway, k: &mut Ws) -> (String, Ws, Mirror) {
    let id = new_session(gw).await;
    let mut ws = connect(gw, &id, None).await.unwrap();
    let mut m = Mirror::default();
    ws.send(crate::common::watch(1)).await;
    let open = k.recv_json().await;
    let vended = open["session"].as_str().unwrap().to_string();
    assert_eq!(open, batch(&vended, json!([])));
    ws.until(&mut m, |m| m.values.contains_key(&1)).await;
    ws.send(crate::common::creates(&[(2, 1, json!({"path": "v", "access": "rw"}))])).await;
    ws.until(&mut m, |m| m.values.contains_key(&2)).await;
    k.send(batch(
        &vended,
        json!([
            {"type":"create","data":{"id":-1,"parentId":1,"properties":{"path":"v","access":"rw"},"nowatch":true}},
            {"type":"create","data":{"id":-2,"parentId":1,"properties":{"path":"v","access":"r"}}}
        ]),
    ))
    .await;
    backend_until_update(k, &vended, -2, &json!(0)).await;
    (vended, ws, m)
}

/// H5, backend send queue: a backend that never reads is closed with 1013 once more than
/// `--backend-queue-bytes` are queued for it (the bound used to be 4,096 frames of any size); the
/// gateway and Lua sessions keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_reads_hits_the_queue_byte_bound() {
    let mut a = hybrid_args();
    a.backend_queue_bytes = 256 << 10;
    let gw = start(a).await;
    let mut k = backend(&gw).await;
    let (_, mut ws, _) = hybrid_session(&gw, &mut k).await;
    let mut witness = Witness::new(&gw).await;
    let before = rss_mb();
    // 300 × 100 KB values written by the browser, each reported to the backend (-2 watches v).
    for n in 0..300 {
        ws.send(set(2, json!(format!("{n:05}{}", "x".repeat(100_000))), false)).await;
    }
    let latency = witness.check(&gw).await;
    let peak = rss_mb();
    // The backend reads now: what was in flight, then the close.
    let code = k.closed().await;
    eprintln!("backend queue: rss {before:.1} → {peak:.1} MiB; close {code}; other session's round trip {latency:?}");
    assert_eq!(code, 1013);
    witness.check(&gw).await;
}

/// M2: a session whose mailbox is jammed (`--mailbox 1`, busy in a long Lua action) does not stop
/// backend round trips to another session; its own batches park in its overflow, and past
/// `--backend-overflow` they are dropped with a `limit-exceeded` error batch back to the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jammed_session_does_not_stall_the_backend_for_others() {
    let mut a = hybrid_args();
    a.mailbox = 1;
    a.backend_overflow = 3;
    // `spin()` is a legitimately long action here: the Lua time limits must let it finish.
    a.lua_phase_time = Duration::from_secs(8);
    a.lua_item_time = Duration::from_secs(8);
    let gw = start(a).await;
    let mut k = backend(&gw).await;
    let (busy, mut busy_ws, mut busy_m) = hybrid_session(&gw, &mut k).await;
    let (other, _other_ws, _) = hybrid_session(&gw, &mut k).await;
    busy_ws.send(crate::common::creates(&[(3, 1, json!({"path": "spin()", "access": "action"}))])).await;
    busy_ws.send(crate::common::creates(&[(4, 1, json!({"path": "done", "access": "r"}))])).await;
    busy_ws.until(&mut busy_m, |m| m.value(4) == json!(false)).await;
    // The busy session starts its long action; then the backend writes to it ten times.
    busy_ws.send(set(3, Value::Null, true)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 0..10 {
        k.send(batch(&busy, json!([{"type":"update","data":{"varId":-1,"value":1000 + n}}]))).await;
    }
    // A round trip to the other session: the backend writes its v, and hears it back through -2.
    let started = Instant::now();
    k.send(batch(&other, json!([{"type":"update","data":{"varId":-1,"value":42}}]))).await;
    let seen = backend_until_update(&mut k, &other, -2, &json!(42)).await;
    let round_trip = started.elapsed();
    // Behaviour, not time: the busy session has not finished its action yet.
    assert!(busy_m.value(4) == json!(false));
    busy_ws.quiet(Duration::from_millis(1)).await;
    let dropped = seen
        .iter()
        .filter(|f| f["session"] == busy.as_str() && f["messages"][0]["data"]["code"] == "limit-exceeded")
        .count();
    eprintln!("jammed session: other session's backend round trip {round_trip:?}; {dropped} batches dropped");
    // Mailbox 1 + overflow 3 hold four of the ten; the rest are refused.
    assert!(dropped >= 5, "{seen:?}");
    busy_ws.until(&mut busy_m, |m| m.value(4) == json!(true)).await;
    // Afterwards the busy session takes the four kept writes in order: v ends at the fourth (1003),
    // which the backend hears through -2.
    backend_until_update(&mut k, &busy, -2, &json!(1003)).await;
    Witness::new(&gw).await.check(&gw).await;
}

/// H5, outage buffer: during a backend outage a session buffers at most `--backend-buffer-bytes` of
/// updates (it used to be 1,000 messages of any size); the oldest go first and the replay reports them
/// with `limit-exceeded`. Another session completes a backend round trip afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outage_buffer_is_bounded_in_bytes() {
    let mut a = args();
    a.mode = ui_gateway::config::Mode::Connected;
    a.backend_buffer_bytes = 1 << 20;
    let gw = start(a).await;
    let mut k = backend(&gw).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let mut m = Mirror::default();
    ws.send(crate::common::watch(1)).await;
    assert_eq!(k.recv_json().await, batch("1", json!([{"type":"watch","data":{"varId":1}}])));
    k.send(batch("1", json!([{"type":"create","data":{"id":1,"value":0}}]))).await;
    ws.until(&mut m, |m| m.values.contains_key(&1)).await;
    ws.send(crate::common::creates(&[(2, 1, json!({"path": "x", "access": "rw"}))])).await;
    k.recv_json().await;
    // Browser-set properties on a remote variable obey the same caps (the mirror is outside the tracker).
    ws.send(set_props(2, json!({"big": "x".repeat(100_000)}))).await;
    assert_eq!(next_error(&mut ws, &mut m, 2).await, "limit-exceeded");
    drop(k);
    ws.until(&mut m, |m| m.errors.get(&1).is_some_and(|c| c == "backend-unavailable")).await;
    let before = rss_mb();
    for n in 0..30 {
        ws.send(set(2, json!(format!("{n:05}{}", "x".repeat(100_000))), false)).await;
    }
    // A message the session answers (a watch of an unknown variable), after the writes on the same
    // tab: once its error is back, every write is in the buffer.
    ws.send(crate::common::watch(999)).await;
    ws.until(&mut m, |m| m.errors.contains_key(&999)).await;
    let peak = rss_mb();
    let mut k = backend(&gw).await;
    let replay = k.recv_json().await;
    assert_eq!(replay["session"], "1");
    let messages = replay["messages"].as_array().unwrap();
    let dropped = messages.iter().find(|m| m["type"] == "error").expect("a limit-exceeded error in the replay");
    assert_eq!(dropped["data"]["code"], "limit-exceeded");
    let kept: usize = messages
        .iter()
        .filter(|m| m["type"] == "update" && m["data"]["varId"] == 2)
        .map(|m| m["data"]["value"].as_str().map_or(0, str::len))
        .sum();
    eprintln!(
        "outage buffer: rss {before:.1} → {peak:.1} MiB; replay kept {kept} bytes of updates; {}",
        dropped["data"]["description"]
    );
    assert!(kept <= (1 << 20) + 100_100, "{kept}");
    assert!(kept > 0);
    // The newest update survives; the oldest went.
    let last = messages.iter().rev().find(|m| m["type"] == "update").unwrap();
    assert!(last["data"]["value"].as_str().unwrap().starts_with("00029"));
    // Another session: a backend round trip, and /healthz.
    let other = new_session(&gw).await;
    let mut c = connect(&gw, &other, None).await.unwrap();
    let mut cm = Mirror::default();
    c.send(crate::common::watch(1)).await;
    let open = backend_until_watch(&mut k).await;
    k.send(batch(&open, json!([{"type":"create","data":{"id":1,"value":7}}]))).await;
    c.until(&mut cm, |m| m.value(1) == json!(7)).await;
    let r = http().get(format!("http://{}/healthz", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Receives backend frames until a `watch` of variable 1; returns that batch's session.
async fn backend_until_watch(k: &mut Ws) -> String {
    loop {
        let f = k.recv_json().await;
        if f["messages"].as_array().is_some_and(|ms| ms.iter().any(|m| m["type"] == "watch" && m["data"]["varId"] == 1))
        {
            return f["session"].as_str().unwrap().to_string();
        }
    }
}

/// L3 on the backend link: a text frame that is not UTF-8 closes it with 1007 (it used to be 1000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_invalid_utf8_closes_with_1007() {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::Message;
    let gw = start(hybrid_args()).await;
    let mut witness = Witness::new(&gw).await;
    let mut k = backend(&gw).await;
    let bad = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    k.stream.send(Message::Frame(bad)).await.unwrap();
    assert_eq!(k.closed().await, 1007);
    witness.check(&gw).await;
}

/// Issue 14: a read error's close frame carries that failure's own code and reason text (a bad UTF-8
/// frame is 1007 "invalid UTF-8", never 1000 or another failure's "frame too large").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_error_closes_with_its_own_code_and_reason() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::Message;
    let gw = start(hybrid_args()).await;
    let mut witness = Witness::new(&gw).await;
    let mut k = backend(&gw).await;
    let bad = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    k.stream.send(Message::Frame(bad)).await.unwrap();
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(msg) = k.stream.next().await {
            match msg {
                Ok(Message::Close(frame)) => return frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the gateway closes the link");
    assert_eq!(close, Some((1007, "invalid UTF-8".to_string())));
    witness.check(&gw).await;
}
