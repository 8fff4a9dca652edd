//! `JsonResolver`: the tracker over a JSON-like tree of `Rc` nodes whose identity is the `Rc` pointer
//! (ARCHITECTURE.md). Used by the tracker tests and by the Rust backend client library.
//!
//! The tree mirrors what the tracker needs from Lua tables, without Lua: objects with fields, an
//! optional type name and an optional prototype (for defaults and shared methods, like `__index`);
//! sequences; and functions written as Rust closures, which `m()` and `m(_)` paths call with the object
//! as `self`. Closures may capture a [`Shared`](super::Shared) handle and call back into the tracker.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use serde_json::Value as Json;

use super::registry::{ObjId, ObjectRegistry};
use super::value::MAX_VALUE_DEPTH;
use super::{Kind, Peek, PeekKey, Resolver, VarError, WrapRequest, Wrapped};
use crate::ids::VarId;
use crate::protocol::ErrorCode;

/// A method: called with the object it was found on (`self`) and, for writes, the value.
pub type Method = dyn Fn(&JValue, Option<JValue>) -> Result<JValue, VarError>;

/// A wrapper type (docs/variables.md "Wrappers"): decides the wrapper of a variable from its raw value and current wrapper.
pub type WrapperFn = dyn Fn(&WrapRequest<'_, JValue>) -> Result<Wrapped<JValue>, VarError>;

/// A value of the tree. Cloning copies a handle; objects, sequences and functions have identity.
#[derive(Clone, Default)]
pub enum JValue {
    #[default]
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Seq(Rc<RefCell<Vec<JValue>>>),
    Obj(Rc<JObject>),
    Func(Rc<Method>),
}

/// An object: fields (hashed, so wide objects stay cheap to read), an optional type name and prototype.
pub struct JObject {
    type_name: Option<String>,
    proto: Option<Rc<JObject>>,
    fields: RefCell<HashMap<Rc<str>, JValue>>,
}

impl JObject {
    /// A field, falling back to the prototype chain (like `__index`).
    fn lookup(&self, name: &str) -> JValue {
        if let Some(v) = self.fields.borrow().get(name) {
            return v.clone();
        }
        self.proto.as_ref().map_or(JValue::Nil, |p| p.lookup(name))
    }

    fn assign(&self, name: &str, v: JValue) {
        let mut fields = self.fields.borrow_mut();
        match (fields.get_mut(name), v) {
            (Some(_), JValue::Nil) => {
                fields.remove(name);
            }
            (Some(slot), v) => *slot = v,
            (None, JValue::Nil) => {}
            (None, v) => {
                fields.insert(name.into(), v);
            }
        }
    }

    /// The type name of the object or of its prototype chain.
    fn declared_type(&self) -> Option<&str> {
        self.type_name.as_deref().or_else(|| self.proto.as_ref().and_then(|p| p.declared_type()))
    }
}

impl JValue {
    fn make(type_name: Option<String>, proto: Option<Rc<JObject>>, fields: Vec<(&str, JValue)>) -> JValue {
        let fields = fields.into_iter().filter(|(_, v)| !v.is_nil()).map(|(k, v)| (Rc::from(k), v)).collect();
        JValue::Obj(Rc::new(JObject { type_name, proto, fields: RefCell::new(fields) }))
    }

    /// An untyped object.
    pub fn object<'a>(fields: impl IntoIterator<Item = (&'a str, JValue)>) -> JValue {
        Self::make(None, None, fields.into_iter().collect())
    }

    /// An object of a named type (what a Lua metatable's `type` gives).
    pub fn typed<'a>(type_name: &str, fields: impl IntoIterator<Item = (&'a str, JValue)>) -> JValue {
        Self::make(Some(type_name.to_string()), None, fields.into_iter().collect())
    }

    /// An object whose missing fields (defaults, methods) and type come from `proto`.
    pub fn instance<'a>(proto: &JValue, fields: impl IntoIterator<Item = (&'a str, JValue)>) -> JValue {
        let proto = match proto {
            JValue::Obj(p) => Some(p.clone()),
            _ => None,
        };
        Self::make(None, proto, fields.into_iter().collect())
    }

    /// A sequence (shown as an array; empty shows as `[]`).
    pub fn seq(items: impl IntoIterator<Item = JValue>) -> JValue {
        JValue::Seq(Rc::new(RefCell::new(items.into_iter().collect())))
    }

    /// A function for `m()` / `m(_)` paths: `f(self, None)` reads, `f(self, Some(v))` writes.
    pub fn func(f: impl Fn(&JValue, Option<JValue>) -> Result<JValue, VarError> + 'static) -> JValue {
        JValue::Func(Rc::new(f))
    }

    pub fn str(s: &str) -> JValue {
        JValue::Str(s.into())
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, JValue::Nil)
    }

    /// A field of an object (prototype chain included); nil otherwise.
    pub fn get(&self, name: &str) -> JValue {
        match self {
            JValue::Obj(o) => o.lookup(name),
            _ => JValue::Nil,
        }
    }

    /// Sets a field of an object (nil deletes). No effect on other values.
    pub fn set(&self, name: &str, v: JValue) {
        if let JValue::Obj(o) = self {
            o.assign(name, v);
        }
    }

    /// Element `i` (0-based) of a sequence; nil otherwise.
    pub fn elem(&self, i: usize) -> JValue {
        match self {
            JValue::Seq(s) => s.borrow().get(i).cloned().unwrap_or_default(),
            _ => JValue::Nil,
        }
    }

    /// Replaces the elements of a sequence (same identity).
    pub fn set_items(&self, items: impl IntoIterator<Item = JValue>) {
        if let JValue::Seq(s) = self {
            *s.borrow_mut() = items.into_iter().collect();
        }
    }

    /// Number of elements of a sequence (0 otherwise).
    pub fn len(&self) -> usize {
        match self {
            JValue::Seq(s) => s.borrow().len(),
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            JValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            JValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The identity (address) of an object, sequence or function.
    pub fn identity(&self) -> Option<usize> {
        match self {
            JValue::Seq(s) => Some(Rc::as_ptr(s) as *const () as usize),
            JValue::Obj(o) => Some(Rc::as_ptr(o) as *const () as usize),
            JValue::Func(f) => Some(Rc::as_ptr(f) as *const () as usize),
            _ => None,
        }
    }

    /// Same object (identity), like Lua's `rawequal` for tables.
    pub fn ptr_eq(&self, other: &JValue) -> bool {
        self.identity().is_some() && self.identity() == other.identity()
    }

    fn kind_name(&self) -> &'static str {
        match self {
            JValue::Nil => "nil",
            JValue::Bool(_) => "boolean",
            JValue::Int(_) | JValue::Float(_) => "number",
            JValue::Str(_) => "string",
            JValue::Seq(_) => "sequence",
            JValue::Obj(_) => "object",
            JValue::Func(_) => "function",
        }
    }
}

