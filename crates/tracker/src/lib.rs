//! # ui-gateway-tracker
//!
//! The change tracker: one per session, generic over a [`Resolver`] that knows the host language.
//!
//! The tracker owns the variable tree (ids, parents, paths, properties, access, priorities), turns
//! resolved host values into snapshots (value JSON without text), keeps the object registry that gives
//! objects stable `{"obj":N}` ids, finds what changed and assembles the updates (the model is
//! described in docs/variables.md). It knows nothing about Lua: the Lua backend plugs in `LuaResolver`, tests and the Rust backend
//! client plug in [`JsonResolver`].
//!
//! # Re-entrancy
//!
//! Resolvers run host code (Lua getters, setters, methods, wrapper constructors), and that code may call
//! back into the session: read a variable (`getValue`, `getProperty`), set a property, create or destroy
//! variables. The variable table therefore lives in a [`Shared`] handle (`Arc<parking_lot::Mutex<…>>`)
//! that host callbacks can hold (see [`Tracker::shared`]), and **the tracker never holds that lock while
//! it calls a resolver method that may run host code**. Every operation is a sequence of short critical
//! sections (copy out what the next host call needs: a value handle, an `Arc` of the path, an `Arc` of
//! the stored snapshot) and unlocked resolver calls; after each host call it re-finds the variable by
//! `(id, seq)` and gives up quietly if host code destroyed it meanwhile. Walks over children use a
//! creation-number cursor, so creates and destroys made by host code during a pass neither invalidate
//! iteration nor panic.
//!
//! The only resolver operations the tracker performs under the lock are cloning and dropping
//! `R::Value`/`R::Key` handles, and [`Resolver::peek`]; implementations must not run host code there
//! (Lua references and `Rc`s do not; a peek reads raw fields only). In debug builds a lock that stays
//! taken for 10 s panics with a message instead of hanging, so a re-entrancy bug shows up in tests.

// The wire vocabulary under the names the tracker's files use (`crate::ids`, `crate::protocol`).
use ui_gateway_wire::{ids, protocol};

mod budget;
mod children;
mod compute;
mod detect;
#[doc(hidden)]
pub mod fuzzing;
mod idmap;
pub mod json;
mod lifecycle;
pub mod path;
pub mod peek;
mod props;
pub mod registry;
mod shared;
mod siblings;
pub mod value;
mod variable;
mod write;

use serde_json::Value as Json;

use crate::ids::VarId;
use crate::protocol::{ErrorCode, Properties, PropertyWrite, ServerMessage};
pub use budget::{json_bytes, limit_hits, TrackerLimit, TrackerLimits};
pub use detect::{ChangeItem, Changes, PropOut, ValueOut};
pub use json::{JValue, JsonResolver};
pub use lifecycle::Created;
pub use path::{Path, Segment};
pub use peek::{Peek, PeekKey};
pub use registry::{ObjId, ObjectRegistry};
pub use shared::{Shared, WeakShared};
pub use value::{Kind, ObjRef, Snap};
pub use variable::Prop;

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

/// The connection (or backend link) a change came from, so it is not echoed back to it (docs/variables.md "Change detection"). Opaque
/// to the tracker; the session uses its connection ids.
pub type Origin = u64;

/// A wrapper computation request (docs/variables.md "Wrappers"), handed to [`Resolver::wrap`].
pub struct WrapRequest<'a, V> {
    /// The variable being wrapped (Lua passes a handle for it to `T:new(variable)`).
    pub var: VarId,
    /// The `wrapper` property: the wrapper type's name.
    pub wrapper: &'a str,
    /// The variable's raw value (never nil: a nil raw value has no wrapper).
    pub raw: &'a V,
    /// The current `new`-style wrapper, if any (what `variable:getWrapper()` returns).
    pub existing: Option<&'a V>,
}

/// What [`Resolver::wrap`] decided.
pub enum Wrapped<V> {
    /// Keep the existing wrapper (same object, same id).
    Reused,
    /// A new wrapper object replaces the old one (whose `destroy` the tracker calls).
    New(V),
    /// A `computeValue`-style result: the sent and navigation value; recomputed every pass.
    Transform(V),
    /// No wrapper: the sent value is the raw value.
    None,
}

/// What the tracker needs from a host language (ARCHITECTURE.md). Semantics are normative,
/// names are ours.
///
/// Contract for re-entrancy: any method may run host code that calls back into the tracker's
/// [`Shared`] handle, except `Clone`/`Drop` of `Value` and `Key`, which the tracker does under its lock.
pub trait Resolver {
    /// A host value (a Lua value, an `Rc` JSON node…). Cloning must be cheap (a handle).
    type Value: Clone;
    /// A host key interned once at create, so hot paths do not re-hash names.
    type Key: Clone;

