//! Tracker tests over [`JsonResolver`]: the rules of docs/variables.md that do not need Lua (paths,
//! access, values, change detection, wrappers), plus lifecycle, emission and re-entrancy.

use std::cell::Cell;
use std::rc::Rc;

use serde_json::{json, Value as Json};

use super::value::{JSON_BUILDS, SNAP_BUILDS};
use super::*;
use crate::protocol::Priority;

const APP: VarId = VarId::APP;

fn v(id: i64) -> VarId {
    VarId(id)
}

fn p(name: &str, value: &str) -> PropertyWrite {
    PropertyWrite { name: name.to_string(), value: value.to_string(), priority: None }
}

fn pp(name: &str, value: &str, priority: Priority) -> PropertyWrite {
    PropertyWrite { name: name.to_string(), value: value.to_string(), priority: Some(priority) }
}

fn path(s: &str) -> Vec<PropertyWrite> {
    vec![p("path", s)]
}

fn access(s: &str, a: &str) -> Vec<PropertyWrite> {
    vec![p("path", s), p("access", a)]
}

fn s(x: &str) -> JValue {
    JValue::str(x)
}

fn i(x: i64) -> JValue {
    JValue::Int(x)
}

fn tracker(app: JValue) -> Tracker<JsonResolver> {
    let mut t = Tracker::new(JsonResolver::new());
    t.create_root(APP, app, &[]).unwrap();
    t
}

fn make(t: &mut Tracker<JsonResolver>, id: i64, parent: VarId, props: &[PropertyWrite]) {
    t.create(v(id), parent, props, Writer::Browser).unwrap_or_else(|e| panic!("create {id}: {e}"));
}

fn value(t: &Tracker<JsonResolver>, id: i64) -> Json {
    t.shared().value_json(v(id)).unwrap_or_else(|| panic!("variable {id} has no value"))
}

fn error_code(t: &Tracker<JsonResolver>, id: i64) -> Option<ErrorCode> {
    t.shared().error(v(id)).map(|e| e.code)
}

/// What a receiver watching everything gets from a pass.
fn out(c: &Changes, receiver: Option<Origin>) -> Json {
    serde_json::to_value(c.messages_for(receiver, |_| true)).unwrap()
}

fn detect(t: &mut Tracker<JsonResolver>) -> Json {
    out(&t.detect_changes(), None)
}

fn lua_error(msg: &str) -> VarError {
    VarError::new(ErrorCode::LuaError, msg)
}

// ----- the session's existing uses -----

#[test]
fn app_variable_full_state_has_object_value_and_type() {
    let t = tracker(JValue::typed("Adder", [("a", i(1))]));
    let state = serde_json::to_value(t.full_state(APP)).unwrap();
    assert_eq!(state, json!([{"type":"update","data":{"varId":1,"value":{"obj":1},"properties":{"type":"Adder"}}}]));
    assert_eq!(t.registry_len(), 1);
}

#[test]
fn scalar_root_has_no_type_and_replacing_releases_objects() {
    let mut t = tracker(JValue::typed("Adder", []));
    assert_eq!(t.registry_len(), 1);
    t.create_root(APP, i(7), &[]).unwrap();
    assert_eq!(t.registry_len(), 0);
    let state = serde_json::to_value(t.full_state(APP)).unwrap();
    assert_eq!(state, json!([{"type":"update","data":{"varId":1,"value":7}}]));
    // The replacement (value and cleared type) is reported at the next pass.
    assert_eq!(detect(&mut t), json!([{"type":"update","data":{"varId":1,"value":7,"properties":{"type":""}}}]));
}

#[test]
fn unknown_variable_is_not_found() {
    let t = Tracker::new(JsonResolver::new());
    let state = serde_json::to_value(t.full_state(v(9))).unwrap();
    assert_eq!(state[0]["data"]["code"], "not-found");
}

// ----- Paths and access -----

#[test]
fn index_segments_read_sequence_elements() {
    let items = JValue::seq([JValue::object([("name", s("first"))]), JValue::object([("name", s("second"))])]);
    let mut t = tracker(JValue::object([("items", items)]));
    make(&mut t, 2, APP, &path("items.0.name"));
    make(&mut t, 3, APP, &path("items.1.name"));
    make(&mut t, 4, APP, &path("items.2.name"));
    assert_eq!(value(&t, 2), json!("first"));
    assert_eq!(value(&t, 3), json!("second"));
    assert_eq!(value(&t, 4), json!(null));
    assert_eq!(error_code(&t, 4), None);
}

#[test]
fn prototype_defaults_and_methods_get_the_instance() {
    let full_name = JValue::func(|this, _| {
        Ok(format!("{} {}", this.get("first").as_str().unwrap_or("?"), this.get("last").as_str().unwrap_or("?")).into())
    });
    let proto = JValue::typed("Person", [("first", s("Jane")), ("last", s("Doe")), ("fullName", full_name)]);
    let mut t = tracker(JValue::object([("p", JValue::instance(&proto, [("first", s("Ann"))]))]));
    make(&mut t, 2, APP, &path("p.last"));
    make(&mut t, 3, APP, &path("p.fullName()"));
    make(&mut t, 4, APP, &path("p"));
    assert_eq!(value(&t, 2), json!("Doe"));
    assert_eq!(value(&t, 3), json!("Ann Doe"));
    assert_eq!(t.property(v(4), "type").as_deref(), Some("Person"));
}

#[test]
fn nil_before_a_segment_is_null_and_scalars_cannot_be_indexed() {
    let mut t = tracker(JValue::object([("a", JValue::object([])), ("n", i(5))]));
    make(&mut t, 2, APP, &path("a.b.c"));
    assert_eq!(value(&t, 2), json!(null));
    assert_eq!(error_code(&t, 2), None);
    // A read error at the first computation does not undo the create.
    make(&mut t, 3, APP, &path("n.x"));
    assert!(t.exists(v(3)));
    assert_eq!(error_code(&t, 3), Some(ErrorCode::PathFailure));
    let state = serde_json::to_value(t.full_state(v(3))).unwrap();
    assert_eq!(state[0], json!({"type":"update","data":{"varId":3,"properties":{"path":"n.x"}}}));
    assert_eq!(state[1]["type"], "error");
    assert_eq!(state[1]["data"]["code"], "path-failure");
}

#[test]
fn up_segments_step_back_and_climb_variables() {
    let list = JValue::seq([JValue::object([("item", JValue::object([("name", s("x"))])), ("index", i(5))])]);
    let app = JValue::object([
        ("index", i(1)),
        ("item", JValue::object([("index", i(2)), ("name", s("inner"))])),
        ("list", list),
    ]);
    let mut t = tracker(app);
    make(&mut t, 2, APP, &path("item"));
    make(&mut t, 3, v(2), &path("..index"));
    make(&mut t, 4, v(2), &path("...index"));
    make(&mut t, 5, APP, &path("item..index"));
    make(&mut t, 6, v(2), &path("index"));
    make(&mut t, 7, APP, &path("..x"));
    assert_eq!(value(&t, 3), json!(1), "`..` at the start climbs to the parent's start value");
    assert_eq!(value(&t, 4), json!(1));
    assert_eq!(value(&t, 5), json!(1), "`..` inside a path steps back");
    assert_eq!(value(&t, 6), json!(2));
    assert_eq!(error_code(&t, 7), Some(ErrorCode::PathFailure), "above a root");
    // The spec's example: A (`0`) → B (`item`) → C (`...index`) reads A's `index`.
    make(&mut t, 8, APP, &path("list.0"));
    make(&mut t, 9, v(8), &path("item"));
    make(&mut t, 10, v(9), &path("...index"));
    make(&mut t, 11, v(9), &path("....index"));
    assert_eq!(value(&t, 10), json!(5));
    assert_eq!(value(&t, 11), json!(1), "two climbs reach the app");
}

