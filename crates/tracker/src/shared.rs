//! The variable table behind a lock, and the handle ([`Shared`]) that both the [`Tracker`] and host
//! callbacks use to reach it. See the module docs of `tracker` for the locking discipline.
//!
//! [`Tracker`]: super::Tracker

use std::sync::{Arc, Weak};

use parking_lot::{Mutex, MutexGuard};
use serde_json::Value as Json;

use super::budget::{Bytes, TrackerLimits};
use super::children::Children;
use super::idmap::IdMap;
use super::registry::{ObjId, ObjectRegistry};
use super::variable::{ValueNote, Var};
use super::{Access, Origin, Resolver, VarError};
use crate::ids::VarId;
use crate::protocol::{ErrorCode, Priority, Properties, ServerMessage, UpdateOut};

/// A variable as found at some point: its id and creation number. After any host call the tracker
/// re-finds the variable by both, so a variable destroyed (and its id reused) meanwhile is not confused
/// with the original.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct At {
    pub id: VarId,
    pub seq: u64,
}

/// Everything the tracker stores for one session.
pub(crate) struct State<R: Resolver> {
    /// Boxed: a variable is ~380 bytes and the table runs 50–87 % full, so inline entries would
    /// leave several kilobytes of empty slots per session (issue 6 memory profile).
    pub vars: IdMap<VarId, Box<Var<R>>>,
    pub roots: Children,
    pub registry: ObjectRegistry<R::Value>,
    pub next_seq: u64,
    /// Variables whose `pending` was empty when a change was noted (may hold stale entries).
    pub dirty: Vec<(VarId, u64)>,
    /// A pass is running (a nested `detect` from host code returns nothing).
    pub in_pass: bool,
    /// Stored property and snapshot bytes, and the limits on them.
    pub bytes: Bytes,
}

impl<R: Resolver> State<R> {
    pub fn live(&self, at: At) -> Option<&Var<R>> {
        self.vars.get(&at.id).filter(|v| v.seq == at.seq).map(|v| &**v)
    }

    pub fn live_mut(&mut self, at: At) -> Option<&mut Var<R>> {
        self.vars.get_mut(&at.id).filter(|v| v.seq == at.seq).map(|v| &mut **v)
    }

    /// The value a child of `id` starts from (docs/variables.md "Paths"): the wrapper, else the raw
    /// value (a root's `fixed` before its first computation). `None` = nil. Variables without a value
    /// (`w`, `action`)
    /// make their children fail with `path-failure`.
    pub fn nav_value(&self, id: VarId) -> Result<Option<R::Value>, VarError> {
        let var = self
            .vars
            .get(&id)
            .ok_or_else(|| VarError::new(ErrorCode::PathFailure, format!("variable {id} does not exist")))?;
        if !var.access.readable() {
            return Err(VarError::new(
                ErrorCode::PathFailure,
                format!("variable {id} has no value (access {})", var.access.as_str()),
            ));
        }
        Ok(var.wrapper.value().or(var.raw.as_ref()).or(var.fixed.as_ref()).cloned())
    }

    /// Whether the variable or one of its ancestors is marked `inactive` (O(depth)).
    pub fn inactive_chain(&self, id: VarId) -> bool {
        let mut cur = self.vars.get(&id);
        while let Some(var) = cur {
            if var.inactive {
                return true;
            }
            cur = var.parent.and_then(|p| self.vars.get(&p));
        }
        false
    }

    /// Records a value change or error for the next emission.
    pub fn note_value(&mut self, at: At, note: ValueNote) {
        if let Some(var) = self.vars.get_mut(&at.id).filter(|v| v.seq == at.seq) {
            var.pending_mut(&mut self.dirty).value = Some(note);
        }
    }

