//! The change tracker: one per session, generic over a [`Resolver`] that knows the host language.
//!
//! The tracker owns the variable tree (ids, parents, paths, properties, access, priorities), turns
//! resolved host values into snapshots (value JSON without text), keeps the object registry that gives
//! tables stable `{"obj":N}` ids, and finds what changed. It knows nothing about Lua: the Lua backend
//! plugs in `LuaResolver`, tests and the Rust backend client plug in `JsonResolver`.
//!
//! Re-entrancy: resolvers call into host code (Lua getters, setters, methods) and that code may call back
//! into the session (`session:createVariable`, `variable:getValue()`). The tracker therefore never holds a
//! borrow of its own state across a resolver call that runs host code.

pub mod path;
pub mod registry;
pub mod value;

use std::collections::HashMap;

use serde_json::Value as Json;

use crate::ids::VarId;
use crate::protocol::{ErrorCode, Priority, Properties, PropertyWrite, ServerMessage, UpdateOut};
pub use path::{Path, Segment};
pub use registry::{ObjId, ObjectRegistry};
pub use value::{Kind, Snap};

/// A typed per-variable failure (`path-failure`, `lua-error`, …).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{code}: {description}")]
pub struct VarError {
    pub code: ErrorCode,
    pub description: String,
}

impl VarError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        VarError { code, description: description.into() }
    }
}

/// What the tracker needs from a host language (lua-and-tracking.md §0). Semantics are normative,
/// names are ours.
pub trait Resolver {
    /// A host value (a Lua value, an `Rc` JSON node…). Cloning must be cheap (a handle).
    type Value: Clone;
    /// A host key interned once at create, so hot paths do not re-hash names.
    type Key: Clone;

    /// The host's nil.
    fn nil(&self) -> Self::Value;
    /// Interns a field or method name.
    fn intern(&self, name: &str) -> Result<Self::Key, VarError>;
    /// `base[name]` with the host's indexing rules (prototype defaults, methods).
    fn get(&self, base: &Self::Value, key: &Self::Key) -> Result<Self::Value, VarError>;
    /// `base[index + 1]` (indices are 0-based on the wire).
    fn index(&self, base: &Self::Value, index: u32) -> Result<Self::Value, VarError>;
    /// `base[name] = v`.
    fn set(&self, base: &Self::Value, key: &Self::Key, v: Self::Value) -> Result<(), VarError>;
    /// `base[index + 1] = v`.
    fn set_index(&self, base: &Self::Value, index: u32, v: Self::Value) -> Result<(), VarError>;
    /// Calls method `name` of `base`: `None` = read (`m(self)`), `Some(v)` = write (`m(self, v)`).
    fn call(&self, base: &Self::Value, key: &Self::Key, arg: Option<Self::Value>) -> Result<Self::Value, VarError>;
    /// What kind of value this is, for snapshots (§3.1).
    fn classify(&self, v: &Self::Value) -> Kind;
    /// Element `i` (0-based) of a value classified as `Kind::Seq`.
    fn elem(&self, v: &Self::Value, i: usize) -> Self::Value;
    /// The derived `type` of a value (§3.3), if any.
    fn type_of(&self, v: &Self::Value) -> Option<String>;
    /// Converts written value JSON to a host value; `{"obj":N}` is looked up in the registry.
    #[allow(clippy::wrong_self_convention)]
    fn from_json(&self, json: &Json, registry: &ObjectRegistry<Self::Value>) -> Result<Self::Value, VarError>;
}

/// Who resolves a variable: the session's Lua state or an external backend (hybrid mode).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    Lua,
    Remote,
}

/// A stored property value with its delivery priority.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Prop {
    pub value: String,
    pub priority: Priority,
}

/// One variable of the tree.
pub struct Variable<V> {
    pub id: VarId,
    pub parent: Option<VarId>,
    pub children: Vec<VarId>,
    /// Creation number: orders roots, siblings and emission.
    pub seq: u64,
    pub owner: Owner,
    /// Insertion-ordered properties; empty values are never stored.
    pub props: Vec<(String, Prop)>,
    /// Value of a root (variable 1, Lua value-variables): it has no path.
    pub fixed: Option<V>,
    /// Last resolved value and its snapshot.
    pub raw: Option<V>,
    pub raw_snap: Option<Snap>,
    /// Snapshot last reported as the value.
    pub sent_snap: Option<Snap>,
    pub error: Option<VarError>,
}