#[test]
fn names_bad_calls_and_queries() {
    let mut t = tracker(JValue::object([("01", s("z")), ("x", JValue::object([]))]));
    make(&mut t, 2, APP, &path("01"));
    assert_eq!(value(&t, 2), json!("z"));
    let e = t.create(v(3), APP, &path("delete(c)"), Writer::Browser).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadMessage);
    assert!(!t.exists(v(3)));
    make(&mut t, 4, APP, &path("x?wrapper=W&flag"));
    assert_eq!(t.property(v(4), "path").as_deref(), Some("x"));
    assert_eq!(t.property(v(4), "wrapper").as_deref(), Some("W"));
    assert_eq!(t.property(v(4), "flag").as_deref(), Some("true"));
    // W is unknown: `not-found` on the variable, which exists.
    assert_eq!(error_code(&t, 4), Some(ErrorCode::NotFound));
}

#[test]
fn create_refusals_leave_no_variable() {
    let m = JValue::func(|_, _| Ok(JValue::object([("x", i(1))])));
    let save = JValue::func(|_, _| Ok(JValue::Nil));
    let mut t = tracker(JValue::object([("m", m), ("save", save), ("a", i(1))]));
    let refused = [
        (2, "save(_)", "r", ErrorCode::AccessDenied),
        (3, "save(_)", "rw", ErrorCode::AccessDenied),
        (4, "save(_)", "", ErrorCode::AccessDenied),
        (5, "m()", "w", ErrorCode::AccessDenied),
        (6, "save(_).x", "w", ErrorCode::BadMessage),
        (7, "a", "bogus", ErrorCode::BadMessage),
        (8, "", "r", ErrorCode::BadMessage),
        (9, "a.(x)", "r", ErrorCode::BadMessage),
    ];
    for (id, text, a, code) in refused {
        let e = t.create(v(id), APP, &access(text, a), Writer::Browser).unwrap_err();
        assert_eq!(e.code, code, "{text} with {a:?}");
        assert!(!t.exists(v(id)), "{text}");
    }
    for (id, text, a) in [(10, "save(_)", "action"), (11, "save(_)", "w"), (12, "m().x", "r"), (13, "m()", "action")] {
        make(&mut t, id, APP, &access(text, a));
    }
    assert_eq!(value(&t, 12), json!(1));
    assert_eq!(t.len(), 5);
}

#[test]
fn writes_to_read_only_variables_and_roots_are_denied() {
    let app = JValue::object([("a", s("keep"))]);
    let mut t = tracker(app.clone());
    make(&mut t, 2, APP, &access("a", "r"));
    assert_eq!(t.write(v(2), &json!("x"), Some(1)).unwrap_err().code, ErrorCode::AccessDenied);
    assert_eq!(app.get("a").as_str(), Some("keep"));
    assert_eq!(value(&t, 2), json!("keep"));
    assert_eq!(t.write(APP, &json!(1), Some(1)).unwrap_err().code, ErrorCode::AccessDenied);
    assert_eq!(t.write(v(9), &json!(1), Some(1)).unwrap_err().code, ErrorCode::NotFound);
}

