//! The session state machine against the fixture apps of `protocol/vectors/fixtures/apps.md`, without sockets.

use serde_json::{json, Value as Json};
use tokio::sync::mpsc::unbounded_channel;

use super::*;
use crate::ids::VendedId;
use crate::protocol::message::parse_message;
use crate::protocol::{ErrorCode, Side};

struct Counter {
    count: i64,
}
impl Counter {
    fn increment(&mut self) {
        self.count += 1;
    }
}
crate::ui_object!(Counter { fields { count } methods { increment() } });

struct TodoItem {
    text: String,
    done: bool,
}
impl TodoItem {
    fn toggle(&mut self) {
        self.done = !self.done;
    }
}
crate::ui_object!(TodoItem { fields { text, done } methods { toggle() } });

struct TodoApp {
    items: Vec<Obj<TodoItem>>,
    new_text: String,
}
impl TodoApp {
    fn add(&mut self) {
        if !self.new_text.is_empty() {
            let text = std::mem::take(&mut self.new_text);
            self.items.push(Obj::new(TodoItem { text, done: false }));
        }
    }
    fn clear_done(&mut self) {
        self.items.retain(|i| !i.borrow().done);
    }
    fn remaining(&self) -> usize {
        self.items.iter().filter(|i| !i.borrow().done).count()
    }
}
crate::ui_object!(TodoApp {
    fields { items, new_text as "newText" }
    methods { add(), clear_done() as "clearDone", remaining() }
});

fn todo() -> Obj<TodoApp> {
    let item = |t: &str, done| Obj::new(TodoItem { text: t.into(), done });
    Obj::new(TodoApp { items: vec![item("milk", false), item("eggs", true)], new_text: String::new() })
}

fn session(mode: Mode, root: Option<JValue>) -> Session {
    let (tx, _rx) = unbounded_channel();
    let mut s = Session::new(VendedId(1), mode, tx);
    s.set_root(root);
    s
}

fn watch(id: i64) -> Json {
    json!({"type":"watch","data":{"varId":id}})
}
fn create(id: i64, parent: i64, path: &str, access: &str) -> Json {
    json!({"type":"create","data":{"id":id,"parentId":parent,"properties":{"path":path,"access":access},"nowatch":true}})
}
fn update(id: i64, value: Json) -> Json {
    json!({"type":"update","data":{"varId":id,"value":value}})
}
/// The tests speak JSON on both sides: gateway messages are parsed as the connection parses them, and
/// the reply goes through the one batch encoder and back.
trait JsonBatches {
    fn apply_json(&mut self, messages: &[Json], user_event: bool, first: bool, replay: bool) -> Option<Json>;
    fn run_json(&mut self, app: &mut dyn std::any::Any, job: session::Job) -> Option<Json>;
}

fn reply_json(reply: Option<session::Reply>) -> Option<Json> {
    let reply = reply?;
    let text = crate::protocol::backend::encode_batch(VendedId(1), reply.user_event, &reply.messages);
    Some(serde_json::from_str(&text).unwrap())
}

impl JsonBatches for Session {
    fn apply_json(&mut self, messages: &[Json], user_event: bool, first: bool, replay: bool) -> Option<Json> {
        let parsed = messages.iter().map(|m| parse_message(m, Side::Gateway)).collect();
        reply_json(self.apply_batch(parsed, user_event, first, replay))
    }

    fn run_json(&mut self, app: &mut dyn std::any::Any, job: session::Job) -> Option<Json> {
        reply_json(self.run(app, job))
    }
}

fn messages(frame: Option<Json>) -> Vec<Json> {
    frame.map(|f| f["messages"].as_array().unwrap().clone()).unwrap_or_default()
}

