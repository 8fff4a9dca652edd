//! Lua behaviour seen through the real server: timers push changes, runaway actions are typed errors.

mod common;

use common::*;
use serde_json::{json, Value};

const CLOCK_APP: &str = r#"
Clock = session:prototype("Clock", {ticks = 0})
function Clock:spin() while true do end end
function Clock:grow() local t = {} for i = 1, 1e8 do t[i] = ("x"):rep(64) .. i end end
function Clock:bump() self.ticks = self.ticks + 100 end
local clock = Clock:new()
session:createAppVariable(clock)
session:setInterval(function() clock.ticks = clock.ticks + 1 end, 30)
"#;

#[tokio::test]
async fn timers_push_changes_and_runaway_actions_are_typed_errors() {
    let dir = site(&[
        ("lua/main.lua", CLOCK_APP),
        ("viewdefs/Clock.DEFAULT.html", "<template><span ui-value=\"ticks\"></span></template>"),
    ]);
    let mut a = args();
    a.site = Some(dir);
    a.lua_instructions = 5_000_000;
    a.lua_memory_mb = 16;
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    ws.send(watch(1)).await;
    ws.recv().await;
    ws.send(json!({"userEvent":true,"messages":[
        {"type":"create","data":{"id":2,"parentId":1,"properties":{"path":"ticks","access":"r"}}},
        {"type":"create","data":{"id":3,"parentId":1,"properties":{"path":"spin()","access":"action"}}},
        {"type":"create","data":{"id":4,"parentId":1,"properties":{"path":"grow()","access":"action"}}},
        {"type":"create","data":{"id":5,"parentId":1,"properties":{"path":"bump()","access":"action"}}}]}))
        .await;
    let first = ws.recv().await;
    let start_ticks = first[0]["data"]["value"].as_i64().unwrap();
    // With no inbound frame, the interval's changes arrive.
    let mut seen = start_ticks;
    for _ in 0..3 {
        let frame = ws.recv().await;
        let v = frame.iter().find(|m| m["data"]["varId"] == 2).unwrap()["data"]["value"].as_i64().unwrap();
        assert!(v > seen, "ticks grow: {v} after {seen}");
        seen = v;
    }
    // A runaway action: lua-timeout for it, the next message of the frame still works.
    ws.send(json!({"userEvent":true,"messages":[
        {"type":"update","data":{"varId":3,"value":null}},
        {"type":"update","data":{"varId":4,"value":null}}]}))
        .await;
    let mut codes = Vec::new();
    while codes.len() < 2 {
        for m in ws.recv().await {
            if m["type"] == "error" {
                codes.push((m["data"]["varId"].as_i64().unwrap(), m["data"]["code"].as_str().unwrap().to_string()));
            }
        }
    }
    assert_eq!(codes[0], (3, "lua-timeout".to_string()));
    assert_eq!(codes[1].0, 4);
    assert!(codes[1].1 == "lua-timeout" || codes[1].1 == "lua-memory", "{codes:?}");
    // The next batch has a fresh budget: a memory bomb alone is lua-memory, and a normal action works.
    ws.send(json!({"userEvent":true,"messages":[{"type":"update","data":{"varId":4,"value":null}}]})).await;
    let code = loop {
        if let Some(m) = ws.recv().await.into_iter().find(|m| m["type"] == "error") {
            break m["data"]["code"].as_str().unwrap().to_string();
        }
    };
    assert_eq!(code, "lua-memory");
    ws.send(json!({"userEvent":true,"messages":[{"type":"update","data":{"varId":5,"value":null}}]})).await;
    loop {
        let frame = ws.recv().await;
        if let Some(m) = frame.iter().find(|m| m["data"]["varId"] == 2) {
            assert!(m["data"]["value"].as_i64().unwrap() >= seen + 100);
            break;
        }
    }
}