#[test]
fn call_semantics_per_access_mode() {
    let log = Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let val = JValue::func(move |this, arg| match arg {
        None => Ok(this.get("stored")),
        Some(x) => {
            l1.borrow_mut().push(format!("val {x:?}"));
            this.set("stored", x);
            Ok(s("ignored return"))
        }
    });
    let act = JValue::func(move |_, arg| {
        l2.borrow_mut().push(format!("act {arg:?}"));
        Ok(JValue::Nil)
    });
    let save = JValue::func(move |_, arg| {
        l3.borrow_mut().push(format!("save {arg:?}"));
        Ok(JValue::Nil)
    });
    let mut t = tracker(JValue::object([("val", val), ("act", act), ("save", save), ("stored", s("s0"))]));
    make(&mut t, 2, APP, &path("val()"));
    make(&mut t, 3, APP, &access("act()", "action"));
    make(&mut t, 4, APP, &access("save(_)", "w"));
    make(&mut t, 5, APP, &access("save(_)", "action"));
    assert_eq!(value(&t, 2), json!("s0"));
    assert!(log.borrow().is_empty(), "m(_) is never called on reads, actions are not read");
    t.write(v(2), &json!("x"), Some(1)).unwrap();
    t.write(v(3), &json!("ignored"), Some(1)).unwrap();
    t.write(v(4), &json!(7), Some(1)).unwrap();
    t.write(v(5), &json!(null), Some(1)).unwrap();
    assert_eq!(*log.borrow(), vec![r#"val "x""#, "act None", "save Some(7)", "save Some(nil)"]);
    assert_eq!(value(&t, 2), json!("x"), "an rw write becomes the cache");
    assert_eq!(t.shared().value_json(v(3)), None, "actions have no value");
}

#[test]
fn unknown_parent_and_duplicate_ids() {
    let mut t = tracker(JValue::object([("a", i(1))]));
    assert_eq!(t.create(v(2), v(99), &path("a"), Writer::Browser).unwrap_err().code, ErrorCode::NotFound);
    assert!(!t.exists(v(2)));
    make(&mut t, 2, APP, &path("a"));
    assert_eq!(t.create(v(2), APP, &path("a"), Writer::Browser).unwrap_err().code, ErrorCode::IdInUse);
    assert_eq!(t.create_root(v(2), i(1), &[]).unwrap_err().code, ErrorCode::IdInUse);
    assert_eq!(t.len(), 2);
}

#[test]
fn browsers_cannot_set_creator_properties_but_the_rest_applies() {
    let mut t = tracker(JValue::object([("a", i(1))]));
    make(&mut t, 2, APP, &path("a"));
    let props = [
        p("path", "b"),
        p("access", "r"),
        p("create", "T"),
        p("lua", "x"),
        p("wrapper", "W"),
        p("elementId", "e1"),
        p("type", "X"),
        p("viewdefs", "{}"),
    ];
    let errors = t.update(v(2), &props, None, Writer::Browser, Some(1));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code, ErrorCode::AccessDenied);
    for name in ["path", "access", "create", "lua", "wrapper"] {
        assert!(errors[0].description.contains(name), "{name} listed");
    }
    assert_eq!(t.property(v(2), "elementId").as_deref(), Some("e1"));
    assert_eq!(t.property(v(2), "path").as_deref(), Some("a"));
    assert_eq!(t.property(v(2), "type"), None, "type from browsers is ignored");
    assert_eq!(t.property(v(2), "viewdefs"), None);
    assert_eq!(t.property(v(2), "wrapper"), None);
    // Lua may set `wrapper` but not `path`.
    let e = t.set_properties(v(2), &[p("path", "b"), p("wrapper", "")], Writer::Lua, None).unwrap_err();
    assert_eq!(e.code, ErrorCode::AccessDenied);
    // `lua` at create from a browser: denied, the create still happens.
    let created = t.create(v(3), APP, &[p("path", "a"), p("lua", "os.exit()")], Writer::Browser).unwrap();
    assert_eq!(created.denied.map(|e| e.code), Some(ErrorCode::AccessDenied));
    assert!(t.exists(v(3)));
    assert_eq!(t.property(v(3), "lua"), None);
    // Unknown variable: one not-found, nothing else.
    let errors = t.update(v(9), &[p("a", "b")], Some(&json!(1)), Writer::Browser, Some(1));
    assert_eq!(errors.iter().map(|e| e.code).collect::<Vec<_>>(), vec![ErrorCode::NotFound]);
}

// ----- Values and registry -----

#[test]
fn empty_sequences_are_arrays_and_objects_are_ids() {
    let mut t = tracker(JValue::object([("e", JValue::seq([])), ("o", JValue::object([]))]));
    make(&mut t, 2, APP, &path("e"));
    make(&mut t, 3, APP, &path("o"));
    assert_eq!(value(&t, 2), json!([]));
    assert_eq!(value(&t, 3), json!({"obj": 2}));
}

#[test]
fn nested_arrays_and_number_normalisation() {
    let arr = JValue::seq([i(1), i(2), JValue::seq([i(3), i(4)])]);
    let app = JValue::object([
        ("arr", arr),
        ("five", JValue::Float(10.0 / 2.0)),
        ("nan", JValue::Float(f64::NAN)),
        ("half", JValue::Float(0.5)),
    ]);
    let mut t = tracker(app);
    for (id, field) in [(2, "arr"), (3, "five"), (4, "nan"), (5, "half")] {
        make(&mut t, id, APP, &path(field));
    }
    assert_eq!(value(&t, 2), json!([1, 2, [3, 4]]));
    assert_eq!(value(&t, 3), json!(5));
    assert_eq!(value(&t, 4), json!(null));
    assert_eq!(value(&t, 5), json!(0.5));
    // Deeper than 32 is a read error.
    let mut deep = i(1);
    for _ in 0..33 {
        deep = JValue::seq([deep]);
    }
    let mut t = tracker(JValue::object([("deep", deep)]));
    make(&mut t, 2, APP, &path("deep"));
    assert_eq!(error_code(&t, 2), Some(ErrorCode::LimitExceeded));
}

#[test]
fn one_object_in_two_variables_has_one_id() {
    let x = JValue::object([]);
    let mut t = tracker(JValue::object([("a", x.clone()), ("b", x.clone())]));
    make(&mut t, 2, APP, &path("a"));
    make(&mut t, 3, APP, &path("b"));
    assert_eq!(value(&t, 2), json!({"obj": 2}));
    assert_eq!(value(&t, 3), json!({"obj": 2}));
    assert_eq!(t.registry_len(), 2);
    assert_eq!(t.destroy(v(2)), vec![v(2)]);
    assert_eq!(value(&t, 3), json!({"obj": 2}));
    assert!(t.shared().lookup_object(ObjId(2)).unwrap().ptr_eq(&x));
    t.destroy(v(3));
    assert_eq!(t.registry_len(), 1, "released with the last snapshot");
    make(&mut t, 4, APP, &path("a"));
    assert_eq!(value(&t, 4), json!({"obj": 3}), "after release the same object gets a new id");
}

#[test]
fn create_destroy_cycles_do_not_grow_the_registry() {
    let fresh = JValue::func(|_, _| Ok(JValue::seq([JValue::object([]), JValue::object([])])));
    let mut t = tracker(JValue::object([("fresh", fresh)]));
    for n in 0..10_000 {
        make(&mut t, 2, APP, &path("fresh()"));
        make(&mut t, 3, v(2), &path("0"));
        if n % 100 == 0 {
            assert!(!t.detect_changes().is_empty());
        }
        assert_eq!(t.destroy(v(2)), vec![v(3), v(2)]);
    }
    assert_eq!(t.registry_len(), 1, "only the app object stays registered");
    assert_eq!(t.len(), 1);
    let st = t.shared();
    let st = st.lock();
    assert!(st.vars[&APP].children.entries().len() <= 20, "dead children are compacted");
    assert!(st.dirty.len() <= 100);
}

#[test]
fn writing_an_object_reference_stores_the_object_itself() {
    let x = JValue::object([]);
    let app = JValue::object([("a", x.clone())]);
    let mut t = tracker(app.clone());
    make(&mut t, 2, APP, &path("a"));
    make(&mut t, 3, APP, &path("target"));
    let Json::Object(id) = value(&t, 2) else { panic!() };
    t.write(v(3), &json!({"obj": id["obj"]}), Some(1)).unwrap();
    assert!(app.get("target").ptr_eq(&x));
    assert_eq!(value(&t, 3), value(&t, 2));
    t.write(v(3), &json!([{"obj": id["obj"]}, {"k": 1}]), Some(1)).unwrap();
    assert!(app.get("target").elem(0).ptr_eq(&x));
    assert_eq!(app.get("target").elem(1).get("k").as_int(), Some(1));
    assert_eq!(t.write(v(3), &json!({"obj": 999}), Some(1)).unwrap_err().code, ErrorCode::NotFound);
    let mut deep = json!(1);
    for _ in 0..33 {
        deep = json!([deep]);
    }
    assert_eq!(t.write(v(3), &deep, Some(1)).unwrap_err().code, ErrorCode::LimitExceeded);
}

#[test]
fn type_is_derived_cleared_and_pinned() {
    let app = JValue::object([("v", JValue::typed("Adder", [])), ("w", s("text"))]);
    let mut t = tracker(app.clone());
    make(&mut t, 2, APP, &path("v"));
    assert_eq!(t.property(v(2), "type").as_deref(), Some("Adder"));
    t.detect_changes();
    app.set("v", s("str"));
    assert_eq!(detect(&mut t), json!([{"type":"update","data":{"varId":2,"value":"str","properties":{"type":""}}}]));
    assert_eq!(t.property(v(2), "type"), None);
    // Pinned at create by Lua: applies whenever nothing is derived.
    t.create(v(-3), APP, &[p("path", "w"), p("type", "Pinned")], Writer::Lua).unwrap();
    assert_eq!(t.property(v(-3), "type").as_deref(), Some("Pinned"));
    t.detect_changes();
    app.set("w", JValue::typed("Other", []));
    let changes = detect(&mut t);
    assert_eq!(changes[0]["data"]["properties"], json!({"type": "Other"}));
    app.set("w", s("again"));
    let changes = detect(&mut t);
    assert_eq!(changes[0]["data"]["properties"], json!({"type": "Pinned"}));
    // A browser's `type` at create is ignored.
    make(&mut t, 4, APP, &[p("path", "w"), p("type", "Fake")]);
    assert_eq!(t.property(v(4), "type"), None);
}

// ----- Detection -----

fn counters() -> (usize, usize) {
    (JSON_BUILDS.with(|c| c.get()), SNAP_BUILDS.with(|c| c.get()))
}

#[test]
fn a_pass_without_mutation_emits_nothing_and_builds_nothing() {
    let app = JValue::object([
        ("s", s("text")),
        ("n", i(1)),
        ("arr", JValue::seq([s("a"), JValue::seq([i(1)]), JValue::object([])])),
        ("o", JValue::object([("x", JValue::Float(1.5))])),
    ]);
    let mut t = tracker(app);
    for (id, field) in [(2, "s"), (3, "n"), (4, "arr"), (5, "o"), (6, "o.x"), (7, "missing")] {
        make(&mut t, id, APP, &path(field));
    }
    assert_eq!(t.detect_changes().len(), 7, "new variables (and the app) are reported once");
    let before = counters();
    for _ in 0..3 {
        assert!(t.detect_changes().is_empty());
    }
    assert_eq!(counters(), before, "no JSON and no snapshot built for unchanged variables");
}

#[test]
fn one_mutation_yields_one_update() {
    let app = JValue::object([("a", i(1)), ("b", i(2)), ("c", i(3))]);
    let mut t = tracker(app.clone());
    for (id, field) in [(2, "a"), (3, "b"), (4, "c")] {
        make(&mut t, id, APP, &path(field));
    }
    t.detect_changes();
    app.set("b", i(20));
    let before = counters();
    let changes = t.detect_changes();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes.items[0].var_id, v(3));
    assert_eq!(out(&changes, None), json!([{"type":"update","data":{"varId":3,"value":20}}]));
    assert_eq!(counters().0 - before.0, 1, "JSON built once, for the changed value");
}

