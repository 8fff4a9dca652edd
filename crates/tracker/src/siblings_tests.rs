//! Sibling runs (`siblings.rs`) must not change what a pass reports: targeted cases, and a generated
//! comparison with a resolver that cannot peek, under which no run confirms anything and every active
//! variable is visited the full way, as before runs existed.

use std::rc::Rc;

use proptest::prelude::*;
use serde_json::{json, Value as Json};

use super::*;
use crate::protocol::Priority;

const APP: VarId = VarId::APP;

fn p(name: &str, value: &str) -> PropertyWrite {
    PropertyWrite { name: name.to_string(), value: value.to_string(), priority: None }
}

fn make<R: Resolver>(t: &mut Tracker<R>, id: i64, parent: i64, path: &str) {
    t.create(VarId(id), VarId(parent), &[p("path", path)], Writer::Browser)
        .unwrap_or_else(|e| panic!("create {id}: {e}"));
}

fn messages<R: Resolver>(t: &mut Tracker<R>) -> Json {
    serde_json::to_value(t.detect_changes().messages_for(None, |_| true)).unwrap()
}

/// The JSON resolver without [`Resolver::peek`]: every variable is read the full way.
#[derive(Clone, Default)]
struct NoPeek(JsonResolver);

impl Resolver for NoPeek {
    type Value = JValue;
    type Key = Rc<str>;

    fn nil(&self) -> JValue {
        self.0.nil()
    }
    fn is_nil(&self, v: &JValue) -> bool {
        self.0.is_nil(v)
    }
    fn intern(&self, name: &str) -> Result<Rc<str>, VarError> {
        self.0.intern(name)
    }
    fn get(&self, base: &JValue, key: &Rc<str>) -> Result<JValue, VarError> {
        self.0.get(base, key)
    }
    fn index(&self, base: &JValue, index: u32) -> Result<JValue, VarError> {
        self.0.index(base, index)
    }
    fn set(&self, base: &JValue, key: &Rc<str>, v: JValue) -> Result<(), VarError> {
        self.0.set(base, key, v)
    }
    fn set_index(&self, base: &JValue, index: u32, v: JValue) -> Result<(), VarError> {
        self.0.set_index(base, index, v)
    }
    fn call(&self, base: &JValue, key: &Rc<str>, arg: Option<JValue>) -> Result<JValue, VarError> {
        self.0.call(base, key, arg)
    }
    fn classify(&self, v: &JValue) -> Kind {
        self.0.classify(v)
    }
    fn str_eq(&self, v: &JValue, bytes: &[u8]) -> Option<bool> {
        self.0.str_eq(v, bytes)
    }
    fn elem(&self, v: &JValue, i: usize) -> JValue {
        self.0.elem(v, i)
    }
    fn type_of(&self, v: &JValue) -> Option<String> {
        self.0.type_of(v)
    }
    fn from_json(&self, json: &Json, registry: &ObjectRegistry<JValue>) -> Result<JValue, VarError> {
        self.0.from_json(json, registry)
    }
}

#[test]
fn pending_changes_of_quiet_siblings_keep_preorder_across_descents() {
    // 3 and 5 are peeked; 4 (under 3) climbs to the app's `x`.
    let app = JValue::object([("a", JValue::Int(1)), ("b", JValue::Int(2)), ("x", JValue::Int(3))]);
    let mut t = Tracker::new(JsonResolver::new());
    t.create_root(APP, app.clone(), &[]).unwrap();
    make(&mut t, 3, 1, "a");
    make(&mut t, 4, 3, "..x");
    make(&mut t, 5, 1, "b");
    t.detect_changes();
    for id in [5, 4, 3] {
        t.set_properties(VarId(id), &[p("note", &id.to_string())], Writer::Lua, None).unwrap();
    }
    app.set("x", JValue::Int(30));
    assert_eq!(
        messages(&mut t),
        json!([
            {"type":"update","data":{"varId":3,"properties":{"note":"3"}}},
            {"type":"update","data":{"varId":4,"value":30,"properties":{"note":"4"}}},
            {"type":"update","data":{"varId":5,"properties":{"note":"5"}}},
        ])
    );
}

#[test]
fn inactive_siblings_inside_a_run_are_skipped_with_their_subtree() {
    let app = JValue::object([("a", JValue::Int(1)), ("b", JValue::Int(2)), ("c", JValue::Int(3))]);
    let mut t = Tracker::new(JsonResolver::new());
    t.create_root(APP, app.clone(), &[]).unwrap();
    make(&mut t, 2, 1, "a");
    make(&mut t, 3, 1, "b");
    make(&mut t, 4, 3, "..c");
    make(&mut t, 5, 1, "c");
    t.detect_changes();
    t.set_active(VarId(3), false);
    app.set("b", JValue::Int(20));
    app.set("c", JValue::Int(30));
    assert_eq!(messages(&mut t), json!([{"type":"update","data":{"varId":5,"value":30}}]));
    t.set_active(VarId(3), true);
    assert_eq!(
        messages(&mut t),
        json!([{"type":"update","data":{"varId":3,"value":20}}, {"type":"update","data":{"varId":4,"value":30}}])
    );
}

