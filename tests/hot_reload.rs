//! `--watch` (docs/lua-api.md "Hot reload", PROTOCOL.md A13): edits to a live site's Lua and
//! viewdefs reach open sessions without a reload, through the real file watcher.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const MAIN: &str = r#"
local Counter = require("counter")
if not session:getApp() then session:createAppVariable(Counter:new({label = "clicks"})) end
"#;

const COUNTER_V1: &str = r#"
local Counter = session:prototype("Counter", {count = 0, label = EMPTY})
function Counter:inc() self.count = self.count + 1 end
function Counter:text() return "v1 " .. self.count end
return Counter
"#;

/// v2 renames `label` to `title`; `mutate` carries the value over and records `session.reloading`.
const COUNTER_V2: &str = r#"
local Counter = session:prototype("Counter", {count = 0, title = EMPTY})
function Counter:inc() self.count = self.count + 1 end
function Counter:mutate()
  self.title = self.title or self.label
  self.sawReloading = session.reloading
end
function Counter:text()
  return table.concat({"v2", self.count, tostring(self.title), tostring(rawget(self, "label")),
    tostring(self.sawReloading), tostring(session.reloading), tostring(other_ran)}, " ")
end
return Counter
"#;

fn write(dir: &Path, rel: &str, text: &str) {
    std::fs::write(dir.join(rel), text).unwrap();
}

/// Bootstraps a tab: viewdefs and variable 1, then `text()` as var 2 and `inc()` as var 3.
async fn open_tab(ws: &mut Ws) -> Mirror {
    let mut m = Mirror::default();
    ws.send(watch(1)).await;
    ws.until(&mut m, |m| m.prop(1, "type") == Some("Counter")).await;
    ws.send(creates(&[
        (2, 1, json!({"path": "text()", "access": "r"})),
        (3, 1, json!({"path": "inc()", "access": "action"})),
    ]))
    .await;
    ws.until(&mut m, |m| m.values.contains_key(&2)).await;
    m
}

/// The `viewdefs` property of a frame's variable-1 update, decoded.
fn viewdefs_in(frame: &[Value]) -> Option<Value> {
    frame.iter().find_map(|msg| {
        let text = msg["data"]["properties"]["viewdefs"].as_str()?;
        (msg["data"]["varId"] == 1).then(|| serde_json::from_str(text).unwrap())
    })
}

/// A gateway serving `dir` with `--watch`.
async fn start_watching(dir: &std::path::Path) -> ui_gateway::gateway::RunningGateway {
    let mut a = args();
    a.site = Some(dir.to_path_buf());
    a.watch = true;
    start(a).await
}