impl fmt::Debug for JValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JValue::Nil => f.write_str("nil"),
            JValue::Bool(b) => write!(f, "{b}"),
            JValue::Int(i) => write!(f, "{i}"),
            JValue::Float(x) => write!(f, "{x:?}"),
            JValue::Str(s) => write!(f, "{s:?}"),
            JValue::Seq(s) => f.debug_list().entries(s.borrow().iter()).finish(),
            JValue::Obj(o) => {
                let mut m = f.debug_map();
                if let Some(t) = &o.type_name {
                    m.entry(&"<type>", t);
                }
                let fields = o.fields.borrow();
                let mut keys: Vec<_> = fields.keys().collect();
                keys.sort();
                for k in keys {
                    m.entry(k, &fields[k]);
                }
                m.finish()
            }
            JValue::Func(_) => f.write_str("<function>"),
        }
    }
}

impl From<i64> for JValue {
    fn from(i: i64) -> Self {
        JValue::Int(i)
    }
}

impl From<f64> for JValue {
    fn from(x: f64) -> Self {
        JValue::Float(x)
    }
}

impl From<bool> for JValue {
    fn from(b: bool) -> Self {
        JValue::Bool(b)
    }
}

impl From<&str> for JValue {
    fn from(s: &str) -> Self {
        JValue::Str(s.into())
    }
}