fn ordered_run() -> String {
    let app = JValue::object([("a", JValue::object([("x", i(1))])), ("b", i(1)), ("c", i(1))]);
    let mut t = tracker(app.clone());
    make(&mut t, 2, APP, &[p("path", "a"), p("priority", "low")]);
    make(&mut t, 3, APP, &[p("path", "b"), p("priority", "HIGH")]);
    make(&mut t, 4, v(2), &[p("path", "x"), p("priority", "high")]);
    make(&mut t, 5, APP, &path("c"));
    t.detect_changes();
    app.set("a", JValue::object([("x", i(2))]));
    app.set("b", i(2));
    app.set("c", i(2));
    t.set_properties(v(2), &[pp("elementId", "e", Priority::High)], Writer::Lua, None).unwrap();
    detect(&mut t).to_string()
}

#[test]
fn emission_order_is_by_bucket_then_preorder_and_deterministic() {
    let first = ordered_run();
    let expected = json!([
        {"type":"update","data":{"varId":2,"properties":{"elementId":"e"}}},
        {"type":"update","data":{"varId":4,"value":2}},
        {"type":"update","data":{"varId":3,"value":2}},
        {"type":"update","data":{"varId":5,"value":2}},
        {"type":"update","data":{"varId":2,"value":{"obj":3}}},
    ]);
    assert_eq!(serde_json::from_str::<Json>(&first).unwrap(), expected);
    for _ in 0..100 {
        assert_eq!(ordered_run(), first);
    }
}

/// ViewList's `fallbackNamespace:high` goes before the update carrying `type`.
#[test]
fn a_high_property_precedes_the_type_update() {
    let app = JValue::object([("v", s("s"))]);
    let mut t = tracker(app.clone());
    make(&mut t, 2, APP, &path("v"));
    t.detect_changes();
    app.set("v", JValue::typed("T", []));
    t.set_properties(v(2), &[pp("fallbackNamespace", "list-item", Priority::High)], Writer::Lua, None).unwrap();
    let changes = t.detect_changes();
    assert_eq!(changes.items.iter().map(|i| i.bucket).collect::<Vec<_>>(), vec![Priority::High, Priority::Medium]);
    assert_eq!(
        out(&changes, None),
        json!([
            {"type":"update","data":{"varId":2,"properties":{"fallbackNamespace":"list-item"}}},
            {"type":"update","data":{"varId":2,"value":{"obj":2},"properties":{"type":"T"}}},
        ])
    );
}

#[test]
fn writes_are_not_echoed_unless_the_value_read_back_differs() {
    let norm = JValue::func(|this, arg| match arg {
        None => Ok(this.get("stored")),
        Some(x) => {
            this.set("stored", x.as_str().map(|s| s.to_uppercase().into()).unwrap_or(x));
            Ok(JValue::Nil)
        }
    });
    let app = JValue::object([("a", s("x")), ("norm", norm)]);
    let mut t = tracker(app.clone());
    make(&mut t, 2, APP, &path("a"));
    make(&mut t, 3, APP, &path("norm()"));
    t.detect_changes();
    t.write(v(2), &json!("y"), Some(1)).unwrap();
    assert_eq!(app.get("a").as_str(), Some("y"));
    let changes = t.detect_changes();
    assert_eq!(out(&changes, Some(1)), json!([]), "A wrote it");
    assert_eq!(out(&changes, Some(2)), json!([{"type":"update","data":{"varId":2,"value":"y"}}]));
    // A normalising setter: the value read back differs, so the writer gets it too.
    t.write(v(3), &json!("abc"), Some(1)).unwrap();
    let changes = t.detect_changes();
    assert_eq!(out(&changes, Some(1)), json!([{"type":"update","data":{"varId":3,"value":"ABC"}}]));
    assert_eq!(out(&changes, Some(2)), out(&changes, Some(1)));
    // A later write in the same batch replaces the earlier one's origin.
    t.write(v(2), &json!("p"), Some(1)).unwrap();
    t.write(v(2), &json!("q"), Some(2)).unwrap();
    let changes = t.detect_changes();
    assert_eq!(out(&changes, Some(1)), json!([{"type":"update","data":{"varId":2,"value":"q"}}]));
    assert_eq!(out(&changes, Some(2)), json!([]));
    // Writing the current value again is no change.
    t.write(v(2), &json!("q"), Some(1)).unwrap();
    assert!(t.detect_changes().is_empty());
    // Property writes are not echoed either.
    t.set_properties(v(2), &[p("elementId", "e")], Writer::Browser, Some(1)).unwrap();
    let changes = t.detect_changes();
    assert_eq!(out(&changes, Some(1)), json!([]));
    assert_eq!(out(&changes, Some(2)), json!([{"type":"update","data":{"varId":2,"properties":{"elementId":"e"}}}]));
}

