//! [`ObjectResolver`]: the tracker's [`JsonResolver`] plus the routing of reads, writes and calls on
//! [`Obj`](super::Obj) proxies to the Rust structs behind them. Everything else (plain JSON values
//! written by browsers, arrays, snapshots, types, `{"obj":N}` lookup) is the JSON resolver's.

use std::rc::Rc;

use serde_json::Value as Json;

use super::object::node_of;
use super::url_paths;
use crate::ids::VarId;
use crate::tracker::{JValue, JsonResolver, Kind, ObjectRegistry, Resolver, VarError, WrapRequest, Wrapped};

#[derive(Clone, Default)]
pub struct ObjectResolver {
    json: JsonResolver,
}

impl ObjectResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// The underlying JSON resolver (register wrapper types or `create=T` types on it).
    pub fn json(&self) -> &JsonResolver {
        &self.json
    }
}

impl Resolver for ObjectResolver {
    type Value = JValue;
    type Key = Rc<str>;

    fn nil(&self) -> JValue {
        JValue::Nil
    }

    fn is_nil(&self, v: &JValue) -> bool {
        v.is_nil()
    }

    fn intern(&self, name: &str) -> Result<Rc<str>, VarError> {
        self.json.intern(name)
    }

    fn get(&self, base: &JValue, key: &Rc<str>) -> Result<JValue, VarError> {
        match node_of(base) {
            // The page's URL variable (`uiUrl..`, PROTOCOL.md B9.2) passes through a name no app
            // defines on its way back to the app: it reads nil, as a missing Lua field does.
            Some(node) => node.get(key).or_else(|e| if &**key == url_paths::ANCHOR { Ok(JValue::Nil) } else { Err(e) }),
            None => self.json.get(base, key),
        }
    }

    fn index(&self, base: &JValue, index: u32) -> Result<JValue, VarError> {
        self.json.index(base, index)
    }

    fn set(&self, base: &JValue, key: &Rc<str>, v: JValue) -> Result<(), VarError> {
        match node_of(base) {
            Some(node) => node.set(key, &v),
            None => self.json.set(base, key, v),
        }
    }

    fn set_index(&self, base: &JValue, index: u32, v: JValue) -> Result<(), VarError> {
        self.json.set_index(base, index, v)
    }

    fn call(&self, base: &JValue, key: &Rc<str>, arg: Option<JValue>) -> Result<JValue, VarError> {
        match node_of(base) {
            Some(node) => node.call(key, arg.as_ref()),
            None => self.json.call(base, key, arg),
        }
    }

    fn classify(&self, v: &JValue) -> Kind {
        self.json.classify(v)
    }

    fn str_eq(&self, v: &JValue, bytes: &[u8]) -> Option<bool> {
        self.json.str_eq(v, bytes)
    }

    fn elem(&self, v: &JValue, i: usize) -> JValue {
        self.json.elem(v, i)
    }

    fn type_of(&self, v: &JValue) -> Option<String> {
        self.json.type_of(v)
    }

    fn from_json(&self, json: &Json, registry: &ObjectRegistry<JValue>) -> Result<JValue, VarError> {
        self.json.from_json(json, registry)
    }

    fn wrap(&self, request: WrapRequest<'_, JValue>) -> Result<Wrapped<JValue>, VarError> {
        self.json.wrap(request)
    }

    fn destroy_wrapper(&self, var: VarId, wrapper: &JValue) -> Result<(), VarError> {
        self.json.destroy_wrapper(var, wrapper)
    }

    fn create_value(&self, type_name: &str) -> Result<JValue, VarError> {
        self.json.create_value(type_name)
    }
}
