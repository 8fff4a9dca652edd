//! The Tasks example (`examples/tasks`) driven over real WebSockets the way the frontend drives it:
//! a `lua.ViewList` of tasks, items and their fields, actions, filtering, two tabs, reconnection.
//! Also the Poll example (`examples/poll`, the app of the getting-started walk): votes, an option
//! added with Enter, and the computed total and leader.

mod common;

use common::*;
use serde_json::{json, Value};

fn tasks_site() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/tasks"))
}

/// Client ids the bindings below use.
const NEW_NAME: i64 = 2;
const REMAINING: i64 = 3;
const FILTER: i64 = 4;
const LIST: i64 = 5;
const ITEMS: i64 = 6;
const ADD: i64 = 7;

/// The app's own bindings (TasksApp.DEFAULT), then the list rows (`lua.ViewListItem` → `item` → Task
/// fields) for `rows` items starting at client id `first`.
async fn bind_app(ws: &mut Ws, m: &mut Mirror) {
    ws.send(watch(1)).await;
    ws.until(m, |m| m.prop(1, "type") == Some("TasksApp")).await;
    assert!(m.viewdefs.contains("TasksApp.DEFAULT"), "{:?}", m.viewdefs);
    ws.send(creates(&[
        (NEW_NAME, 1, json!({"path":"newName"})),
        (REMAINING, 1, json!({"path":"remaining()","access":"r"})),
        (FILTER, 1, json!({"path":"filter"})),
        (LIST, 1, json!({"path":"filteredTasks()?wrapper=lua.ViewList&scrollOnOutput","access":"r"})),
        (ITEMS, LIST, json!({"path":"items","access":"r"})),
        (ADD, 1, json!({"path":"addTask()","access":"action"})),
    ]))
    .await;
    ws.until(m, |m| m.values.get(&ITEMS).and_then(Value::as_array).is_some()).await;
    assert_eq!(m.prop(LIST, "type"), Some("lua.ViewList"));
    assert_eq!(m.prop(LIST, "fallbackNamespace"), Some("list-item"));
    assert!(m.viewdefs.contains("lua.ViewList.DEFAULT"));
}

/// Binds one row: item variable `base` (path = its index), `base+1` = `item`, then name, completed,
/// remove(). Returns once the name is known.
async fn bind_row(ws: &mut Ws, m: &mut Mirror, base: i64, index: usize) {
    ws.send(creates(&[
        (base, ITEMS, json!({"path": index.to_string(), "access":"r"})),
        (base + 1, base, json!({"path":"item","access":"r"})),
        (base + 2, base + 1, json!({"path":"name"})),
        (base + 3, base + 1, json!({"path":"completed"})),
        (base + 4, base + 1, json!({"path":"remove()","access":"action"})),
    ]))
    .await;
    ws.until(m, |m| m.values.get(&(base + 2)).is_some_and(Value::is_string)).await;
    assert_eq!(m.prop(base, "type"), Some("lua.ViewListItem"));
    assert_eq!(m.prop(base + 1, "type"), Some("Task"));
    assert!(m.viewdefs.contains("Task.list-item") && m.viewdefs.contains("lua.ViewListItem.list-item"));
}