#[test]
fn connected_root_first_and_watch_answers() {
    let counter = Obj::new(Counter { count: 0 });
    let mut s = session(Mode::Connected, counter.root());
    let reply = s.apply_json(&[watch(1)], false, true, false).unwrap();
    assert_eq!(
        reply,
        json!({"session":"1","messages":[{"type":"create","data":{"id":1,"value":{"obj":1},"properties":{"type":"Counter"}}}]})
    );
    let m = messages(s.apply_json(
        &[create(2, 1, "count", "r"), watch(2), create(3, 1, "increment()", "action"), watch(3)],
        false,
        false,
        false,
    ));
    assert_eq!(m, vec![json!({"type":"update","data":{"varId":2,"value":0}})]);
    // The action: only the count changes; the reply carries userEvent.
    let reply = s.apply_json(&[update(3, Json::Null)], true, false, false).unwrap();
    assert_eq!(
        reply,
        json!({"session":"1","userEvent":true,"messages":[{"type":"update","data":{"varId":2,"value":1}}]})
    );
    assert_eq!(counter.borrow().count, 1);
    // Nothing changed, nothing sent.
    assert!(s.apply_json(&[], false, false, false).is_none());
    // Unwatched: no updates; destroyed: gone.
    let m = messages(s.apply_json(
        &[json!({"type":"unwatch","data":{"varId":2}}), update(3, Json::Null)],
        false,
        false,
        false,
    ));
    assert!(m.is_empty(), "{m:?}");
    let m = messages(s.apply_json(
        &[json!({"type":"destroy","data":{"varId":2}}), update(3, Json::Null)],
        false,
        false,
        false,
    ));
    assert!(m.is_empty(), "{m:?}");
    let m = messages(s.apply_json(&[watch(2)], false, false, false));
    assert_eq!(m[0]["type"], "error");
    assert_eq!(m[0]["data"]["code"], "not-found");
}

#[test]
fn any_first_batch_creates_the_root_first() {
    let app = Obj::new(Counter { count: 0 });
    let mut s = session(Mode::Connected, app.root());
    let m = messages(s.apply_json(&[create(2, 1, "count", "r"), watch(2)], false, true, false));
    assert_eq!(m.len(), 2);
    assert_eq!(m[0]["data"]["id"], 1);
    assert_eq!(m[1], json!({"type":"update","data":{"varId":2,"value":0}}));
}

