//! Lua off the I/O threads and every budget escape closed (review C1, H2, H3, H4, M1).
//!
//! Each test runs a hostile method of the `Evil` site below from one browser, asserts the typed
//! outcome, and checks that meanwhile `/healthz` answers and another session's `increment()` round trip
//! completes (its latency is printed, not gated on).

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

const EVIL_APP: &str = r#"
Evil = session:prototype("Evil", {count = 0, last = "", text = ""})
function Evil:increment() self.count = self.count + 1 end
function Evil:spin() while true do end end
function Evil:coro_spin() coroutine.wrap(function() while true do end end)() end
function Evil:coro_work()
  coroutine.wrap(function() local n = 0 for i = 1, 3e9 do n = n + i end end)()
  self.last = "coroutine finished"
end
function Evil:pcall_forever() while true do pcall(function() while true do end end) end end
function Evil:pcall_then_write()
  for i = 1, 1000 do pcall(function() while true do end end) end
  self.last = "written after exhaustion"
end
function Evil:gc_spin() setmetatable({}, {__gc = function() while true do end end}) end
function Evil:requeue()
  session:getVariable(1):setProperty("lua", "local n = 0 for i = 1, 1e12 do n = n + i end")
  for i = 1, 200 do
    session:getVariable(1):setProperty("lua", "local n = 0 for i = 1, 1e12 do n = n + i end")
  end
end
function Evil:timers(n)
  for i = 1, tonumber(n) do
    session:setTimeout(function() local x = 0 for j = 1, 1e12 do x = x + j end end, 0)
  end
end
function Evil:far_timer() session:setTimeout(function() end, 1e300) self.last = "far timer set" end
function Evil:sparse() self.last = ui.json_encode({[2^40] = 1}) .. ui.json_encode({[math.maxinteger] = 1}) end
function Evil:slow() local n = 0 for i = 1, 1e12 do n = n + i end end
session:createAppVariable(Evil:new())
"#;

fn evil_args() -> ui_gateway::config::ServeArgs {
    let dir = site(&[
        ("lua/main.lua", EVIL_APP),
        ("viewdefs/Evil.DEFAULT.html", "<template><span ui-value=\"count\"></span></template>"),
    ]);
    let mut a = args();
    a.site = Some(dir);
    // Short limits keep the tests quick; the mechanisms are the same at the defaults.
    a.lua_phase_time = Duration::from_millis(300);
    a.lua_item_time = Duration::from_millis(800);
    a
}

/// A tab bound to `count` (2, read-only), `last` (3, read-only) and the action `method` (4).
async fn tab(gw: &ui_gateway::gateway::RunningGateway, method: &str) -> (Ws, Mirror) {
    let id = new_session(gw).await;
    let mut ws = connect(gw, &id, None).await.unwrap();
    let mut m = Mirror::default();
    ws.send(watch(1)).await;
    ws.until(&mut m, |m| m.values.contains_key(&1)).await;
    ws.send(creates(&[
        (2, 1, json!({"path":"count","access":"r"})),
        (3, 1, json!({"path":"last","access":"r"})),
        (4, 1, json!({"path": method, "access":"action"})),
        (5, 1, json!({"path":"increment()","access":"action"})),
    ]))
    .await;
    ws.until(&mut m, |m| m.values.contains_key(&2) && m.values.contains_key(&3)).await;
    (ws, m)
}

/// Clicks `increment()` and waits for the new count: the victim's round trip.
async fn round_trip(ws: &mut Ws, m: &mut Mirror) -> Duration {
    let before = m.value(2).as_i64().unwrap();
    let started = Instant::now();
    ws.send(set(5, Value::Null, true)).await;
    ws.until(m, |m| m.value(2).as_i64() == Some(before + 1)).await;
    started.elapsed()
}

async fn healthz(gw: &ui_gateway::gateway::RunningGateway) -> Duration {
    let started = Instant::now();
    let r = tokio::time::timeout(STEP, http().get(format!("http://{}/healthz", gw.addr)).send())
        .await
        .expect("/healthz answers in time")
        .unwrap();
    assert_eq!(r.status(), 200);
    started.elapsed()
}