impl From<String> for JValue {
    fn from(s: String) -> Self {
        JValue::Str(s.into())
    }
}

#[derive(Default)]
struct Inner {
    wrappers: RefCell<HashMap<String, Rc<WrapperFn>>>,
    types: RefCell<HashMap<String, Rc<dyn Fn() -> JValue>>>,
    calls: Cell<u64>,
}

/// The resolver over [`JValue`] trees. Cheap to clone (clones share registrations and the call count),
/// so closures in the tree can hold one to create variables through a `Shared` handle.
#[derive(Clone, Default)]
pub struct JsonResolver {
    inner: Rc<Inner>,
}

fn path_failure(description: impl Into<String>) -> VarError {
    VarError::new(ErrorCode::PathFailure, description)
}

impl JsonResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a wrapper type for the `wrapper` property.
    pub fn register_wrapper(
        &self,
        name: &str,
        f: impl Fn(&WrapRequest<'_, JValue>) -> Result<Wrapped<JValue>, VarError> + 'static,
    ) {
        self.inner.wrappers.borrow_mut().insert(name.to_string(), Rc::new(f));
    }

    /// Registers a type the `create` property can instantiate.
    pub fn register_type(&self, name: &str, f: impl Fn() -> JValue + 'static) {
        self.inner.types.borrow_mut().insert(name.to_string(), Rc::new(f));
    }

    /// How many host-visible operations (reads, writes, calls, classifications, type lookups, wraps) the
    /// tracker has made through this resolver and its clones.
    pub fn calls(&self) -> u64 {
        self.inner.calls.get()
    }

    fn count(&self) {
        self.inner.calls.set(self.inner.calls.get() + 1);
    }

    fn json_to_value(&self, json: &Json, registry: &ObjectRegistry<JValue>, depth: usize) -> Result<JValue, VarError> {
        if depth > MAX_VALUE_DEPTH {
            return Err(VarError::new(ErrorCode::LimitExceeded, "value nested deeper than 32"));
        }
        Ok(match json {
            Json::Null => JValue::Nil,
            Json::Bool(b) => JValue::Bool(*b),
            Json::Number(n) => match n.as_i64() {
                Some(i) => JValue::Int(i),
                None => JValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(s) => JValue::Str(s.as_str().into()),
            // An empty container one level past the limit is refused too (review L5).
            Json::Array(_) | Json::Object(_) if depth >= MAX_VALUE_DEPTH => {
                return Err(VarError::new(ErrorCode::LimitExceeded, "value nested deeper than 32"));
            }
            Json::Array(items) => {
                let items: Result<Vec<_>, _> =
                    items.iter().map(|i| self.json_to_value(i, registry, depth + 1)).collect();
                JValue::seq(items?)
            }
            Json::Object(map) => {
                if map.len() == 1 {
                    if let Some(n) = map.get("obj").and_then(Json::as_u64) {
                        return registry
                            .lookup(ObjId(n))
                            .cloned()
                            .ok_or_else(|| VarError::new(ErrorCode::NotFound, format!("unknown object {n}")));
                    }
                }
                let mut fields = Vec::with_capacity(map.len());
                for (k, v) in map {
                    fields.push((k.as_str(), self.json_to_value(v, registry, depth + 1)?));
                }
                JValue::make(None, None, fields)
            }
        })
    }
}

impl Resolver for JsonResolver {
    type Value = JValue;
    type Key = Rc<str>;

    fn nil(&self) -> JValue {
        JValue::Nil
    }

    fn is_nil(&self, v: &JValue) -> bool {
        v.is_nil()
    }

    fn intern(&self, name: &str) -> Result<Rc<str>, VarError> {
        Ok(name.into())
    }

    fn get(&self, base: &JValue, key: &Rc<str>) -> Result<JValue, VarError> {
        self.count();
        match base {
            JValue::Nil | JValue::Seq(_) => Ok(JValue::Nil),
            JValue::Obj(o) => Ok(o.lookup(key)),
            other => Err(path_failure(format!("cannot index a {} with {key:?}", other.kind_name()))),
        }
    }

    fn index(&self, base: &JValue, index: u32) -> Result<JValue, VarError> {
        self.count();
        match base {
            JValue::Nil | JValue::Obj(_) => Ok(JValue::Nil),
            JValue::Seq(_) => Ok(base.elem(index as usize)),
            other => Err(path_failure(format!("cannot index a {} with {index}", other.kind_name()))),
        }
    }

    fn set(&self, base: &JValue, key: &Rc<str>, v: JValue) -> Result<(), VarError> {
        self.count();
        match base {
            JValue::Obj(o) => {
                o.assign(key, v);
                Ok(())
            }
            other => Err(path_failure(format!("cannot set {key:?} on a {}", other.kind_name()))),
        }
    }

    fn set_index(&self, base: &JValue, index: u32, v: JValue) -> Result<(), VarError> {
        self.count();
        let JValue::Seq(s) = base else {
            return Err(path_failure(format!("cannot set element {index} of a {}", base.kind_name())));
        };
        let mut items = s.borrow_mut();
        let i = index as usize;
        if i < items.len() {
            items[i] = v;
        } else if i == items.len() {
            items.push(v);
        } else {
            return Err(path_failure(format!("element {index} is past the end")));
        }
        Ok(())
    }

    fn call(&self, base: &JValue, key: &Rc<str>, arg: Option<JValue>) -> Result<JValue, VarError> {
        self.count();
        if base.is_nil() {
            return Ok(JValue::Nil);
        }
        match self.get(base, key)? {
            // The borrow of the fields ended with `get`: the method may change them.
            JValue::Func(f) => f(base, arg),
            _ => Err(path_failure(format!("{key} is not a function"))),
        }
    }

    fn classify(&self, v: &JValue) -> Kind {
        self.count();
        match v {
            JValue::Nil => Kind::Nil,
            JValue::Bool(b) => Kind::Bool(*b),
            JValue::Int(i) => Kind::Int(*i),
            JValue::Float(x) => Kind::Float(*x),
            JValue::Str(s) => Kind::Str(s.as_bytes().to_vec()),
            JValue::Seq(s) if s.borrow().is_empty() => Kind::EmptyPlain,
            JValue::Seq(s) => Kind::Seq(s.borrow().len()),
            JValue::Obj(_) | JValue::Func(_) => Kind::Object(v.identity().expect("has identity")),
        }
    }

    fn str_eq(&self, v: &JValue, bytes: &[u8]) -> Option<bool> {
        self.count();
        match v {
            JValue::Str(s) => Some(s.as_bytes() == bytes),
            _ => None,
        }
    }

    fn elem(&self, v: &JValue, i: usize) -> JValue {
        v.elem(i)
    }

    /// Fields present on the object itself and elements of a sequence; absent fields (which a
    /// prototype may supply) and non-primitive values are `Unknown`. Counts one call per key.
    fn peek(&self, base: &JValue, keys: &[PeekKey<'_, Rc<str>>], f: &mut dyn FnMut(usize, Peek<'_>)) -> bool {
        fn primitive(v: Option<&JValue>) -> Peek<'_> {
            match v {
                Some(JValue::Bool(b)) => Peek::Bool(*b),
                Some(JValue::Int(i)) => Peek::Int(*i),
                Some(JValue::Float(x)) => Peek::Float(*x),
                Some(JValue::Str(s)) => Peek::Str(s.as_bytes()),
                _ => Peek::Unknown,
            }
        }
        match base {
            JValue::Obj(o) => {
                let Ok(fields) = o.fields.try_borrow() else { return false };
                for (i, key) in keys.iter().enumerate() {
                    self.count();
                    match key {
                        PeekKey::Name(k) => f(i, primitive(fields.get(&***k))),
                        PeekKey::Index(_) => f(i, Peek::Unknown),
                    }
                }
            }
            JValue::Seq(s) => {
                let Ok(items) = s.try_borrow() else { return false };
                for (i, key) in keys.iter().enumerate() {
                    self.count();
                    match key {
                        PeekKey::Index(n) => f(i, primitive(items.get(*n as usize))),
                        PeekKey::Name(_) => f(i, Peek::Unknown),
                    }
                }
            }
            _ => return false,
        }
        true
    }

    fn type_of(&self, v: &JValue) -> Option<String> {
        self.count();
        let JValue::Obj(o) = v else { return None };
        if let Some(t) = o.declared_type().filter(|t| !t.is_empty()) {
            return Some(t.to_string());
        }
        match o.lookup("type") {
            JValue::Str(s) if !s.is_empty() => Some(s.to_string()),
            _ => None,
        }
    }

    fn from_json(&self, json: &Json, registry: &ObjectRegistry<JValue>) -> Result<JValue, VarError> {
        self.json_to_value(json, registry, 0)
    }

    fn wrap(&self, request: WrapRequest<'_, JValue>) -> Result<Wrapped<JValue>, VarError> {
        self.count();
        let f = self.inner.wrappers.borrow().get(request.wrapper).cloned();
        match f {
            Some(f) => f(&request),
            None => Err(VarError::new(ErrorCode::NotFound, format!("unknown wrapper {:?}", request.wrapper))),
        }
    }

    fn destroy_wrapper(&self, _var: VarId, wrapper: &JValue) -> Result<(), VarError> {
        self.count();
        match wrapper.get("destroy") {
            JValue::Func(f) => f(wrapper, None).map(drop),
            _ => Ok(()),
        }
    }

    fn create_value(&self, type_name: &str) -> Result<JValue, VarError> {
        self.count();
        let f = self.inner.types.borrow().get(type_name).cloned();
        f.map(|f| f()).ok_or_else(|| VarError::new(ErrorCode::NotFound, format!("unknown type {type_name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(s: &str) -> Rc<str> {
        s.into()
    }

    #[test]
    fn fields_prototypes_and_methods() {
        let r = JsonResolver::new();
        let proto = JValue::typed(
            "Person",
            [
                ("name", "nobody".into()),
                ("greet", JValue::func(|this, _| Ok(format!("hi {}", this.get("name").as_str().unwrap()).into()))),
            ],
        );
        let p = JValue::instance(&proto, [("name", "ann".into())]);
        let q = JValue::instance(&proto, []);
        assert_eq!(r.get(&q, &key("name")).unwrap().as_str(), Some("nobody"));
        assert_eq!(r.call(&p, &key("greet"), None).unwrap().as_str(), Some("hi ann"));
        assert_eq!(r.type_of(&p).as_deref(), Some("Person"));
        assert_eq!(r.type_of(&JValue::object([("type", "T".into())])).as_deref(), Some("T"));
        assert_eq!(r.type_of(&JValue::object([])), None);
        assert_eq!(r.get(&JValue::Int(3), &key("x")).unwrap_err().code, ErrorCode::PathFailure);
        assert!(r.get(&JValue::Nil, &key("x")).unwrap().is_nil());
        assert_eq!(r.call(&p, &key("name"), None).unwrap_err().code, ErrorCode::PathFailure);
    }

    #[test]
    fn json_round_trip_and_object_refs() {
        let r = JsonResolver::new();
        let mut reg = ObjectRegistry::new();
        let o = JValue::object([]);
        let id = reg.acquire(o.identity().unwrap(), o.clone());
        let v = r.from_json(&json!([1, 2.5, "x", null, [true], {"obj": id.0}, {"a": 1}]), &reg).unwrap();
        assert_eq!(v.len(), 7);
        assert_eq!(v.elem(0).as_int(), Some(1));
        assert!(v.elem(5).ptr_eq(&o));
        assert_eq!(v.elem(6).get("a").as_int(), Some(1));
        assert_eq!(r.from_json(&json!({"obj": 999}), &reg).unwrap_err().code, ErrorCode::NotFound);
    }

    #[test]
    fn sequences_grow_by_one() {
        let r = JsonResolver::new();
        let s = JValue::seq([]);
        r.set_index(&s, 0, 1i64.into()).unwrap();
        r.set_index(&s, 1, 2i64.into()).unwrap();
        assert_eq!(r.set_index(&s, 5, 2i64.into()).unwrap_err().code, ErrorCode::PathFailure);
        assert_eq!(r.classify(&s), Kind::Seq(2));
        assert_eq!(r.classify(&JValue::seq([])), Kind::EmptyPlain);
    }
}