    /// Records a property change for the next emission.
    pub fn note_prop(&mut self, at: At, name: &str, priority: Priority, origin: Option<Origin>) {
        if let Some(var) = self.vars.get_mut(&at.id).filter(|v| v.seq == at.seq) {
            var.pending_mut(&mut self.dirty).note_prop(name.to_string(), priority, origin);
        }
    }
}

/// The shared variable table of one tracker. Cheap to clone; host callbacks keep one to read and change
/// variables while the tracker is calling into host code. Operations that run host code themselves
/// take the resolver as an argument, so the handle holds no resolver (and no host state).
pub struct Shared<R: Resolver> {
    inner: Arc<Mutex<State<R>>>,
}

impl<R: Resolver> Clone for Shared<R> {
    fn clone(&self) -> Self {
        Shared { inner: self.inner.clone() }
    }
}

/// A non-owning [`Shared`]: for callbacks stored inside host values, which the table itself keeps
/// alive (a strong handle there would be a reference cycle).
pub struct WeakShared<R: Resolver> {
    inner: Weak<Mutex<State<R>>>,
}

impl<R: Resolver> Clone for WeakShared<R> {
    fn clone(&self) -> Self {
        WeakShared { inner: self.inner.clone() }
    }
}

impl<R: Resolver> WeakShared<R> {
    /// The table, if its tracker still exists.
    pub fn upgrade(&self) -> Option<Shared<R>> {
        self.inner.upgrade().map(|inner| Shared { inner })
    }
}

impl<R: Resolver> Default for Shared<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Resolver> Shared<R> {
    /// An empty table.
    pub fn new() -> Self {
        Shared {
            inner: Arc::new(Mutex::new(State {
                vars: IdMap::default(),
                roots: Children::default(),
                registry: ObjectRegistry::new(),
                next_seq: 0,
                dirty: Vec::new(),
                in_pass: false,
                bytes: Bytes::default(),
            })),
        }
    }

    pub fn downgrade(&self) -> WeakShared<R> {
        WeakShared { inner: Arc::downgrade(&self.inner) }
    }