#[tokio::test]
async fn edits_reach_open_sessions_and_broken_code_keeps_the_old() {
    let dir = site(&[
        ("lua/main.lua", MAIN),
        ("lua/counter.lua", COUNTER_V1),
        ("lua/other.lua", "other_ran = true"),
        ("viewdefs/Counter.DEFAULT.html", "<template><h1>v1</h1></template>"),
        ("viewdefs/Other.DEFAULT.html", "<template><p>other</p></template>"),
    ]);
    let gw = start_watching(&dir).await;
    let id = new_session(&gw).await;
    let mut tab = connect(&gw, &id, None).await.unwrap();
    let mut m = open_tab(&mut tab).await;
    assert!(m.viewdefs.contains("Counter.DEFAULT"));
    assert_eq!(m.value(2), json!("v1 0"));
    // A second tab that has met no type yet: viewdef pushes are not for it.
    let mut idle_tab = connect(&gw, &id, None).await.unwrap();

    // New code: rerun with `reloading` set, the instance keeps its state and sees the new methods;
    // the removed key is cleared after `mutate` copied it.
    write(&dir, "lua/counter.lua", COUNTER_V2);
    tab.until(&mut m, |m| m.value(2).as_str().is_some_and(|t| t.starts_with("v2"))).await;
    assert_eq!(m.value(2), json!("v2 0 clicks nil true false nil"));
    tab.send(set(3, Value::Null, true)).await;
    tab.until(&mut m, |m| m.value(2) == json!("v2 1 clicks nil true false nil")).await;

    // A changed viewdef goes to the tab that has its type, as a variable-1 `viewdefs` update. A file
    // this session never loaded changes in the same window: it does not run.
    write(&dir, "lua/other.lua", "other_ran = 'again'");
    write(&dir, "viewdefs/Counter.DEFAULT.html", "<template><h1>v2</h1></template>");
    let frame = tab.recv().await;
    assert_eq!(viewdefs_in(&frame), Some(json!({"Counter.DEFAULT": "<template><h1>v2</h1></template>"})));
    idle_tab.quiet(Duration::from_millis(300)).await;
    tab.send(set(3, Value::Null, true)).await;
    tab.until(&mut m, |m| m.value(2) == json!("v2 2 clicks nil true false nil")).await;

    // A syntax error: logged, nothing reruns, the old code keeps working. (The viewdef edited in the
    // same window shows when the reload has been handled.)
    write(&dir, "lua/counter.lua", "local Counter = session:prototype(\"Counter\", {count = ");
    write(&dir, "viewdefs/Counter.DEFAULT.html", "<template><h1>v3</h1></template>");
    let frame = tab.recv().await;
    assert_eq!(viewdefs_in(&frame), Some(json!({"Counter.DEFAULT": "<template><h1>v3</h1></template>"})));
    tab.send(set(3, Value::Null, true)).await;
    tab.until(&mut m, |m| m.value(2) == json!("v2 3 clicks nil true false nil")).await;

    // A session started now gets the current viewdefs and the last code that compiled.
    let id2 = new_session(&gw).await;
    let mut fresh = connect(&gw, &id2, None).await.unwrap();
    fresh.send(watch(1)).await;
    let frame = fresh.recv().await;
    assert_eq!(
        viewdefs_in(&frame).unwrap_or_else(|| panic!("{frame:?}"))["Counter.DEFAULT"],
        json!("<template><h1>v3</h1></template>")
    );
    let mut m2 = Mirror::default();
    m2.apply(&frame);
    fresh.send(creates(&[(2, 1, json!({"path": "text()", "access": "r"}))])).await;
    fresh.until(&mut m2, |m| m.values.contains_key(&2)).await;
    // main.lua still passes `label`; no mutate ran in this session, so nothing copied it to `title`.
    assert_eq!(m2.value(2), json!("v2 0 nil clicks nil false nil"), "new sessions start from v2");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `siteProblems` list of a frame's variable-1 update, decoded (development pages only).
fn site_problems_in(frame: &[Value]) -> Option<Vec<Value>> {
    frame.iter().find_map(|msg| {
        let text = msg["data"]["properties"]["siteProblems"].as_str()?;
        (msg["data"]["varId"] == 1).then(|| serde_json::from_str(text).unwrap())
    })
}

/// Reads frames (into `m`) until one carries a `siteProblems` list; returns the list's messages.
async fn next_site_problems(ws: &mut Ws, m: &mut Mirror) -> Vec<String> {
    loop {
        let frame = ws.recv().await;
        m.apply(&frame);
        if let Some(list) = site_problems_in(&frame) {
            return list.iter().map(|p| p["message"].as_str().unwrap().to_string()).collect();
        }
    }
}

/// A save the gateway refuses is not only in the terminal: every open page, and a page opened
/// meanwhile, gets the site's problems (the file, Lua's `file:line: message`), keeps running the last
/// good code, and hears that the list is empty once a save fixes it.
#[tokio::test]
async fn a_refused_save_reaches_every_page_until_a_good_save_clears_it() {
    let dir = site(&[
        ("lua/main.lua", MAIN),
        ("lua/counter.lua", COUNTER_V1),
        ("viewdefs/Counter.DEFAULT.html", "<template><h1>v1</h1></template>"),
    ]);
    let gw = start_watching(&dir).await;
    let id = new_session(&gw).await;
    let mut tab = connect(&gw, &id, None).await.unwrap();
    let mut m = open_tab(&mut tab).await;

    // main.lua does not compile.
    write(&dir, "lua/main.lua", "local Counter = require(\"counter\")\nsession:createAppVariable(Counter:new(\n");
    let problems = next_site_problems(&mut tab, &mut m).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("lua/main.lua does not compile: "), "{problems:?}");
    assert!(problems[0].contains("lua/main.lua:3:"), "Lua's file and line: {problems:?}");
    assert!(problems[0].ends_with("the page runs the last good code until you fix it"), "{problems:?}");
    // The open page runs the old code.
    tab.send(set(3, Value::Null, true)).await;
    tab.until(&mut m, |m| m.value(2) == json!("v1 1")).await;

    // A page opened meanwhile hears of it with its bootstrap, and starts from the last good code.
    let id2 = new_session(&gw).await;
    let mut fresh = connect(&gw, &id2, None).await.unwrap();
    fresh.send(watch(1)).await;
    let frame = fresh.recv().await;
    let listed = site_problems_in(&frame).unwrap_or_else(|| panic!("{frame:?}"));
    assert_eq!(listed[0]["file"], "lua/main.lua");
    let mut m2 = Mirror::default();
    m2.apply(&frame);
    fresh.until(&mut m2, |m| m.prop(1, "type") == Some("Counter")).await;

    // main.lua compiles but fails at load (in a module it requires): refused too, named with the
    // failing file and line.
    write(&dir, "lua/counter.lua", "error('counter is broken')\n");
    write(&dir, "lua/main.lua", MAIN);
    let problems = loop {
        // The two saves may land in two reloads.
        let problems = next_site_problems(&mut tab, &mut m).await;
        if problems.len() == 1 && problems[0].contains("fails at load") {
            break problems;
        }
    };
    assert!(problems[0].starts_with("lua/main.lua fails at load: "), "{problems:?}");
    assert!(problems[0].contains("lua/counter.lua:1:") && problems[0].contains("counter is broken"), "{problems:?}");
    while next_site_problems(&mut fresh, &mut m2).await != problems {}
    tab.send(set(3, Value::Null, true)).await;
    tab.until(&mut m, |m| m.value(2) == json!("v1 2")).await;

    // A viewdef a save broke is skipped and listed; fixing everything empties the list on every page.
    write(&dir, "viewdefs/Counter.DEFAULT.html", "<h1>v2</h1>");
    let problems = next_site_problems(&mut tab, &mut m).await;
    assert!(
        problems.contains(&"viewdefs/Counter.DEFAULT.html: not exactly one <template> element; skipped".to_string()),
        "{problems:?}"
    );
    write(&dir, "viewdefs/Counter.DEFAULT.html", "<template><h1>v2</h1></template>");
    write(&dir, "lua/counter.lua", COUNTER_V1);
    loop {
        let problems = next_site_problems(&mut tab, &mut m).await;
        if problems.is_empty() {
            break;
        }
        // The two saves may land in two reloads: the viewdef first.
        assert!(problems.iter().all(|p| p.starts_with("lua/")), "{problems:?}");
    }
    loop {
        if next_site_problems(&mut fresh, &mut m2).await.is_empty() {
            break;
        }
    }
    tab.send(set(3, Value::Null, true)).await;
    tab.until(&mut m, |m| m.value(2) == json!("v1 3")).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn watch_needs_a_site_directory() {
    let mut a = args();
    a.watch = true;
    let err = ui_gateway::gateway::RunningGateway::start(&a).await.err().expect("refused");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--site"), "{err}");
}

/// A `main.lua` that does not load does not stop a `--watch` gateway: the page hears the error for
/// variable 1 (and asks again), and once a save fixes the file, the session's hot reload reruns it
/// and the next `watch` of variable 1 gets the app, without a new session.
#[tokio::test]
async fn a_broken_main_lua_under_watch_is_picked_up_when_fixed() {
    let dir = site(&[
        ("lua/main.lua", "local App = session:prototype('App', {n = 1})\nsession:createAppVariable(App:new(\n"),
        ("viewdefs/App.DEFAULT.html", "<template><b ui-value=\"n\"></b></template>"),
    ]);
    let gw = start_watching(&dir).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    ws.send(watch(1)).await;
    let frame = ws.recv().await;
    assert_eq!(frame[0]["type"], "error");
    assert!(frame[0]["data"]["description"].as_str().unwrap().contains("lua/main.lua:3:"), "{frame:?}");
    write(
        &dir,
        "lua/main.lua",
        "local App = session:prototype('App', {n = 1})\nsession:createAppVariable(App:new())\n",
    );
    // What the page does in development: ask again until the app is there.
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "the fixed main.lua never produced variable 1");
        ws.send(watch(1)).await;
        let frame = ws.recv().await;
        if frame.iter().any(|m| m["type"] == "update" && m["data"]["varId"] == 1 && m["data"].get("value").is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