#[test]
fn a_failing_getter_reports_once_and_recovery_resends() {
    let mode = Rc::new(Cell::new(0u8));
    let m = mode.clone();
    let get = JValue::func(move |this, _| match m.get() {
        0 => Ok(this.get("child")),
        1 => Err(lua_error("boom")),
        _ => Err(lua_error("bang")),
    });
    let child = JValue::object([("name", s("n1"))]);
    let mut t = tracker(JValue::object([("child", child.clone()), ("get", get), ("other", i(1))]));
    make(&mut t, 2, APP, &path("get()"));
    make(&mut t, 3, v(2), &path("name"));
    make(&mut t, 4, APP, &path("other"));
    t.detect_changes();
    mode.set(1);
    let err = json!([{"type":"error","data":{"varId":2,"code":"lua-error","description":"boom"}}]);
    assert_eq!(detect(&mut t), err);
    assert_eq!(detect(&mut t), json!([]), "not resent");
    child.set("name", s("n2"));
    assert_eq!(detect(&mut t), json!([]), "children keep their caches");
    assert_eq!(value(&t, 3), json!("n1"));
    mode.set(2);
    assert_eq!(detect(&mut t)[0]["data"]["description"], "bang", "a different error is reported");
    mode.set(0);
    assert_eq!(
        detect(&mut t),
        json!([
            {"type":"update","data":{"varId":2,"value":{"obj":2}}},
            {"type":"update","data":{"varId":3,"value":"n2"}},
        ]),
        "recovery sends the unchanged value, then the children catch up"
    );
    assert_eq!(error_code(&t, 2), None);
}

#[test]
fn unwatched_subtrees_cost_nothing_and_rewatch_gets_the_full_value() {
    let res = JsonResolver::new();
    let sub = JValue::object([("x", i(1)), ("y", i(2))]);
    let mut t = Tracker::new(res.clone());
    t.create_root(APP, JValue::object([("sub", sub.clone())]), &[]).unwrap();
    t.detect_changes();
    let c0 = res.calls();
    t.detect_changes();
    let root_only = res.calls() - c0;
    make(&mut t, 2, APP, &path("sub"));
    make(&mut t, 3, v(2), &path("x"));
    make(&mut t, 4, v(2), &path("y"));
    t.detect_changes();
    let c1 = res.calls();
    t.detect_changes();
    assert!(res.calls() - c1 > root_only);
    t.set_active(v(2), false);
    sub.set("x", JValue::Nil);
    let c2 = res.calls();
    assert!(t.detect_changes().is_empty());
    assert_eq!(res.calls() - c2, root_only, "the unwatched subtree made no resolver call");
    t.set_active(v(2), true);
    assert_eq!(detect(&mut t), json!([{"type":"update","data":{"varId":3,"value":null}}]));
    let state = serde_json::to_value(t.full_state(v(3))).unwrap();
    assert_eq!(state, json!([{"type":"update","data":{"varId":3,"value":null,"properties":{"path":"x"}}}]));
}

#[test]
fn inactive_subtrees_drop_writes_silently() {
    let sub = JValue::object([("x", i(1))]);
    let app = JValue::object([("sub", sub.clone())]);
    let mut t = tracker(app.clone());
    make(&mut t, 2, APP, &[p("path", "sub"), p("inactive", "true")]);
    make(&mut t, 3, v(2), &path("x"));
    t.write(v(3), &json!(5), Some(1)).unwrap();
    t.write(v(2), &json!(6), Some(1)).unwrap();
    assert_eq!(sub.get("x").as_int(), Some(1));
    assert!(app.get("sub").ptr_eq(&sub));
    t.set_properties(v(2), &[p("inactive", "")], Writer::Browser, Some(1)).unwrap();
    t.write(v(3), &json!(5), Some(1)).unwrap();
    assert_eq!(sub.get("x").as_int(), Some(5));
}

/// Wrappers (docs/variables.md "Wrappers"): children navigate the wrapper, transform wrappers, failures.
#[test]
fn wrappers_run_on_first_computation_and_raw_change() {
    let res = JsonResolver::new();
    let made = Rc::new(Cell::new(0));
    let destroyed = Rc::new(Cell::new(0));
    let wrapper_of = {
        let destroyed = destroyed.clone();
        move |raw: &JValue| {
            let d = destroyed.clone();
            let destroy = JValue::func(move |_, _| {
                d.set(d.get() + 1);
                Ok(JValue::Nil)
            });
            JValue::typed("Wrap", [("label", raw.get("name")), ("destroy", destroy)])
        }
    };
    let (m1, w1) = (made.clone(), wrapper_of.clone());
    res.register_wrapper("Replace", move |req| {
        m1.set(m1.get() + 1);
        Ok(Wrapped::New(w1(req.raw)))
    });
    let (m2, w2) = (made.clone(), wrapper_of);
    res.register_wrapper("Keep", move |req| {
        m2.set(m2.get() + 1);
        Ok(if req.existing.is_some() { Wrapped::Reused } else { Wrapped::New(w2(req.raw)) })
    });
    res.register_wrapper("Upper", |req| {
        Ok(Wrapped::Transform(req.raw.as_str().map(|s| s.to_uppercase().into()).unwrap_or_default()))
    });
    res.register_wrapper("Fail", |_| Err(lua_error("no wrapper today")));
    let app = JValue::object([("item", JValue::object([("name", s("a"))])), ("s", s("abc"))]);
    let mut t = Tracker::new(res.clone());
    t.create_root(APP, app.clone(), &[]).unwrap();

    make(&mut t, 2, APP, &path("item?wrapper=Replace"));
    make(&mut t, 3, v(2), &path("label"));
    assert_eq!(made.get(), 1, "new runs at create");
    assert_eq!(value(&t, 3), json!("a"), "children navigate the wrapper");
    assert_eq!(t.property(v(2), "type").as_deref(), Some("Wrap"));
    let first = value(&t, 2);
    t.detect_changes();
    t.detect_changes();
    assert_eq!(made.get(), 1, "no raw change, no new wrapper");

    app.set("item", JValue::object([("name", s("b"))]));
    let changes = detect(&mut t);
    assert_eq!(made.get(), 2);
    assert_eq!(destroyed.get(), 1, "the replaced wrapper was destroyed");
    assert_ne!(value(&t, 2), first);
    assert_eq!(changes[0]["data"]["value"], value(&t, 2));
    assert_eq!(changes[1], json!({"type":"update","data":{"varId":3,"value":"b"}}));

    make(&mut t, 4, APP, &path("item?wrapper=Keep"));
    let kept = value(&t, 4);
    t.detect_changes();
    app.set("item", JValue::object([("name", s("c"))]));
    let changes = t.detect_changes();
    assert_eq!(made.get(), 5, "both wrappers ran again on the raw change");
    assert_eq!(destroyed.get(), 2, "only Replace's old wrapper was destroyed");
    assert_eq!(value(&t, 4), kept, "a reused wrapper keeps its id");
    assert!(changes.items.iter().all(|i| i.var_id != v(4)));

    make(&mut t, 5, APP, &path("s?wrapper=Upper"));
    assert_eq!(value(&t, 5), json!("ABC"));
    assert_eq!(t.property(v(5), "type").as_deref(), Some("Upper"));
    app.set("s", s("xyz"));
    t.detect_changes();
    assert_eq!(value(&t, 5), json!("XYZ"));

    make(&mut t, 6, APP, &path("item?wrapper=Fail"));
    assert_eq!(error_code(&t, 6), Some(ErrorCode::LuaError));

    // The wrapper property can change (Lua/backend): rewrap at the next pass.
    t.set_properties(v(4), &[p("wrapper", "")], Writer::Lua, None).unwrap();
    let changes = detect(&mut t);
    assert_eq!(destroyed.get(), 3, "dropping the wrapper destroys it");
    let shown = value(&t, 4)["obj"].as_u64().map(ObjId).and_then(|id| t.shared().lookup_object(id)).unwrap();
    assert!(shown.ptr_eq(&app.get("item")), "without a wrapper the raw value is sent");
    assert!(changes
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["data"]["varId"] == 4 && m["data"]["properties"]["type"] == ""));

    t.destroy(v(2));
    assert_eq!(destroyed.get(), 4, "destroying the variable destroys its wrapper");
}