#[test]
fn todo_paths_identity_and_no_echo() {
    let app = todo();
    let mut s = session(Mode::Connected, app.root());
    s.apply_json(&[watch(1)], false, true, false);
    let m = messages(s.apply_json(
        &[
            create(2, 1, "items", "r"),
            watch(2),
            create(3, 1, "items.0.text", "r"),
            watch(3),
            create(4, 1, "items.0..", "r"),
            watch(4),
            create(5, 1, "remaining()", "r"),
            watch(5),
            create(6, 1, "newText", "rw"),
            watch(6),
        ],
        false,
        false,
        false,
    ));
    assert_eq!(m.len(), 5, "{m:#?}");
    let items = m[0]["data"]["value"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert_ne!(items[0], items[1]);
    assert_eq!(m[1]["data"]["value"], "milk");
    assert_eq!(m[2]["data"]["value"], json!(items));
    assert_eq!(m[3]["data"]["value"], 1);
    assert_eq!(m[4], json!({"type":"update","data":{"varId":6,"value":""}}));
    // A written value is not echoed.
    assert!(messages(s.apply_json(&[update(6, json!("bread"))], true, false, false)).is_empty());
    assert_eq!(app.borrow().new_text, "bread");
    // add(): items and newText change; old items keep their ids.
    let m =
        messages(s.apply_json(&[create(7, 1, "add()", "action"), watch(7), update(7, Json::Null)], true, false, false));
    assert_eq!(m.len(), 4, "{m:#?}");
    let by_id = |id: i64| m.iter().find(|x| x["data"]["varId"] == id).cloned().unwrap();
    let new_items = by_id(2)["data"]["value"].as_array().unwrap().clone();
    assert_eq!(&new_items[..2], &items[..]);
    assert_eq!(new_items.len(), 3);
    assert_eq!(by_id(5)["data"]["value"], 2);
    assert_eq!(by_id(6)["data"]["value"], "");
    // A write through an object reference: done of item 1 (eggs), then clearDone().
    let m = messages(s.apply_json(
        &[create(8, 1, "items.1.done", "rw"), watch(8), create(9, 1, "clearDone()", "action"), update(9, Json::Null)],
        false,
        false,
        false,
    ));
    assert!(m.iter().any(|x| x["data"]["varId"] == 8 && x["data"]["value"] == false), "{m:#?}");
    assert_eq!(app.borrow().items.len(), 2);
}

#[test]
fn path_failure_leaves_other_variables_alone() {
    let app = todo();
    let mut s = session(Mode::Connected, app.root());
    s.apply_json(&[watch(1)], false, true, false);
    let m = messages(s.apply_json(
        &[create(2, 1, "newText.length", "r"), watch(2), create(3, 1, "remaining()", "r"), watch(3)],
        false,
        false,
        false,
    ));
    assert_eq!(m.len(), 2, "{m:#?}");
    assert_eq!(m[0]["type"], "error");
    assert_eq!(m[0]["data"]["varId"], 2);
    assert_eq!(m[0]["data"]["code"], ErrorCode::PathFailure.as_str());
    assert_eq!(m[1]["data"]["value"], 1);
    // Writing a string to a boolean field.
    let m = messages(s.apply_json(&[create(4, 1, "items.0.done", "rw"), update(4, json!("yes"))], false, false, false));
    assert_eq!(m[0]["data"]["code"], "path-failure");
}

#[test]
fn replay_keeps_listed_variables_only() {
    let app = todo();
    let mut s = session(Mode::Connected, app.root());
    s.apply_json(&[watch(1)], false, true, false);
    s.apply_json(
        &[create(2, 1, "newText", "rw"), watch(2), create(3, 1, "remaining()", "r"), watch(3)],
        false,
        false,
        false,
    );
    // Replay: watch 1, only variable 3 survives.
    let m = messages(s.apply_json(&[watch(1), create(3, 1, "remaining()", "r"), watch(3)], false, false, true));
    assert_eq!(m.len(), 2, "{m:#?}");
    assert_eq!(m[0], json!({"type":"update","data":{"varId":1,"value":{"obj":1},"properties":{"type":"TodoApp"}}}));
    assert_eq!(m[1], json!({"type":"update","data":{"varId":3,"value":1}}));
    let m = messages(s.apply_json(&[update(2, json!("x"))], false, false, false));
    assert_eq!(m[0]["data"]["code"], "not-found");
}

#[test]
fn browser_properties_are_not_echoed() {
    let app = todo();
    let mut s = session(Mode::Connected, app.root());
    s.apply_json(&[watch(1)], false, true, false);
    let c = json!({"type":"create","data":{"id":2,"parentId":1,"properties":{"path":"items.0","access":"r","namespace":"list-item","elementId":"ui-3"},"nowatch":true}});
    let m = messages(s.apply_json(&[c, watch(2)], false, false, false));
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["data"]["properties"], json!({"type":"TodoItem"}));
    let p = json!({"type":"update","data":{"varId":2,"properties":{"namespace":"x"}}});
    assert!(messages(s.apply_json(&[p], false, false, false)).is_empty());
}

#[test]
fn hybrid_root_only_on_watch_and_client_variables() {
    let mut s = session(Mode::Hybrid, Obj::new(Counter { count: 0 }).root());
    assert!(s.apply_json(&[], false, true, false).is_none());
    let m = messages(s.apply_json(&[watch(1)], false, false, false));
    assert_eq!(m[0]["type"], "create");
    assert_eq!(m[0]["data"]["id"], 1);

    let mut s = session(Mode::Hybrid, None);
    let price = s.client_var(VarId::APP, "price", Access::Rw, false);
    let note = s.client_var(VarId::APP, "note", Access::R, true);
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let seen2 = seen.clone();
    s.on_value(note, move |v, _| seen2.borrow_mut().push(v.clone()));
    s.write(price, 101.5);
    let m = messages(s.apply_json(&[], false, true, false));
    assert_eq!(
        m,
        vec![
            json!({"type":"create","data":{"id":-1,"parentId":1,"properties":{"path":"price","access":"rw"},"nowatch":true}}),
            json!({"type":"create","data":{"id":-2,"parentId":1,"properties":{"path":"note","access":"r"}}}),
            json!({"type":"update","data":{"varId":-1,"value":101.5}}),
        ]
    );
    assert!(s.apply_json(&[update(-2, json!("buy"))], false, false, false).is_none());
    assert_eq!(*seen.borrow(), vec![json!("buy")]);
    assert_eq!(s.client_value(note), Some(&json!("buy")));
    // After a reconnect the client variables are re-created, with the last written value.
    let m = messages(s.apply_json(&[], false, false, true));
    assert_eq!(m.len(), 3);
    assert_eq!(m[1], json!({"type":"update","data":{"varId":-1,"value":101.5}}));
}