    /// Takes the lock. Callers keep the guard for a short, host-free critical section only. Debug builds
    /// turn a lock held for 10 s (a re-entrancy bug) into a panic instead of a silent hang.
    pub(super) fn lock(&self) -> MutexGuard<'_, State<R>> {
        #[cfg(debug_assertions)]
        {
            self.inner.try_lock_for(std::time::Duration::from_secs(10)).expect(
                "tracker lock held for 10 s: the tracker called host code while locked, or another thread holds it",
            )
        }
        #[cfg(not(debug_assertions))]
        {
            self.inner.lock()
        }
    }

    /// Runs `f` on a live variable under the lock.
    pub(super) fn with_var<T>(&self, at: At, f: impl FnOnce(&mut Var<R>) -> T) -> Option<T> {
        self.lock().live_mut(at).map(f)
    }

    pub fn exists(&self, id: VarId) -> bool {
        self.lock().vars.contains_key(&id)
    }

    /// Sets the limits on properties, tracked bytes and variables (defaults: [`TrackerLimits::default`]).
    pub fn set_limits(&self, limits: TrackerLimits) {
        self.lock().bytes.limits = limits;
    }

    pub fn limits(&self) -> TrackerLimits {
        self.lock().bytes.limits
    }

    /// Stored property bytes plus snapshot bytes: what `--max-session-bytes` bounds.
    pub fn tracked_bytes(&self) -> usize {
        self.lock().bytes.total()
    }

    pub fn len(&self) -> usize {
        self.lock().vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().vars.is_empty()
    }

    /// One property's current value (`getProperty`).
    pub fn property(&self, id: VarId, name: &str) -> Option<String> {
        self.lock().vars.get(&id).and_then(|v| v.prop(name).map(str::to_string))
    }

    /// All current properties, in insertion order.
    pub fn properties(&self, id: VarId) -> Properties {
        let mut props = Properties::default();
        if let Some(var) = self.lock().vars.get(&id) {
            for (name, p) in &var.props {
                props.set(name, &p.value);
            }
        }
        props
    }

    /// The last resolved raw value (`getValue`): a root's value, or the cached value of a readable
    /// variable; `None` for unknown, `w` and `action` variables.
    pub fn value(&self, id: VarId) -> Option<R::Value> {
        let st = self.lock();
        let var = st.vars.get(&id)?;
        if !var.resolves() {
            return None;
        }
        var.raw.clone().or_else(|| var.fixed.clone())
    }

    /// The current `new`-style wrapper (`getWrapper`).
    pub fn wrapper(&self, id: VarId) -> Option<R::Value> {
        match &self.lock().vars.get(&id)?.wrapper {
            super::variable::WrapState::Object(w) => Some(w.clone()),
            _ => None,
        }
    }

    /// The value JSON last reported for the variable (null when nil), if it has one.
    pub fn value_json(&self, id: VarId) -> Option<Json> {
        let st = self.lock();
        let var = st.vars.get(&id)?;
        if !var.resolves() {
            return None;
        }
        Some(var.sent_snap.as_ref().map_or(Json::Null, |s| s.to_json()))
    }

    pub fn parent(&self, id: VarId) -> Option<VarId> {
        self.lock().vars.get(&id)?.parent
    }

    /// Live children in creation order.
    pub fn children(&self, id: VarId) -> Vec<VarId> {
        let st = self.lock();
        st.vars.get(&id).map(|v| v.children.live().collect()).unwrap_or_default()
    }

    /// Live roots in creation order.
    pub fn roots(&self) -> Vec<VarId> {
        let st = self.lock();
        st.roots.live().collect()
    }

    pub fn access(&self, id: VarId) -> Option<Access> {
        self.lock().vars.get(&id).map(|v| v.access)
    }

    /// The variable's current read error.
    pub fn error(&self, id: VarId) -> Option<VarError> {
        self.lock().vars.get(&id)?.error.clone()
    }

    pub fn is_active(&self, id: VarId) -> bool {
        self.lock().vars.get(&id).is_some_and(|v| v.active)
    }

    /// Sets whether anybody watches the variable (the protocol layer's watch tally: true while > 0).
    /// An inactive variable and its subtree are skipped by passes and keep their caches; when it becomes
    /// active again the next pass recomputes it.
    pub fn set_active(&self, id: VarId, active: bool) {
        if let Some(var) = self.lock().vars.get_mut(&id) {
            var.active = active;
        }
    }

    /// Number of registered objects.
    pub fn registry_len(&self) -> usize {
        self.lock().registry.len()
    }

    /// The object currently known as `id`.
    pub fn lookup_object(&self, id: ObjId) -> Option<R::Value> {
        self.lock().registry.lookup(id).cloned()
    }

    /// The full state of a variable as a `watch` answers it: an `update` with the value (null when nil;
    /// omitted for `w` and `action` variables) and every property, and the current error, if
    /// any, in the value's place. Unknown ids give `not-found`.
    pub fn full_state(&self, id: VarId) -> Vec<ServerMessage> {
        let st = self.lock();
        let Some(var) = st.vars.get(&id) else {
            return vec![ServerMessage::error(id, ErrorCode::NotFound, format!("variable {id} not found"))];
        };
        let mut update = UpdateOut { var_id: id, ..Default::default() };
        for (name, p) in &var.props {
            update.properties.set(name, &p.value);
        }
        let mut out = Vec::with_capacity(2);
        let error = var.error.as_ref().filter(|_| var.resolves());
        if error.is_none() && var.resolves() {
            update.value = Some(var.sent_snap.as_ref().map_or(Json::Null, |s| s.to_json()));
        }
        if update.value.is_some() || !update.properties.is_empty() {
            out.push(ServerMessage::Update(update));
        }
        if let Some(e) = error {
            out.push(ServerMessage::error(id, e.code, e.description.clone()));
        }
        out
    }
}