/// Changes of variables the pass does not visit (unwatched subtree) still go out, in tree preorder.
#[test]
fn changes_of_unvisited_variables_keep_preorder() {
    let app = JValue::object([("a", JValue::object([("x", i(1))])), ("b", i(1))]);
    let mut t = tracker(app.clone());
    make(&mut t, 2, APP, &path("a"));
    make(&mut t, 3, v(2), &path("x"));
    make(&mut t, 4, APP, &path("b"));
    t.detect_changes();
    t.set_active(v(2), false);
    t.set_properties(v(3), &[p("elementId", "e3")], Writer::Browser, Some(1)).unwrap();
    app.set("b", i(2));
    t.set_properties(v(2), &[p("elementId", "e2")], Writer::Browser, Some(1)).unwrap();
    assert_eq!(
        detect(&mut t),
        json!([
            {"type":"update","data":{"varId":2,"properties":{"elementId":"e2"}}},
            {"type":"update","data":{"varId":3,"properties":{"elementId":"e3"}}},
            {"type":"update","data":{"varId":4,"value":2}},
        ])
    );
}

/// A change host code records on an already visited variable joins that variable's item.
#[test]
fn late_changes_merge_into_one_item_per_variable_and_bucket() {
    let res = JsonResolver::new();
    let mut t = Tracker::new(res.clone());
    let weak = t.shared().downgrade();
    let n = Rc::new(Cell::new(0));
    let n2 = n.clone();
    let touch = JValue::func(move |_, _| {
        n2.set(n2.get() + 1);
        let shared = weak.upgrade().expect("tracker alive");
        shared.set_properties(VarId(2), &[p("elementId", &format!("z{}", n2.get()))], Writer::Lua, None)?;
        Ok(JValue::Nil)
    });
    let app = JValue::object([("a", i(1)), ("touch", touch)]);
    t.create_root(APP, app.clone(), &[]).unwrap();
    make(&mut t, 2, APP, &path("a"));
    make(&mut t, 3, APP, &access("touch()", "r"));
    t.detect_changes();
    app.set("a", i(5));
    let changes = t.detect_changes();
    let k = n.get();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        out(&changes, None),
        json!([{"type":"update","data":{"varId":2,"value":5,"properties":{"elementId":format!("z{k}")}}}])
    );
}

// ----- Properties, lifecycle, full state -----

#[test]
fn property_priorities_deletion_and_no_op_resets() {
    let app = JValue::object([("a", i(1))]);
    let mut t = tracker(app.clone());
    make(&mut t, 2, APP, &path("a"));
    t.detect_changes();
    let set =
        |t: &mut Tracker<JsonResolver>, w: PropertyWrite| t.set_properties(v(2), &[w], Writer::Lua, None).unwrap();
    set(&mut t, pp("elementId", "e", Priority::High));
    let changes = t.detect_changes();
    assert_eq!(changes.items.len(), 1);
    assert_eq!(changes.items[0].bucket, Priority::High);
    set(&mut t, p("elementId", "e"));
    assert!(t.detect_changes().is_empty(), "same value, priority kept: no change");
    set(&mut t, pp("elementId", "e", Priority::Low));
    let changes = t.detect_changes();
    assert_eq!(changes.items[0].bucket, Priority::Low, "a priority change is a change");
    set(&mut t, p("elementId", ""));
    let changes = t.detect_changes();
    assert_eq!(changes.items[0].bucket, Priority::Low);
    assert_eq!(out(&changes, None), json!([{"type":"update","data":{"varId":2,"properties":{"elementId":""}}}]));
    assert_eq!(t.property(v(2), "elementId"), None);
    set(&mut t, p("elementId", ""));
    assert!(t.detect_changes().is_empty(), "deleting a missing property is no change");
    // The `priority` property moves the value's bucket.
    set(&mut t, p("priority", "high"));
    app.set("a", i(2));
    let changes = t.detect_changes();
    let buckets: Vec<_> = changes.items.iter().map(|i| (i.bucket, i.value.is_some())).collect();
    assert_eq!(buckets, vec![(Priority::High, true), (Priority::Medium, false)]);
}

#[test]
fn destroy_is_post_order_and_cheap() {
    let app = JValue::object([("a", JValue::object([("b", JValue::object([]))]))]);
    let mut t = tracker(app);
    make(&mut t, 2, APP, &path("a"));
    make(&mut t, 3, v(2), &path("b"));
    make(&mut t, 4, v(2), &path("b"));
    make(&mut t, 5, v(3), &path("x"));
    make(&mut t, 6, APP, &path("a"));
    assert_eq!(t.destroy(v(2)), vec![v(5), v(3), v(4), v(2)]);
    assert_eq!(t.destroy(v(2)), vec![]);
    assert_eq!(t.shared().children(APP), vec![v(6)]);
    // Ids can be reused after a destroy without confusing the tree.
    make(&mut t, 2, v(6), &path("b"));
    assert_eq!(t.shared().children(v(6)), vec![v(2)]);
    assert_eq!(t.shared().children(APP), vec![v(6)]);
    // Many siblings destroyed one by one: dead entries are compacted as they go.
    for id in 100..20_100 {
        make(&mut t, id, APP, &path("a"));
    }
    for id in 100..20_100 {
        t.destroy(v(id));
    }
    assert!(t.shared().lock().vars[&APP].children.entries().len() <= 20);
    assert_eq!(t.registry_len(), 3, "app, a, a.b");
}

#[test]
fn deep_trees_need_no_recursion() {
    let depth = 1_000;
    let mut node = JValue::object([("leaf", i(0))]);
    for _ in 0..depth {
        node = JValue::object([("next", node)]);
    }
    let mut t = tracker(JValue::object([("next", node)]));
    let mut parent = APP;
    for id in 2..(depth + 2) {
        make(&mut t, id, parent, &path("next"));
        parent = v(id);
    }
    assert_eq!(t.detect_changes().len(), depth as usize + 1);
    let order = t.destroy(v(2));
    assert_eq!(order.len(), depth as usize);
    assert_eq!(order[0], v(depth + 1));
    assert_eq!(*order.last().unwrap(), v(2));
}