    /// The host's nil.
    fn nil(&self) -> Self::Value;
    /// Whether `v` is nil. Used on writes, wrappers and `create=T` only (reads rely on `get`/`index`/
    /// `call` returning nil for a nil base). The default classifies; override it when that is costly.
    fn is_nil(&self, v: &Self::Value) -> bool {
        matches!(self.classify(v), Kind::Nil)
    }
    /// Interns a field or method name.
    fn intern(&self, name: &str) -> Result<Self::Key, VarError>;
    /// `base[name]` with the host's indexing rules (prototype defaults, methods). A nil base gives nil;
    /// a base that cannot be indexed gives `path-failure`.
    fn get(&self, base: &Self::Value, key: &Self::Key) -> Result<Self::Value, VarError>;
    /// `base[index + 1]` (indices are 0-based on the wire), same rules as `get`.
    fn index(&self, base: &Self::Value, index: u32) -> Result<Self::Value, VarError>;
    /// `base[name] = v`.
    fn set(&self, base: &Self::Value, key: &Self::Key, v: Self::Value) -> Result<(), VarError>;
    /// `base[index + 1] = v`.
    fn set_index(&self, base: &Self::Value, index: u32, v: Self::Value) -> Result<(), VarError>;
    /// Calls method `name` of `base`: `None` = `m(self)`, `Some(v)` = `m(self, v)`. A nil base gives nil;
    /// a non-callable `base[name]` gives `path-failure`.
    fn call(&self, base: &Self::Value, key: &Self::Key, arg: Option<Self::Value>) -> Result<Self::Value, VarError>;
    /// What kind of value this is, for snapshots (docs/variables.md "Values").
    fn classify(&self, v: &Self::Value) -> Kind;
    /// Compares a string value with `bytes` without copying it: `Some(equal)` if `v` is a string, `None`
    /// otherwise or when unsupported (the tracker then classifies). Lets an unchanged string cost no
    /// allocation (P2).
    fn str_eq(&self, _v: &Self::Value, _bytes: &[u8]) -> Option<bool> {
        None
    }
    /// Peeks `base[key]` for each key, in order, without running host code: `f(i, peek)` is called once
    /// per key, with [`Peek::Unknown`] wherever only a full read could tell (an absent field that a
    /// prototype or `__index` may supply, a table, a function…). Returns false, having called nothing,
    /// when the resolver cannot peek into `base`.
    ///
    /// A pass calls this under the tracker's lock to confirm a run of unchanged sibling variables with
    /// one host entry instead of a full read each (P5); anything not confirmed is read normally. The
    /// default peeks nothing.
    fn peek(&self, _base: &Self::Value, _keys: &[PeekKey<'_, Self::Key>], _f: &mut dyn FnMut(usize, Peek<'_>)) -> bool {
        false
    }
    /// Element `i` (0-based) of a value classified as `Kind::Seq`.
    fn elem(&self, v: &Self::Value, i: usize) -> Self::Value;
    /// The derived `type` of a value (docs/variables.md "Values"), if any.
    fn type_of(&self, v: &Self::Value) -> Option<String>;
    /// Converts written value JSON to a host value; `{"obj":N}` is looked up in `registry` (unknown →
    /// `not-found`). The registry passed holds at least the ids the JSON mentions.
    // The name predates this trait's users (`LuaResolver`); renaming it would break them.
    #[allow(clippy::wrong_self_convention)]
    fn from_json(&self, json: &Json, registry: &ObjectRegistry<Self::Value>) -> Result<Self::Value, VarError>;
    /// Computes a variable's wrapper (docs/variables.md "Wrappers", docs/viewdefs.md "Other wrappers"). Called on the first computation, when the raw
    /// snapshot changes, when the `wrapper` property changes, and every pass for `Transform` wrappers.
    /// The default supports no wrapper types.
    fn wrap(&self, _request: WrapRequest<'_, Self::Value>) -> Result<Wrapped<Self::Value>, VarError> {
        Ok(Wrapped::None)
    }
    /// Destroys a replaced or orphaned `new`-style wrapper (its `destroy` method, if any).
    fn destroy_wrapper(&self, _var: VarId, _wrapper: &Self::Value) -> Result<(), VarError> {
        Ok(())
    }
    /// Instantiates type `type_name` for the `create` property (docs/variables.md "Access"). The default knows no types.
    fn create_value(&self, type_name: &str) -> Result<Self::Value, VarError> {
        Err(VarError::new(ErrorCode::NotFound, format!("unknown type {type_name:?}")))
    }
}

/// Who resolves a variable: the session's Lua state (or, for the Rust backend client, its objects) or an
/// external backend (hybrid mode). The tracker holds locally resolved variables only; the gateway's
/// session keeps backend-owned ones in its own mirror (`src/session/remote.rs`) and uses this to say
/// which of the two holds an id.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    Lua,
    Remote,
}

/// The `access` property (docs/variables.md "Access").
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Access {
    R,
    W,
    #[default]
    Rw,
    Action,
}