/// Fires the attacker's action, then proves the gateway and a victim session keep answering while it
/// runs; returns the error code the attacker got for its action (if any).
async fn attack(gw: &ui_gateway::gateway::RunningGateway, method: &str, arg: Value) -> (Ws, Mirror, Option<String>) {
    let (mut evil, mut em) = tab(gw, method).await;
    let (mut victim, mut vm) = tab(gw, "increment()").await;
    evil.send(set(4, arg, true)).await;
    for _ in 0..3 {
        let rt = round_trip(&mut victim, &mut vm).await;
        let hz = healthz(gw).await;
        eprintln!("{method}: victim round trip {rt:?}, /healthz {hz:?}");
    }
    let started = Instant::now();
    let code = loop {
        if let Some(e) = em.errors.get(&4) {
            break Some(e.clone());
        }
        if started.elapsed() > Duration::from_secs(3) {
            break None;
        }
        let frame = tokio::time::timeout(Duration::from_millis(200), evil.recv()).await;
        if let Ok(frame) = frame {
            em.apply(&frame);
        }
    };
    // The attacker's own session keeps working too.
    round_trip(&mut evil, &mut em).await;
    (evil, em, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_loops_and_coroutines_are_lua_timeout_and_nothing_stalls() {
    let gw = start(evil_args()).await;
    for method in ["spin()", "coro_spin()", "pcall_forever()"] {
        let (_, _, code) = attack(&gw, method, Value::Null).await;
        assert_eq!(code.as_deref(), Some("lua-timeout"), "{method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_after_exhaustion_does_not_persist() {
    let gw = start(evil_args()).await;
    for method in ["pcall_then_write()", "coro_work()"] {
        let (_, em, code) = attack(&gw, method, Value::Null).await;
        assert_eq!(code.as_deref(), Some("lua-timeout"), "{method}");
        assert_eq!(em.value(3), json!(""), "{method}: the write after exhaustion did not persist");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_are_refused() {
    let gw = start(evil_args()).await;
    let (_, _, code) = attack(&gw, "gc_spin()", Value::Null).await;
    assert_eq!(code.as_deref(), Some("lua-error"));
}

/// H3's amplifiers: a `lua` property that re-queues itself and many due timers are bounded by the
/// per-event cap; the session and everyone else keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeueing_lua_values_and_many_due_timers_are_bounded_per_event() {
    let gw = start(evil_args()).await;
    attack(&gw, "requeue()", Value::Null).await;
    attack(&gw, "timers(_)", json!(50)).await;
}

/// H4 and M1: what used to abort the process or panic the session is handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_json_and_huge_timer_delays_neither_abort_nor_panic() {
    let gw = start(evil_args()).await;
    let (mut ws, mut m, code) = attack(&gw, "sparse()", Value::Null).await;
    assert_eq!(code, None);
    ws.until(&mut m, |m| m.value(3) == json!(format!(r#"{{"1099511627776":1}}{{"{}":1}}"#, i64::MAX))).await;
    let (mut ws, mut m, code) = attack(&gw, "far_timer()", Value::Null).await;
    assert_eq!(code, None);
    ws.until(&mut m, |m| m.value(3) == json!("far timer set")).await;
}

/// C1: the review's one-frame freeze, verbatim, on the built-in demo. Paths may not call library
/// functions reached through a string's metatable: the action is a `path-failure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_frame_freeze_is_a_path_failure_on_the_demo() {
    let gw = start(args()).await;
    let id = new_session(&gw).await;
    let mut evil = connect(&gw, &id, None).await.unwrap();
    let mut em = demo_counter(&mut evil).await;
    let other = new_session(&gw).await;
    let mut victim = connect(&gw, &other, None).await.unwrap();
    let mut vm = demo_counter(&mut victim).await;
    let pattern = format!("{}b", ".-".repeat(100));
    evil.send(json!({"userEvent":true,"messages":[
        {"type":"create","data":{"id":20,"parentId":1,"properties":{"path":"zz","access":"rw"},"nowatch":true}},
        {"type":"update","data":{"varId":20,"value":"aaaaaaaaaaaaaaaaaaaa"}},
        {"type":"create","data":{"id":21,"parentId":1,"properties":{"path":"zz.find(_)","access":"action"}}},
        {"type":"update","data":{"varId":21,"value":pattern}}]}))
        .await;
    evil.until(&mut em, |m| m.errors.contains_key(&21)).await;
    assert_eq!(em.errors[&21], "path-failure");
    let before = vm.value(2).as_i64().unwrap();
    victim.send(set(3, Value::Null, true)).await;
    victim.until(&mut vm, |m| m.value(2).as_i64() == Some(before + 1)).await;
    healthz(&gw).await;
    // A prototype's method cannot be replaced through `__index` either (review L9).
    evil.send(creates(&[(22, 1, json!({"path":"__index.increment","access":"rw"}))])).await;
    evil.until(&mut em, |m| m.errors.contains_key(&22)).await;
    assert_eq!(em.errors[&22], "path-failure");
}

/// The watchdog: an event that runs past `--lua-watchdog` ends its session (1011, slot freed) while
/// the gateway keeps serving. Here a legitimately long phase stands in for a C call no limit reaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_past_the_watchdog_ends_its_session_with_1011() {
    let mut a = evil_args();
    a.lua_phase_time = Duration::from_secs(5);
    a.lua_item_time = Duration::from_secs(5);
    a.lua_watchdog = Duration::from_millis(400);
    let gw = start(a).await;
    let (mut evil, _) = tab(&gw, "slow()").await;
    let (mut victim, mut vm) = tab(&gw, "increment()").await;
    let sessions_before = gw.gateway.sessions.count();
    evil.send(set(4, Value::Null, true)).await;
    assert_eq!(evil.closed().await, 1011);
    round_trip(&mut victim, &mut vm).await;
    healthz(&gw).await;
    assert_eq!(gw.gateway.sessions.count(), sessions_before - 1, "the stuck session's slot is free");
}

/// The isolation measure of the issue, as a behaviour check: k sessions each run a budget-exhausting
/// action in a loop while a victim session's round trips and `/healthz` keep answering. Latencies are
/// printed (BENCHMARKS.md has the figures at the default limits); the gate is that they answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_spinning_sessions_do_not_stall_a_ninth() {
    let gw = start(evil_args()).await;
    let mut attackers = Vec::new();
    for _ in 0..8 {
        let (mut ws, m) = tab(&gw, "spin()").await;
        // Several clicks queued: the session stays busy for the whole measurement.
        for _ in 0..4 {
            ws.send(set(4, Value::Null, true)).await;
        }
        attackers.push((ws, m));
    }
    let (mut victim, mut vm) = tab(&gw, "increment()").await;
    let mut trips = Vec::new();
    for _ in 0..10 {
        trips.push(round_trip(&mut victim, &mut vm).await);
        healthz(&gw).await;
    }
    trips.sort();
    eprintln!("victim round trips with 8 spinning sessions: p50 {:?}, max {:?}", trips[5], trips[9]);
}

/// A gateway in a process of its own (the metrics are process-wide: other tests of this binary would
/// move the gauges meanwhile), killed on drop.
struct OwnProcess {
    child: std::process::Child,
    addr: String,
}

impl Drop for OwnProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn own_process(site: &std::path::Path) -> OwnProcess {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ui-gateway"))
        .args(["--listen", "127.0.0.1:0", "--log-level", "error", "--site"])
        .arg(site)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the gateway binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut gw = OwnProcess { child, addr: String::new() };
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(at) = line.find("http://") {
            gw.addr = line[at + 7..].trim().trim_end_matches('/').to_string();
            return gw;
        }
    }
    panic!("the gateway exited before listening");
}

/// Reads one sample of `/metrics` (the first series whose line starts with `prefix`).
async fn metric(addr: &str, prefix: &str) -> f64 {
    let text = http().get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in /metrics"))
}

/// Waits until `metric` satisfies `done` (a gauge is reported after the session's item, a moment
/// after the frame or close that caused it).
async fn metric_until(addr: &str, prefix: &str, done: impl Fn(f64) -> bool) -> f64 {
    let mut last = 0.0;
    for _ in 0..200 {
        last = metric(addr, prefix).await;
        if done(last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{prefix} stayed at {last}");
}

/// L6: the summed gauges are current: a session counts its Lua heap from its creation, before any
/// frame, and a closed tab's variables leave `ui_variables` without another frame arriving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_are_current_without_another_frame() {
    let site = evil_args().site.unwrap();
    let gw = own_process(&site);
    let addr = gw.addr.clone();
    assert_eq!(metric(&addr, "ui_lua_memory_bytes").await, 0.0);
    let r = http().get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let id = r.headers()["location"].to_str().unwrap().trim_start_matches('/').to_string();
    metric_until(&addr, "ui_lua_memory_bytes", |v| v > 0.0).await;
    let vars = metric_until(&addr, "ui_variables{owner=\"lua\"}", |v| v > 0.0).await;
    // A tab creates 300 variables, then closes: the gauge goes back without any other frame.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/{id}")).await.unwrap();
    let many: Vec<(i64, i64, Value)> = (10..310).map(|id| (id, 1, json!({"path": "count", "access": "r"}))).collect();
    futures::SinkExt::send(&mut ws, tokio_tungstenite::tungstenite::Message::Text(creates(&many).to_string().into()))
        .await
        .unwrap();
    metric_until(&addr, "ui_variables{owner=\"lua\"}", |v| v >= vars + 300.0).await;
    drop(ws);
    metric_until(&addr, "ui_variables{owner=\"lua\"}", |v| v == vars).await;
}