#[test]
fn full_state_per_access_mode() {
    let m = JValue::func(|_, _| Ok(JValue::Nil));
    let mut t = tracker(JValue::object([("a", s("x")), ("m", m)]));
    make(&mut t, 2, APP, &access("a", "r"));
    make(&mut t, 3, APP, &access("a", "w"));
    make(&mut t, 4, APP, &access("m()", "action"));
    make(&mut t, 5, APP, &path("missing"));
    let state = |id| serde_json::to_value(t.full_state(v(id))).unwrap();
    assert_eq!(
        state(2),
        json!([{"type":"update","data":{"varId":2,"value":"x","properties":{"path":"a","access":"r"}}}])
    );
    assert_eq!(state(3), json!([{"type":"update","data":{"varId":3,"properties":{"path":"a","access":"w"}}}]));
    assert_eq!(state(4), json!([{"type":"update","data":{"varId":4,"properties":{"path":"m()","access":"action"}}}]));
    assert_eq!(state(5), json!([{"type":"update","data":{"varId":5,"value":null,"properties":{"path":"missing"}}}]));
    // w and action variables are never reported with a value.
    let changes = t.detect_changes();
    assert!(changes.items.iter().all(|i| i.var_id != v(3) && i.var_id != v(4)));
    // Their children fail: they have no value.
    make(&mut t, 6, v(3), &path("x"));
    assert_eq!(error_code(&t, 6), Some(ErrorCode::PathFailure));
}

#[test]
fn new_variables_are_reported_at_the_next_pass() {
    let mut t = tracker(JValue::object([("a", i(1))]));
    assert_eq!(detect(&mut t), json!([{"type":"update","data":{"varId":1,"value":{"obj":1}}}]));
    make(&mut t, 2, APP, &path("a"));
    assert_eq!(detect(&mut t), json!([{"type":"update","data":{"varId":2,"value":1}}]));
    assert_eq!(detect(&mut t), json!([]));
}

#[test]
fn replacing_the_app_value_is_reported() {
    let mut t = tracker(JValue::object([("a", i(1))]));
    make(&mut t, 2, APP, &path("a"));
    t.detect_changes();
    t.create_root(APP, JValue::object([("a", i(2))]), &[]).unwrap();
    assert_eq!(
        detect(&mut t),
        json!([
            {"type":"update","data":{"varId":1,"value":{"obj":2}}},
            {"type":"update","data":{"varId":2,"value":2}},
        ])
    );
    assert_eq!(t.registry_len(), 1, "the old app object was released");
}

#[test]
fn create_property_instantiates_a_type_for_a_nil_path() {
    let res = JsonResolver::new();
    res.register_type("Item", || JValue::typed("Item", [("n", JValue::Int(1))]));
    let app = JValue::object([]);
    let mut t = Tracker::new(res);
    t.create_root(APP, app.clone(), &[]).unwrap();
    make(&mut t, 2, APP, &[p("path", "slot"), p("create", "Item")]);
    assert_eq!(app.get("slot").get("n").as_int(), Some(1));
    assert_eq!(value(&t, 2), json!({"obj": 2}));
    assert_eq!(t.property(v(2), "type").as_deref(), Some("Item"));
    make(&mut t, 3, APP, &[p("path", "other"), p("create", "Nope")]);
    assert!(t.exists(v(3)));
    assert_eq!(error_code(&t, 3), Some(ErrorCode::NotFound));
    // An existing value is left alone.
    make(&mut t, 4, APP, &[p("path", "slot"), p("create", "Nope")]);
    assert_eq!(error_code(&t, 4), None);
}

// ----- Re-entrancy -----

#[test]
fn a_method_called_by_a_write_can_create_a_variable() {
    let res = JsonResolver::new();
    let mut t = Tracker::new(res.clone());
    let weak = t.shared().downgrade();
    let r = res.clone();
    let spawn = JValue::func(move |this, arg| {
        let shared = weak.upgrade().expect("tracker alive");
        this.set("a", arg.unwrap_or_default());
        // Host code calls back into the tracker while the tracker is inside `write`.
        shared.create(&r, VarId(-5), APP, &[p("path", "a")], Writer::Lua)?;
        assert_eq!(shared.value_json(VarId(-5)), Some(json!(42)));
        Ok(JValue::Nil)
    });
    t.create_root(APP, JValue::object([("spawn", spawn)]), &[]).unwrap();
    make(&mut t, 2, APP, &access("spawn(_)", "action"));
    t.write(v(2), &json!(42), Some(1)).unwrap();
    assert!(t.exists(v(-5)));
    assert_eq!(value(&t, -5), json!(42));
    assert_eq!(
        detect(&mut t),
        json!([{"type":"update","data":{"varId":1,"value":{"obj":1}}},{"type":"update","data":{"varId":-5,"value":42}}])
    );
}

#[test]
fn a_getter_can_read_other_variables_during_detection() {
    let res = JsonResolver::new();
    let mut t = Tracker::new(res.clone());
    let weak = t.shared().downgrade();
    let mirror = JValue::func(move |_, _| {
        let shared = weak.upgrade().expect("tracker alive");
        let a = shared.value_json(VarId(2)).unwrap_or_default();
        let id = shared.property(VarId(2), "elementId").unwrap_or_default();
        let raw = shared.value(VarId(2)).and_then(|v| v.as_int()).unwrap_or(-1);
        Ok(format!("a={a} raw={raw} ({id})").into())
    });
    let app = JValue::object([("a", i(1)), ("mirror", mirror)]);
    t.create_root(APP, app.clone(), &[]).unwrap();
    make(&mut t, 2, APP, &[p("path", "a"), p("elementId", "e")]);
    make(&mut t, 3, APP, &access("mirror()", "r"));
    assert_eq!(value(&t, 3), json!("a=1 raw=1 (e)"));
    t.detect_changes();
    app.set("a", i(2));
    // Variable 2 is visited first (creation order), so the getter sees its fresh value.
    assert_eq!(
        detect(&mut t),
        json!([
            {"type":"update","data":{"varId":2,"value":2}},
            {"type":"update","data":{"varId":3,"value":"a=2 raw=2 (e)"}},
        ])
    );
}