#[test]
fn handle_closures_change_state() {
    let app = Obj::new(Counter { count: 0 });
    let mut s = session(Mode::Connected, app.root());
    s.apply_json(&[watch(1), create(2, 1, "count", "r"), watch(2)], false, true, false);
    let mut any_app = app.clone();
    let job: session::Job = Box::new(|a, _| a.downcast_mut::<Obj<Counter>>().unwrap().borrow_mut().count = 5);
    let m = messages(s.run_json(&mut any_app, job));
    assert_eq!(m, vec![json!({"type":"update","data":{"varId":2,"value":5}})]);
}

/// URL paths (PROTOCOL.md B9.2): variable 1 says `urlPaths=on`; the page variable `uiUrl..` with
/// `wrapper=lua.UrlPage` shows the presenter of its `urlPath`; writing `path` switches presenter;
/// `navigate` moves `path`; an unknown path shows the root.
#[test]
fn url_paths_deep_link_write_navigate_and_unknown() {
    let app = Obj::new(Counter { count: 0 });
    let mut s = session(Mode::Connected, app.root());
    s.register_url_path("about/", Obj::new(TodoItem { text: "about".into(), done: false }));
    assert!(s.has_url_path("/about") && !s.has_url_path("/"));
    let m = messages(s.apply_json(&[watch(1)], false, true, false));
    assert_eq!(m[0]["data"]["properties"]["urlPaths"], "on", "{m:#?}");
    let page = json!({"type":"create","data":{"id":2,"parentId":1,"properties":{
        "path":"uiUrl..","access":"r","wrapper":"lua.UrlPage","urlPath":"/about/"}}});
    let m = messages(s.apply_json(
        &[page, create(3, 2, "presenter", "r"), watch(3), create(4, 2, "path", "rw"), watch(4)],
        false,
        false,
        false,
    ));
    let find = |m: &[Json], id: i64| m.iter().find(|x| x["data"]["varId"] == id).cloned().unwrap_or_default();
    assert_eq!(find(&m, 2)["data"]["properties"]["type"], "lua.UrlPage", "{m:#?}");
    assert_eq!(find(&m, 3)["data"]["properties"]["type"], "TodoItem", "{m:#?}");
    assert_eq!(find(&m, 4)["data"]["value"], "/about");
    // Back: the page writes `/`, which shows the root.
    let m = messages(s.apply_json(&[update(4, json!("/"))], true, false, false));
    assert_eq!(find(&m, 3)["data"]["properties"]["type"], "Counter", "{m:#?}");
    // The backend navigates: `path` moves and the presenter follows.
    let mut any_app: Box<dyn std::any::Any> = Box::new(app.clone());
    let job: session::Job = Box::new(|_, s| s.navigate("about"));
    let m = messages(s.run_json(&mut *any_app, job));
    assert_eq!(find(&m, 4)["data"]["value"], "/about", "{m:#?}");
    assert_eq!(find(&m, 3)["data"]["properties"]["type"], "TodoItem", "{m:#?}");
    // An unknown path shows the default view (the root, as `/` is not registered).
    let m = messages(s.apply_json(&[update(4, json!("nope/"))], true, false, false));
    assert_eq!(find(&m, 3)["data"]["properties"]["type"], "Counter", "{m:#?}");
    assert_eq!(find(&m, 4)["data"]["value"], "/nope");
    // Registering `/` makes it the default for unknown paths too.
    let job: session::Job =
        Box::new(|_, s| s.register_url_path("/", Obj::new(TodoApp { items: vec![], new_text: String::new() })));
    let m = messages(s.run_json(&mut *any_app, job));
    assert_eq!(find(&m, 3)["data"]["properties"]["type"], "TodoApp", "{m:#?}");
}
