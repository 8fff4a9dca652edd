//! Review C1, H1, H2 (`pattern`, `tmove`): library functions whose C loops the instruction hook could
//! not interrupt. A browser-supplied pattern that backtracks for ~10²² steps now ends its action with
//! `lua-timeout`, the session keeps answering, and the rest of the gateway never notices.

use serde_json::json;

use crate::common::*;

const APP: &str = r#"
App = session:prototype("App", {count = 0, text = ("a"):rep(20)})
function App:increment() self.count = self.count + 1 end
function App:search(v) return string.find(self.text, v) end
function App:trim(v) return v:lower():match("^%s*(.-)%s*$") end
function App:move(n) table.move({}, 1, n, 1, {}) end
session:createAppVariable(App:new())
"#;

/// The review's catastrophic pattern: 100 lazy items and a `b` the subject lacks.
fn catastrophic() -> String {
    format!("{}b", ".-".repeat(100))
}

async fn healthz(gw: &ui_gateway::gateway::RunningGateway) -> u16 {
    http().get(format!("http://{}/healthz", gw.addr)).send().await.unwrap().status().as_u16()
}

/// One `increment()` round trip on a tab set up by [`demo_counter`].
async fn increment(ws: &mut Ws, m: &mut Mirror) {
    let before = m.value(2).as_i64().unwrap();
    ws.send(set(3, serde_json::Value::Null, true)).await;
    ws.until(m, |m| m.value(2).as_i64() == Some(before + 1)).await;
}

// Two workers, so that a regression shows as a failed step (10 s) rather than a silent hang of the
// test's only thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catastrophic_patterns_end_in_lua_timeout_and_nothing_else_stalls() {
    let dir = site(&[
        ("lua/main.lua", APP),
        ("viewdefs/App.DEFAULT.html", "<template><span ui-value=\"count\"></span></template>"),
    ]);
    let mut a = args();
    a.site = Some(dir);
    // A small budget keeps the test quick; the bound is the same at the default.
    a.lua_instructions = 5_000_000;
    let gw = start(a).await;

    let (id_a, id_b) = (new_session(&gw).await, new_session(&gw).await);
    let mut ws_a = connect(&gw, &id_a, None).await.unwrap();
    let mut ws_b = connect(&gw, &id_b, None).await.unwrap();
    let mut m_a = demo_counter(&mut ws_a).await;
    let mut m_b = demo_counter(&mut ws_b).await;
    ws_a.send(creates(&[
        (4, 1, json!({"path": "search(_)", "access": "action"})),
        (5, 1, json!({"path": "trim(_)", "access": "action"})),
        (6, 1, json!({"path": "move(_)", "access": "action"})),
        // C1's form: a string field reached through the string library from a path.
        (7, 1, json!({"path": "zz", "access": "rw"})),
        (8, 1, json!({"path": "zz.find(_)", "access": "action"})),
    ]))
    .await;

    // The method runs the pattern on the browser's string.
    let started = std::time::Instant::now();
    ws_a.send(set(4, json!(catastrophic()), true)).await;
    // Meanwhile another session completes a round trip and the gateway answers /healthz.
    increment(&mut ws_b, &mut m_b).await;
    assert_eq!(healthz(&gw).await, 200);
    ws_a.until(&mut m_a, |m| m.errors.contains_key(&4)).await;
    eprintln!("search(_) answered after {:?}", started.elapsed());
    assert_eq!(m_a.errors[&4], "lua-timeout");
    // The same session keeps answering.
    increment(&mut ws_a, &mut m_a).await;

    // H1: the quadratic trim on a long input, and H2's table.move over 3e8 slots.
    ws_a.send(set(5, json!(format!("a{}a", " ".repeat(100_000))), true)).await;
    ws_a.until(&mut m_a, |m| m.errors.contains_key(&5)).await;
    assert_eq!(m_a.errors[&5], "lua-timeout");
    ws_a.send(set(6, json!(3e8), true)).await;
    ws_a.until(&mut m_a, |m| m.errors.contains_key(&6)).await;
    assert_eq!(m_a.errors[&6], "lua-timeout");

    // C1's frame: write a string field, then call `find` on it through the path. Paths may not call
    // library functions at all, so this is a path failure before any pattern runs (the bound above is
    // the second line, for app code that matches browser input itself).
    ws_a.send(json!({"userEvent": true, "messages": [
        {"type": "update", "data": {"varId": 7, "value": "aaaaaaaaaaaaaaaaaaaa"}},
        {"type": "update", "data": {"varId": 8, "value": catastrophic()}}]}))
        .await;
    ws_a.until(&mut m_a, |m| m.errors.contains_key(&8)).await;
    assert_eq!(m_a.errors[&8], "path-failure");
    increment(&mut ws_b, &mut m_b).await;
    increment(&mut ws_a, &mut m_a).await;
    assert_eq!(healthz(&gw).await, 200);

    // Counted apart from plain instruction-budget hits.
    let metrics = http().get(format!("http://{}/metrics", gw.addr)).send().await.unwrap().text().await.unwrap();
    let hits = metrics
        .lines()
        .find(|l| l.starts_with("ui_lua_limit_hits_total{limit=\"library\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no library limit series in\n{metrics}"));
    assert!(hits >= 3, "{hits}");
}