#[test]
fn host_code_may_create_and_destroy_during_a_pass() {
    let res = JsonResolver::new();
    let mut t = Tracker::new(res.clone());
    let weak = t.shared().downgrade();
    let r = res.clone();
    let armed = Rc::new(Cell::new(false));
    let a2 = armed.clone();
    let chaos = JValue::func(move |_, _| {
        let shared = weak.upgrade().expect("tracker alive");
        if a2.replace(false) {
            assert_eq!(shared.destroy(&r, VarId(4)), vec![VarId(5), VarId(4)]);
            shared.create(&r, VarId(-9), APP, &[p("path", "x")], Writer::Lua)?;
            shared.create(&r, VarId(-10), VarId(3), &[p("path", "..x")], Writer::Lua)?;
            assert!(shared.detect(&r).is_empty(), "a nested pass does nothing");
        }
        Ok(JValue::Int(7))
    });
    let app = JValue::object([("x", i(1)), ("chaos", chaos), ("o", JValue::object([("y", i(2))]))]);
    t.create_root(APP, app.clone(), &[]).unwrap();
    make(&mut t, 3, APP, &access("chaos()", "r"));
    make(&mut t, 4, APP, &path("o"));
    make(&mut t, 5, v(4), &path("y"));
    t.detect_changes();
    armed.set(true);
    app.set("x", i(10));
    let got = detect(&mut t);
    let ids: Vec<_> = got.as_array().unwrap().iter().map(|m| m["data"]["varId"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![-10, -9], "destroyed variables are gone, variables created during the pass are visited");
    assert_eq!(value(&t, -10), json!(10));
    assert!(!t.exists(v(4)) && !t.exists(v(5)));
}

// ----- Timing (P5 shape over JsonResolver; run with
// `cargo test --release --lib tracker::tests::p5 -- --ignored --nocapture`) -----

/// 100 rows × 99 string fields, one variable per row and per field (10,000 readable variables), an
/// action variable that assigns a new string to one field.
fn p5_setup(calls: bool) -> (Tracker<JsonResolver>, JValue) {
    let rows: Vec<JValue> = (0..100)
        .map(|r| {
            let mut fields: Vec<(String, JValue)> =
                (0..99).map(|f| (format!("f{f}"), s(&format!("r{r}f{f}")))).collect();
            if calls {
                fields.push(("get".into(), JValue::func(|this, _| Ok(this.get("f0")))));
            }
            JValue::object(fields.iter().map(|(k, v)| (k.as_str(), v.clone())))
        })
        .collect();
    let counter = Rc::new(Cell::new(0i64));
    let bump = JValue::func(move |this, _| {
        counter.set(counter.get() + 1);
        this.get("rows").elem(42).set("f7", format!("v{}", counter.get()).into());
        Ok(JValue::Nil)
    });
    let app = JValue::object([("rows", JValue::seq(rows)), ("bump", bump)]);
    let mut t = tracker(app.clone());
    let mut id = 2;
    for r in 0..100 {
        let row = id;
        make(&mut t, row, APP, &path(&format!("rows.{r}")));
        id += 1;
        for f in 0..99 {
            let p = if calls { "get()".to_string() } else { format!("f{f}") };
            make(&mut t, id, v(row), &access(&p, "r"));
            id += 1;
        }
    }
    make(&mut t, 100_000, APP, &access("bump()", "action"));
    t.detect_changes();
    (t, app)
}

fn median(mut samples: Vec<std::time::Duration>) -> std::time::Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[test]
#[ignore = "timing; run in release"]
fn p5_one_field_change_among_10k_variables() {
    let (mut t, _app) = p5_setup(false);
    let mut samples = Vec::new();
    for _ in 0..200 {
        let start = std::time::Instant::now();
        t.write(v(100_000), &json!(null), Some(1)).unwrap();
        let changes = t.detect_changes();
        samples.push(start.elapsed());
        assert_eq!(changes.len(), 1);
    }
    println!("P5 one change among {} variables: median {:?}", t.len(), median(samples));
    let mut samples = Vec::new();
    for _ in 0..200 {
        let start = std::time::Instant::now();
        assert!(t.detect_changes().is_empty());
        samples.push(start.elapsed());
    }
    println!("P5 no change: median {:?}", median(samples));
    let (mut t, _app) = p5_setup(true);
    let mut samples = Vec::new();
    for _ in 0..200 {
        let start = std::time::Instant::now();
        assert!(t.detect_changes().is_empty());
        samples.push(start.elapsed());
    }
    println!("P5 no change, 9,900 m() paths: median {:?}", median(samples));
}

// ----- byte and count limits (review H5, M3) -----

#[test]
fn property_limits_refuse_with_limit_exceeded_and_the_rest_applies() {
    let mut t = tracker(JValue::typed("App", [("a", s("x")), ("b", i(0))]));
    let limits =
        TrackerLimits { max_properties: 4, max_property_bytes: 32, max_session_bytes: 4096, max_variables: 10 };
    t.shared().set_limits(limits);
    make(&mut t, 2, APP, &path("b"));
    detect(&mut t);
    // One property too large: refused, the others in the message still apply.
    let big = "x".repeat(40);
    let e = t.set_properties(v(2), &[p("big", &big), p("small", "1")], Writer::Browser, Some(1)).unwrap_err();
    assert_eq!(e.code, ErrorCode::LimitExceeded);
    assert_eq!(t.shared().property(v(2), "small").as_deref(), Some("1"));
    assert_eq!(t.shared().property(v(2), "big"), None);
    // Count: four names per variable.
    let mut n = 0;
    while t.set_properties(v(2), &[p(&format!("p{n}"), "v")], Writer::Browser, Some(1)).is_ok() {
        n += 1;
        assert!(n < 10, "the count cap never hit");
    }
    // path and small are held, so two more names fit.
    assert_eq!(n, 2);
    // Replacing or deleting an existing one still works at the cap.
    t.set_properties(v(2), &[p("small", "2")], Writer::Browser, Some(1)).unwrap();
    t.set_properties(v(2), &[p("small", "")], Writer::Browser, Some(1)).unwrap();
    t.set_properties(v(2), &[p("again", "ok")], Writer::Browser, Some(1)).unwrap();
    // A create whose path is over the size cap does not exist afterwards.
    let e = t.create(v(3), APP, &path(&format!("a{}", ".a".repeat(20))), Writer::Browser).unwrap_err();
    assert_eq!(e.code, ErrorCode::LimitExceeded);
    assert!(!t.exists(v(3)));
    // Destroying gives every byte back.
    t.destroy(v(2));
    let base = t.shared().tracked_bytes();
    make(&mut t, 4, APP, &path("b"));
    t.set_properties(v(4), &[p("k", "12345")], Writer::Browser, Some(1)).unwrap();
    assert!(t.shared().tracked_bytes() > base);
    t.destroy(v(4));
    assert_eq!(t.shared().tracked_bytes(), base);
}

#[test]
fn session_bytes_count_properties_and_snapshots() {
    let mut t = tracker(JValue::typed("App", [("a", s("")), ("b", i(0))]));
    t.shared().set_limits(TrackerLimits {
        max_properties: 64,
        max_property_bytes: 1 << 20,
        max_session_bytes: 10_000,
        max_variables: 10,
    });
    make(&mut t, 2, APP, &access("a", "rw"));
    detect(&mut t);
    // A value write past the budget is refused before it happens; one within it is stored and counted.
    let e = t.write(v(2), &json!("y".repeat(20_000)), Some(1)).unwrap_err();
    assert_eq!(e.code, ErrorCode::LimitExceeded);
    let before = t.shared().tracked_bytes();
    t.write(v(2), &json!("y".repeat(6_000)), Some(1)).unwrap();
    let after = t.shared().tracked_bytes();
    assert!(after >= before + 6_000, "{before} → {after}");
    // The same value again fits (the old snapshot counts as freed), but a property that would pass the
    // budget alongside it does not.
    t.write(v(2), &json!("z".repeat(6_000)), Some(1)).unwrap();
    let e = t.set_properties(v(2), &[p("note", &"n".repeat(5_000))], Writer::Browser, Some(1)).unwrap_err();
    assert_eq!(e.code, ErrorCode::LimitExceeded);
    // Writing a small value frees the room again.
    t.write(v(2), &json!("small"), Some(1)).unwrap();
    t.set_properties(v(2), &[p("note", &"n".repeat(5_000))], Writer::Browser, Some(1)).unwrap();
}