#[test]
fn a_field_that_falls_back_to_its_prototype_is_read_in_full() {
    let proto = JValue::object([("f", JValue::str("default"))]);
    let row = JValue::instance(&proto, [("f", JValue::str("own")), ("g", JValue::Int(1))]);
    let mut t = Tracker::new(JsonResolver::new());
    t.create_root(APP, JValue::object([("row", row.clone())]), &[]).unwrap();
    make(&mut t, 2, 1, "row");
    make(&mut t, 3, 2, "f");
    make(&mut t, 4, 2, "g");
    t.detect_changes();
    row.set("f", JValue::Nil);
    assert_eq!(messages(&mut t), json!([{"type":"update","data":{"varId":3,"value":"default"}}]));
    assert_eq!(messages(&mut t), json!([]));
}

#[test]
fn host_code_run_by_an_earlier_sibling_is_seen_by_later_ones() {
    let app = JValue::object([("b", JValue::Int(1))]);
    let target = app.clone();
    let bump = JValue::func(move |_, _| {
        let next = target.get("b").as_int().unwrap_or(0) + 1;
        target.set("b", JValue::Int(next));
        Ok(JValue::Int(0))
    });
    app.set("bump", bump);
    let mut t = Tracker::new(JsonResolver::new());
    t.create_root(APP, app, &[]).unwrap();
    t.create(VarId(2), APP, &[p("path", "bump()"), p("access", "r")], Writer::Browser).unwrap();
    make(&mut t, 3, 1, "b");
    t.detect_changes();
    // The getter (visited fully) runs before its later sibling is peeked.
    assert_eq!(messages(&mut t), json!([{"type":"update","data":{"varId":3,"value":4}}]));
}

// ----- generated comparison with a resolver that cannot peek -----

/// A field value; `Obj(k)` is object `k` of the world.
#[derive(Clone, Debug)]
enum Val {
    Nil,
    Int(i64),
    Float(f64),
    Str(&'static str),
    Bool(bool),
    Obj(usize),
}

#[derive(Clone, Debug)]
enum Op {
    SetField { obj: usize, field: usize, value: Val },
    Create { parent: usize, path: usize },
    Prop { var: usize, name: usize, value: usize, high: bool },
    Active { var: usize, on: bool },
    Write { var: usize, value: i64 },
    Destroy { var: usize },
    Pass,
}

const FIELDS: [&str; 4] = ["f0", "f1", "f2", "f3"];
const PATHS: [&str; 9] = ["f0", "f1", "f2", "f3", "o", "o.f1", "..f2", "0", "m()"];
const PROP_NAMES: [&str; 4] = ["note", "inactive", "priority", "note:low"];
const PROP_VALUES: [&str; 3] = ["", "x", "high"];
const OBJECTS: usize = 4;

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        1 => Just(Val::Nil),
        3 => (0i64..3).prop_map(Val::Int),
        2 => prop_oneof![Just(1.0), Just(1.5)].prop_map(Val::Float),
        3 => prop_oneof![Just("a"), Just("b")].prop_map(Val::Str),
        2 => any::<bool>().prop_map(Val::Bool),
        1 => (0..OBJECTS).prop_map(Val::Obj),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Mostly the app's fields and variables directly under the app: the plain siblings runs are for.
        3 => (0..FIELDS.len(), val()).prop_map(|(field, value)| Op::SetField { obj: 0, field, value }),
        2 => (0..OBJECTS, 0..FIELDS.len(), val()).prop_map(|(obj, field, value)| Op::SetField { obj, field, value }),
        2 => (0..PATHS.len()).prop_map(|path| Op::Create { parent: 0, path }),
        2 => (0..64usize, 0..PATHS.len()).prop_map(|(parent, path)| Op::Create { parent, path }),
        2 => (0..64usize, 0..PROP_NAMES.len(), 0..PROP_VALUES.len(), any::<bool>())
            .prop_map(|(var, name, value, high)| Op::Prop { var, name, value, high }),
        1 => (0..64usize, any::<bool>()).prop_map(|(var, on)| Op::Active { var, on }),
        1 => (0..64usize, 0i64..3).prop_map(|(var, value)| Op::Write { var, value }),
        1 => (0..64usize).prop_map(|var| Op::Destroy { var }),
        3 => Just(Op::Pass),
    ]
}

/// One tracker over its own copy of the world: objects 0..OBJECTS (object 0 is the app; objects 1 and
/// 3 take `f0` from a prototype), with fields, an `o` link, and a `m()` method.
struct World<R: Resolver> {
    t: Tracker<R>,
    objects: Vec<JValue>,
    ids: Vec<i64>,
    next_id: i64,
}