fn rows(m: &Mirror) -> usize {
    m.value(ITEMS).as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn tasks_list_add_tick_filter_remove() {
    let mut a = args();
    a.site = Some(tasks_site());
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let mut m = Mirror::default();
    bind_app(&mut ws, &mut m).await;
    assert_eq!(rows(&m), 3);
    assert_eq!(m.value(REMAINING), json!(2));
    for (i, base) in [(0, 10), (1, 20), (2, 30)] {
        bind_row(&mut ws, &mut m, base, i).await;
    }
    assert_eq!([m.value(12), m.value(22), m.value(32)], [json!("Buy milk"), json!("Write spec"), json!("Walk dog")]);
    assert_eq!([m.value(13), m.value(23), m.value(33)], [json!(false), json!(true), json!(false)]);

    // Type a name and press Enter: the value goes first, then the action as a user event.
    ws.send(set(NEW_NAME, json!("Call Bob"), false)).await;
    ws.send(set(ADD, Value::Null, true)).await;
    ws.until(&mut m, |m| rows(m) == 4 && m.value(REMAINING) == json!(3) && m.value(NEW_NAME) == json!("")).await;
    // A blank name adds nothing (the action still runs, nothing changes).
    ws.send(set(NEW_NAME, json!("   "), false)).await;
    ws.send(set(ADD, Value::Null, true)).await;
    ws.until(&mut m, |m| m.value(NEW_NAME) == json!("")).await;
    assert_eq!(rows(&m), 4);

    // Tick "Buy milk": the counter drops; nothing is echoed for the tick itself.
    ws.send(set(13, json!(true), false)).await;
    ws.until(&mut m, |m| m.value(REMAINING) == json!(2)).await;
    assert_eq!(m.value(13), json!(false), "the writer's own change is not echoed");

    // Filter `done`: "Buy milk" and "Write spec".
    ws.send(set(FILTER, json!("done"), false)).await;
    ws.until(&mut m, |m| rows(m) == 2).await;
    // Row 0 is still "Buy milk" (same element, same item); row 1 is now "Write spec".
    ws.until(&mut m, |m| m.value(22) == json!("Write spec")).await;
    assert_eq!(m.value(12), json!("Buy milk"));
    ws.send(set(FILTER, json!("all"), false)).await;
    ws.until(&mut m, |m| rows(m) == 4).await;

    // Delete "Walk dog" (row 2) through its own action.
    ws.until(&mut m, |m| m.value(32) == json!("Walk dog")).await;
    ws.send(set(34, Value::Null, true)).await;
    ws.until(&mut m, |m| rows(m) == 3 && m.value(32) == json!("Call Bob")).await;
    assert_eq!(m.value(REMAINING), json!(1));
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    gw.shutdown(std::time::Duration::from_secs(2)).await;
}

#[tokio::test]
async fn two_tabs_share_state_and_a_reconnecting_tab_gets_it_back() {
    let mut a = args();
    a.site = Some(tasks_site());
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let (mut ta, mut ma) = (connect(&gw, &id, None).await.unwrap(), Mirror::default());
    let (mut tb, mut mb) = (connect(&gw, &id, None).await.unwrap(), Mirror::default());
    // Both tabs use the same client ids; the gateway keeps them apart.
    bind_app(&mut ta, &mut ma).await;
    bind_app(&mut tb, &mut mb).await;
    bind_row(&mut ta, &mut ma, 10, 0).await;
    bind_row(&mut tb, &mut mb, 10, 0).await;

    // A task added in B appears in A.
    tb.send(set(NEW_NAME, json!("From B"), false)).await;
    tb.send(set(ADD, Value::Null, true)).await;
    ta.until(&mut ma, |m| rows(m) == 4 && m.value(REMAINING) == json!(3)).await;
    // A tick in A shows in B.
    ta.send(set(13, json!(true), false)).await;
    tb.until(&mut mb, |m| m.value(13) == json!(true) && m.value(REMAINING) == json!(2)).await;
    // B typing into newName reaches A.
    tb.send(set(NEW_NAME, json!("draft"), false)).await;
    ta.until(&mut ma, |m| m.value(NEW_NAME) == json!("draft")).await;

    // B goes away; A keeps working.
    drop(tb);
    ta.send(set(FILTER, json!("active"), false)).await;
    ta.until(&mut ma, |m| rows(m) == 2).await;

    // A reconnecting tab (new socket, ids from 2 again) sees the same state without anyone reloading.
    let (mut tc, mut mc) = (connect(&gw, &id, None).await.unwrap(), Mirror::default());
    bind_app(&mut tc, &mut mc).await;
    assert_eq!(rows(&mc), 2);
    assert_eq!(mc.value(FILTER), json!("active"));
    assert_eq!(mc.value(NEW_NAME), json!("draft"));
    assert_eq!(mc.value(REMAINING), json!(2));
    bind_row(&mut tc, &mut mc, 10, 1).await;
    assert_eq!(mc.value(12), json!("From B"));
    assert!(ma.errors.is_empty() && mb.errors.is_empty() && mc.errors.is_empty());
    gw.shutdown(std::time::Duration::from_secs(2)).await;
}

async fn variables(gw: &ui_gateway::gateway::RunningGateway, id: &str) -> (Vec<Value>, u64) {
    let r = http().get(format!("http://{}/{id}/variables.json", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let changes = r.headers()["x-change-count"].to_str().unwrap().parse().unwrap();
    (r.json::<Vec<Value>>().await.unwrap(), changes)
}

#[tokio::test]
async fn debug_pages_show_the_tree_and_are_local_only() {
    let mut a = args();
    a.site = Some(tasks_site());
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let mut m = Mirror::default();
    bind_app(&mut ws, &mut m).await;
    bind_row(&mut ws, &mut m, 10, 0).await;
    let (items, _) = variables(&gw, &id).await;
    let ids: Vec<i64> = items.iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(ids[0], 1);
    assert_eq!(items[0]["type"], "TasksApp");
    assert_eq!(items[0]["owner"], "lua");
    let list = items.iter().find(|i| i["path"] == "filteredTasks()").unwrap();
    assert_eq!(list["type"], "lua.ViewList");
    assert_eq!(list["watchers"], 1);
    assert!(list["depth"] == 1 && list["parentId"] == 1);
    let before = items.len();

    // Adding and deleting a task 20 times leaves the variable count where it was.
    for _ in 0..20 {
        ws.send(set(NEW_NAME, json!("temp"), false)).await;
        ws.send(set(ADD, Value::Null, true)).await;
        ws.until(&mut m, |m| rows(m) == 4).await;
        ws.send(creates(&[
            (100, ITEMS, json!({"path":"3","access":"r"})),
            (101, 100, json!({"path":"item","access":"r"})),
            (102, 101, json!({"path":"remove()","access":"action"})),
        ]))
        .await;
        ws.send(set(102, Value::Null, true)).await;
        ws.until(&mut m, |m| rows(m) == 3).await;
        ws.send(json!({"userEvent":false,"messages":[{"type":"destroy","data":{"varId":100}}]})).await;
        ws.until(&mut m, |m| m.destroyed.contains(&100)).await;
        m.destroyed.clear();
    }
    let (items, changes) = variables(&gw, &id).await;
    assert_eq!(items.len(), before);
    assert!(changes > 0);
    let page = http().get(format!("http://{}/{id}/variables", gw.addr)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("filteredTasks()"));

    // Not local (a proxy header) → 404.
    let r = http()
        .get(format!("http://{}/{id}/variables.json", gw.addr))
        .header("x-forwarded-for", "1.2.3.4")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    gw.shutdown(std::time::Duration::from_secs(2)).await;

    let mut a = args();
    a.no_debug_pages = true;
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let r = http().get(format!("http://{}/{id}/variables.json", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    gw.shutdown(std::time::Duration::from_secs(2)).await;
}

fn poll_site() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/poll"))
}

/// The poll as its viewdefs bind it (`Poll.DEFAULT`, then `Option.list-item` per row): a vote goes
/// through the row's `vote()` action, Enter in the input writes `newOption` and then fires
/// `addOption()`, and `total()` / `leader()` follow every change. The example is what the docs point
/// newcomers at, so it must keep working as they change.
#[tokio::test]
async fn poll_votes_add_an_option_and_follow_total_and_leader() {
    const QUESTION: i64 = 2;
    const NEW_OPTION: i64 = 3;
    const TOTAL: i64 = 4;
    const LEADER: i64 = 5;
    const LIST: i64 = 6;
    const ITEMS: i64 = 7;
    const ADD: i64 = 8;
    let mut a = args();
    a.site = Some(poll_site());
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    let mut m = Mirror::default();
    ws.send(watch(1)).await;
    ws.until(&mut m, |m| m.prop(1, "type") == Some("Poll")).await;
    assert!(m.viewdefs.contains("Poll.DEFAULT"), "{:?}", m.viewdefs);
    ws.send(creates(&[
        (QUESTION, 1, json!({"path":"question"})),
        (NEW_OPTION, 1, json!({"path":"newOption"})),
        (TOTAL, 1, json!({"path":"total()","access":"r"})),
        (LEADER, 1, json!({"path":"leader()","access":"r"})),
        (LIST, 1, json!({"path":"options?wrapper=lua.ViewList","access":"r"})),
        (ITEMS, LIST, json!({"path":"items","access":"r"})),
        (ADD, 1, json!({"path":"addOption()","access":"action"})),
    ]))
    .await;
    let rows = |m: &Mirror| m.value(ITEMS).as_array().map_or(0, Vec::len);
    ws.until(&mut m, |m| rows(m) == 3 && m.values.contains_key(&LEADER)).await;
    assert_eq!(m.value(QUESTION), json!("Which language for the next project?"));
    assert_eq!((m.value(TOTAL), m.value(LEADER)), (json!(0), json!("no votes yet")));

    // One row: the ViewListItem at `index`, its Option, the name, the count and the Vote button.
    async fn bind_option(ws: &mut Ws, m: &mut Mirror, base: i64, index: usize) {
        ws.send(creates(&[
            (base, ITEMS, json!({"path": index.to_string(), "access":"r"})),
            (base + 1, base, json!({"path":"item","access":"r"})),
            (base + 2, base + 1, json!({"path":"name"})),
            (base + 3, base + 1, json!({"path":"votes"})),
            (base + 4, base + 1, json!({"path":"vote()","access":"action"})),
        ]))
        .await;
        ws.until(m, |m| m.values.get(&(base + 3)).is_some_and(Value::is_number)).await;
        assert_eq!(m.prop(base + 1, "type"), Some("Option"));
        assert!(m.viewdefs.contains("Option.list-item"), "{:?}", m.viewdefs);
    }
    for (base, index) in [(10, 0), (20, 1), (30, 2)] {
        bind_option(&mut ws, &mut m, base, index).await;
    }
    assert_eq!([m.value(12), m.value(22), m.value(32)], [json!("Lua"), json!("Rust"), json!("Python")]);

    // Lua twice, Python once.
    for vote in [14, 14, 34] {
        ws.send(set(vote, Value::Null, true)).await;
    }
    ws.until(&mut m, |m| m.value(TOTAL) == json!(3)).await;
    assert_eq!([m.value(13), m.value(23), m.value(33)], [json!(2), json!(0), json!(1)]);
    assert_eq!(m.value(LEADER), json!("Lua"));

    // Typing "Zig" and pressing Enter: the value is written, then the action fires.
    ws.send(set(NEW_OPTION, json!(" Zig "), false)).await;
    ws.send(set(ADD, Value::Null, true)).await;
    ws.until(&mut m, |m| rows(m) == 4 && m.value(NEW_OPTION) == json!("")).await;
    bind_option(&mut ws, &mut m, 40, 3).await;
    assert_eq!((m.value(42), m.value(43)), (json!("Zig"), json!(0)));
    // Enter on an empty input adds nothing.
    ws.send(set(ADD, Value::Null, true)).await;
    ws.quiet(std::time::Duration::from_millis(150)).await;
    assert_eq!(rows(&m), 4);

    // Three votes for Zig: it leads, the total follows.
    for _ in 0..3 {
        ws.send(set(44, Value::Null, true)).await;
    }
    ws.until(&mut m, |m| m.value(TOTAL) == json!(6)).await;
    assert_eq!((m.value(43), m.value(LEADER)), (json!(3), json!("Zig")));
    assert!(m.errors.is_empty(), "{:?}", m.errors);
    gw.shutdown(std::time::Duration::from_secs(2)).await;
}