impl<V> Variable<V> {
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.props.iter().find(|(n, _)| n == name).map(|(_, p)| p.value.as_str())
    }

    fn set_prop(&mut self, name: &str, value: &str, priority: Option<Priority>) {
        match self.props.iter().position(|(n, _)| n == name) {
            Some(i) if value.is_empty() => {
                self.props.remove(i);
            }
            Some(i) => {
                let p = &mut self.props[i].1;
                p.value = value.to_string();
                if let Some(pr) = priority {
                    p.priority = pr;
                }
            }
            None if value.is_empty() => {}
            None => self
                .props
                .push((name.to_string(), Prop { value: value.to_string(), priority: priority.unwrap_or_default() })),
        }
    }
}

/// The per-session change tracker.
pub struct Tracker<R: Resolver> {
    resolver: R,
    vars: HashMap<VarId, Variable<R::Value>>,
    roots: Vec<VarId>,
    registry: ObjectRegistry<R::Value>,
    next_seq: u64,
}

impl<R: Resolver> Tracker<R> {
    /// A tracker with no variables (the seeds' `Tracker::new(resolver)`).
    pub fn new(resolver: R) -> Self {
        Tracker { resolver, vars: HashMap::new(), roots: Vec::new(), registry: ObjectRegistry::new(), next_seq: 0 }
    }

    pub fn resolver(&self) -> &R {
        &self.resolver
    }

    pub fn exists(&self, id: VarId) -> bool {
        self.vars.contains_key(&id)
    }

    pub fn variable(&self, id: VarId) -> Option<&Variable<R::Value>> {
        self.vars.get(&id)
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    pub fn registry(&self) -> &ObjectRegistry<R::Value> {
        &self.registry
    }

    /// Creates (or, for an existing root, replaces the value of) a root variable showing `value`:
    /// variable 1 from `createAppVariable`, or a Lua value-variable.
    pub fn create_root(&mut self, id: VarId, value: R::Value, props: &[PropertyWrite]) -> Result<(), VarError> {
        if let Some(var) = self.vars.get_mut(&id) {
            if var.parent.is_some() {
                return Err(VarError::new(ErrorCode::IdInUse, format!("variable {id} exists")));
            }
            var.fixed = Some(value);
        } else {
            let seq = self.next_seq;
            self.next_seq += 1;
            let mut var = Variable {
                id,
                parent: None,
                children: Vec::new(),
                seq,
                owner: Owner::Lua,
                props: Vec::new(),
                fixed: Some(value),
                raw: None,
                raw_snap: None,
                sent_snap: None,
                error: None,
            };
            for p in props {
                var.set_prop(&p.name, &p.value, p.priority);
            }
            self.vars.insert(id, var);
            self.roots.push(id);
        }
        self.refresh(id);
        Ok(())
    }

    /// Re-resolves one variable's value and re-derives its `type`.
    fn refresh(&mut self, id: VarId) {
        let Some(var) = self.vars.get(&id) else { return };
        let Some(raw) = var.fixed.clone() else { return };
        let snap = value::snapshot(&self.resolver, &raw, &mut self.registry, 0);
        let ty = self.resolver.type_of(&raw).unwrap_or_default();
        let var = self.vars.get_mut(&id).expect("checked above");
        match snap {
            Ok(snap) => {
                if let Some(old) = var.raw_snap.replace(snap) {
                    self.registry.release_snap(&old);
                }
                var.raw = Some(raw);
                var.error = None;
            }
            Err(e) => var.error = Some(e),
        }
        var.set_prop("type", &ty, None);
    }

    /// The full state of a variable as a `watch` answers it: value (null when nil; omitted for `w` and
    /// `action`), every property, or its current error in the value's place.
    pub fn full_state(&self, id: VarId) -> Vec<ServerMessage> {
        let Some(var) = self.vars.get(&id) else {
            return vec![ServerMessage::error(id, ErrorCode::NotFound, format!("variable {id} not found"))];
        };
        let mut out = Vec::new();
        let mut update = UpdateOut { var_id: id, ..Default::default() };
        for (name, p) in &var.props {
            update.properties.set(name, &p.value);
        }
        let readable = !matches!(var.prop("access"), Some("w") | Some("action"));
        if let Some(e) = &var.error {
            out.push(ServerMessage::error(id, e.code, e.description.clone()));
        } else if readable {
            update.value = Some(var.raw_snap.as_ref().map(|s| s.to_json()).unwrap_or(Json::Null));
        }
        if update.value.is_some() || !update.properties.is_empty() {
            out.insert(0, ServerMessage::Update(update));
        }
        out
    }

    /// Current properties of a variable (for debug pages and replies).
    pub fn properties(&self, id: VarId) -> Properties {
        let mut props = Properties::default();
        if let Some(var) = self.vars.get(&id) {
            for (name, p) in &var.props {
                props.set(name, &p.value);
            }
        }
        props
    }
}

#[cfg(test)]
mod tests;