impl<R: Resolver<Value = JValue>> World<R> {
    fn new(res: R) -> Self {
        let proto = JValue::object([("f0", JValue::str("p")), ("f3", JValue::Int(9))]);
        let objects: Vec<JValue> = (0..OBJECTS)
            .map(|k| {
                let fields = [("f1", JValue::Int(k as i64)), ("f2", JValue::str("s")), ("f3", JValue::Float(0.5))];
                if k % 2 == 1 {
                    // f0 comes from the prototype.
                    JValue::instance(&proto, fields)
                } else {
                    JValue::object([("f0", JValue::Bool(true))].into_iter().chain(fields))
                }
            })
            .collect();
        for (k, o) in objects.iter().enumerate() {
            o.set("o", objects[(k + 1) % OBJECTS].clone());
            o.set("m", JValue::func(|this, _| Ok(this.get("f2"))));
        }
        let mut t = Tracker::new(res);
        t.create_root(APP, objects[0].clone(), &[]).unwrap();
        World { t, objects, ids: vec![1], next_id: 2 }
    }

    fn value(&self, v: &Val) -> JValue {
        match v {
            Val::Nil => JValue::Nil,
            Val::Int(i) => JValue::Int(*i),
            Val::Float(f) => JValue::Float(*f),
            Val::Str(s) => JValue::str(s),
            Val::Bool(b) => JValue::Bool(*b),
            Val::Obj(k) => self.objects[*k].clone(),
        }
    }

    fn var(&self, i: usize) -> VarId {
        VarId(self.ids[i % self.ids.len()])
    }

    /// Applies one operation; returns what it reported, for comparison.
    fn apply(&mut self, op: &Op) -> Json {
        match op {
            Op::SetField { obj, field, value } => {
                self.objects[*obj].set(FIELDS[*field], self.value(value));
                Json::Null
            }
            Op::Create { parent, path } => {
                let id = self.next_id;
                self.next_id += 1;
                let parent = self.var(*parent);
                let props = [p("path", PATHS[*path]), p("access", if PATHS[*path] == "m()" { "r" } else { "rw" })];
                let created = self.t.create(VarId(id), parent, &props, Writer::Browser);
                if created.is_ok() {
                    self.ids.push(id);
                }
                json!(created.map(|_| ()).map_err(|e| e.to_string()))
            }
            Op::Prop { var, name, value, high } => {
                let (name, value) = (PROP_NAMES[*name], PROP_VALUES[*value]);
                let priority = high.then_some(Priority::High);
                let write = PropertyWrite { name: name.to_string(), value: value.to_string(), priority };
                let r = self.t.set_properties(self.var(*var), &[write], Writer::Lua, None);
                json!(r.map_err(|e| e.to_string()))
            }
            Op::Active { var, on } => {
                self.t.set_active(self.var(*var), *on);
                Json::Null
            }
            Op::Write { var, value } => {
                json!(self.t.write(self.var(*var), &json!(value), Some(7)).map_err(|e| e.to_string()))
            }
            Op::Destroy { var } => {
                let id = self.var(*var);
                if id == APP {
                    return Json::Null;
                }
                let gone = self.t.destroy(id);
                self.ids.retain(|i| !gone.contains(&VarId(*i)));
                json!(gone.iter().map(|v| v.0).collect::<Vec<_>>())
            }
            Op::Pass => {
                let changes = self.t.detect_changes();
                let mut out = Vec::new();
                for receiver in [None, Some(7)] {
                    out.push(serde_json::to_value(changes.messages_for(receiver, |_| true)).unwrap());
                }
                json!(out)
            }
        }
    }

    fn states(&self) -> Json {
        json!(self
            .ids
            .iter()
            .map(|&id| serde_json::to_value(self.t.full_state(VarId(id))).unwrap())
            .collect::<Vec<_>>())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn sibling_runs_report_what_full_visits_report(ops in prop::collection::vec(op(), 1..80)) {
        let mut fast = World::new(JsonResolver::new());
        let mut full = World::new(NoPeek::default());
        for (step, op) in ops.iter().chain([&Op::Pass]).enumerate() {
            let (a, b) = (fast.apply(op), full.apply(op));
            prop_assert_eq!(&a, &b, "step {} {:?}", step, op);
        }
        prop_assert_eq!(fast.states(), full.states());
    }
}

/// Siblings after a changed one are peeked again by the next run; that must not add up to O(n²).
#[test]
fn many_changed_siblings_cost_linear_resolver_calls() {
    for n in [100usize, 400, 1600] {
        let res = JsonResolver::new();
        let names: Vec<String> = (0..n).map(|f| format!("f{f}")).collect();
        let app = JValue::object(names.iter().map(|f| (f.as_str(), JValue::Int(0))));
        let mut t = Tracker::new(res.clone());
        t.create_root(APP, app.clone(), &[]).unwrap();
        for (i, f) in names.iter().enumerate() {
            make(&mut t, 2 + i as i64, 1, f);
        }
        t.detect_changes();
        // Every field changed, then every other one.
        for (step, changed) in [1usize, 2].into_iter().enumerate() {
            for f in names.iter().step_by(changed) {
                app.set(f, JValue::Int(step as i64 + 1));
            }
            let before = res.calls();
            assert_eq!(t.detect_changes().len(), n.div_ceil(changed));
            let per_variable = (res.calls() - before) / n as u64;
            // A full visit alone makes about 5; quadratic re-peeking would make about n / 2.
            assert!(per_variable <= 12, "{n} siblings, every {changed}. changed: {per_variable} calls each");
        }
    }
}