/// `ui-gateway new`'s site runs as written: served by a real gateway and driven over the browser
/// WebSocket as its viewdefs bind it (the list through `lua.ViewList`, the input, `add()`, `left()`).
#[tokio::test]
async fn the_scaffolded_site_serves_and_works() {
    let dir = std::env::temp_dir().join(format!("uigw-test-scaffold-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ui_gateway::scaffold::create(&dir).unwrap();
    let mut a = args();
    a.site = Some(dir.clone());
    let gw = start(a).await;
    let r = http().get(format!("http://{}/app.css", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200, "the stylesheet of html/ is served");
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let mut m = Mirror::default();
    ws.send(watch(1)).await;
    ws.until(&mut m, |m| m.prop(1, "type") == Some("App")).await;
    assert!(m.viewdefs.contains("App.DEFAULT"), "{:?}", m.viewdefs);
    ws.send(creates(&[
        (2, 1, json!({"path": "newName", "access": "rw"})),
        (3, 1, json!({"path": "add()", "access": "action"})),
        (4, 1, json!({"path": "left()", "access": "r"})),
        (5, 1, json!({"path": "items", "access": "r", "wrapper": "lua.ViewList", "fallbackNamespace": "list-item"})),
    ]))
    .await;
    ws.until(&mut m, |m| m.value(4) == json!(1) && m.prop(5, "type") == Some("lua.ViewList")).await;
    ws.send(creates(&[(6, 5, json!({"path": "items", "access": "r"}))])).await;
    ws.until(&mut m, |m| m.value(6).as_array().is_some_and(|a| a.len() == 1)).await;
    ws.send(set(2, json!("Milk"), false)).await;
    ws.send(set(3, Value::Null, true)).await;
    ws.until(&mut m, |m| m.value(4) == json!(2) && m.value(6).as_array().is_some_and(|a| a.len() == 2)).await;
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    let _ = std::fs::remove_dir_all(&dir);
}

const PATHS_APP: &str = r#"
A = session:prototype("A", {})
B = session:prototype("B", {})
function A:go() session:navigate("b") end
function A:found() return session:resolveUrlPath("/b/") == b end
b = B:new()
local a = A:new()
session:registerUrlPath("/", a)
session:registerUrlPath("/b", b)
session:createAppVariable(a)
"#;

/// URL paths over the browser protocol, as the built-in page uses them: variable 1 says the app has
/// paths; the `lua.UrlPage` variable shows the presenter of its `urlPath` (an unknown one shows the
/// default), follows a written `path` (Back/Forward) and `session:navigate` (which the page pushes).
#[tokio::test]
async fn url_paths_choose_the_presenter() {
    let dir = site(&[("lua/main.lua", PATHS_APP)]);
    let mut a = args();
    a.site = Some(dir);
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let mut m = Mirror::default();
    ws.send(watch(1)).await;
    ws.until(&mut m, |m| m.prop(1, "type") == Some("A")).await;
    assert_eq!(m.prop(1, "urlPaths"), Some("on"));
    ws.send(creates(&[
        (2, 1, json!({"path": "uiUrl..", "access": "r", "wrapper": "lua.UrlPage", "urlPath": "/nothing/here"})),
        (3, 2, json!({"path": "presenter", "access": "r"})),
        (4, 2, json!({"path": "path", "access": "rw"})),
        (5, 1, json!({"path": "found()", "access": "r"})),
        (6, 1, json!({"path": "go()", "access": "action"})),
    ]))
    .await;
    ws.until(&mut m, |m| m.prop(3, "type") == Some("A") && m.value(4) == json!("/nothing/here")).await;
    assert_eq!(m.value(5), json!(true), "resolveUrlPath normalizes the path");
    // Back/Forward: the page writes the path.
    ws.send(set(4, json!("/b"), false)).await;
    ws.until(&mut m, |m| m.prop(3, "type") == Some("B")).await;
    ws.send(set(4, json!("/"), false)).await;
    ws.until(&mut m, |m| m.prop(3, "type") == Some("A")).await;
    // Navigation inside the app: the path moves (and the page pushes it).
    ws.send(set(6, Value::Null, true)).await;
    ws.until(&mut m, |m| m.prop(3, "type") == Some("B") && m.value(4) == json!("/b")).await;
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}