impl Access {
    /// Parses the property; `""` is the default `rw`, anything unknown is `None` (`bad-message`).
    pub fn parse(s: &str) -> Option<Access> {
        match s {
            "" | "rw" => Some(Access::Rw),
            "r" => Some(Access::R),
            "w" => Some(Access::W),
            "action" => Some(Access::Action),
            _ => None,
        }
    }

    /// Read and pushed (`r`, `rw`); `w` and `action` variables have no value.
    pub fn readable(self) -> bool {
        matches!(self, Access::R | Access::Rw)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Access::R => "r",
            Access::W => "w",
            Access::Rw => "rw",
            Access::Action => "action",
        }
    }
}

/// Who sets properties (the rule table is `protocol::property::decide`).
pub use crate::protocol::Writer;

/// The per-session change tracker: a resolver plus the [`Shared`] variable table.
///
/// Methods take `&mut self` where they change the tree, to keep call sites honest; host code reaches
/// the same table through [`Tracker::shared`] while these run.
pub struct Tracker<R: Resolver> {
    resolver: R,
    shared: Shared<R>,
}

impl<R: Resolver> Tracker<R> {
    /// A tracker with no variables (the seeds' `Tracker::new(resolver)`).
    pub fn new(resolver: R) -> Self {
        Tracker { resolver, shared: Shared::new() }
    }

    pub fn resolver(&self) -> &R {
        &self.resolver
    }

    /// A handle on the variable table for host callbacks (clone it into Lua closures; prefer
    /// [`Shared::downgrade`] where the handle would be stored inside host values, to avoid a cycle).
    pub fn shared(&self) -> Shared<R> {
        self.shared.clone()
    }

    /// Creates (or, for an existing root, replaces the value of) a root variable showing `value`:
    /// variable 1 from `createAppVariable`, or a Lua value-variable. Computed at once.
    pub fn create_root(&mut self, id: VarId, value: R::Value, props: &[PropertyWrite]) -> Result<(), VarError> {
        self.shared.create_root(&self.resolver, id, value, props)
    }

    /// Creates a path variable under `parent` (docs/variables.md), owned like its parent; readable ones are computed
    /// at once. See [`Shared::create`].
    pub fn create(
        &mut self,
        id: VarId,
        parent: VarId,
        props: &[PropertyWrite],
        writer: Writer,
    ) -> Result<Created, VarError> {
        self.shared.create(&self.resolver, id, parent, props, writer)
    }

    /// An inbound `update`: properties first, then the value if present. Returns the errors for the
    /// sender (empty on success).
    pub fn update(
        &mut self,
        id: VarId,
        properties: &[PropertyWrite],
        value: Option<&Json>,
        writer: Writer,
        origin: Option<Origin>,
    ) -> Vec<VarError> {
        self.shared.update(&self.resolver, id, properties, value, writer, origin)
    }

    /// Sets properties (docs/variables.md "Properties"). See [`Shared::set_properties`].
    pub fn set_properties(
        &mut self,
        id: VarId,
        props: &[PropertyWrite],
        writer: Writer,
        origin: Option<Origin>,
    ) -> Result<(), VarError> {
        self.shared.set_properties(id, props, writer, origin)
    }

    /// Writes a value (docs/variables.md "Access"). See [`Shared::write`].
    pub fn write(&mut self, id: VarId, value: &Json, origin: Option<Origin>) -> Result<(), VarError> {
        self.shared.write(&self.resolver, id, value, origin)
    }

    /// Destroys a variable and its subtree; returns the ids children first (unknown id → empty).
    pub fn destroy(&mut self, id: VarId) -> Vec<VarId> {
        self.shared.destroy(&self.resolver, id)
    }

    /// Sets whether anybody watches the variable; an inactive variable and its subtree are not computed.
    pub fn set_active(&mut self, id: VarId, active: bool) {
        self.shared.set_active(id, active)
    }

    /// One detection pass and the ordered updates it yields (docs/variables.md "Change detection").
    pub fn detect_changes(&mut self) -> Changes {
        self.shared.detect(&self.resolver)
    }

    /// The full state of a variable as a `watch` answers it: value (null when nil; omitted for `w`,
    /// `action` variables), every property, or its current error in the value's place.
    pub fn full_state(&self, id: VarId) -> Vec<ServerMessage> {
        self.shared.full_state(id)
    }

    pub fn exists(&self, id: VarId) -> bool {
        self.shared.exists(id)
    }

    pub fn len(&self) -> usize {
        self.shared.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shared.is_empty()
    }

    /// Current properties of a variable (for debug pages and replies).
    pub fn properties(&self, id: VarId) -> Properties {
        self.shared.properties(id)
    }

    /// One property's current value.
    pub fn property(&self, id: VarId, name: &str) -> Option<String> {
        self.shared.property(id, name)
    }

    /// Number of registered objects (distinct objects in live snapshots).
    pub fn registry_len(&self) -> usize {
        self.shared.registry_len()
    }
}

#[cfg(test)]
mod siblings_tests;
#[cfg(test)]
mod tests;
