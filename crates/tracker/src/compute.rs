//! Computing one variable: walking its path from the parent's cache (docs/variables.md "Paths"), storing a changed value with
//! its snapshot (docs/variables.md "Values"), rewrapping (docs/variables.md "Wrappers"), the sent snapshot and `type` (docs/variables.md "Values").
//!
//! Every resolver call here happens without the tracker's lock; each critical section re-finds the
//! variable by `(id, seq)` and stops if host code destroyed it meanwhile.

use std::sync::Arc;

use super::shared::{At, Shared};
use super::value;
use super::variable::{LocalPath, Seg, WrapState};
use super::{Resolver, VarError, WrapRequest, Wrapped};
use crate::ids::VarId;
use crate::protocol::property::name as property;
use crate::protocol::ErrorCode;

fn path_failure(description: impl Into<String>) -> VarError {
    VarError::new(ErrorCode::PathFailure, description)
}

/// How a walk treats nil.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// Reading: nil before a segment gives nil (the resolver's `get`/`index`/`call` return nil).
    Read,
    /// Writing: a nil before a segment is a `path-failure`.
    Strict,
}

/// The last segment of a write target and the value it applies to.
pub(crate) struct Target<R: Resolver> {
    pub base: R::Value,
    pub path: Arc<LocalPath<R::Key>>,
}

impl<R: Resolver> Target<R> {
    pub fn last(&self) -> &Seg<R::Key> {
        self.path.segs.last().expect("local paths are non-empty")
    }
}

impl<R: Resolver> Shared<R> {
    /// The navigation value of `id` as a host value (nil when it has none yet).
    pub(crate) fn nav_value(&self, res: &R, id: VarId) -> Result<R::Value, VarError> {
        let v = self.lock().nav_value(id)?;
        Ok(v.unwrap_or_else(|| res.nil()))
    }

    /// Walks `segs` from `start`, the value of variable `anchor`. `..` steps back inside the path, or,
    /// at the start, climbs one variable: the start becomes the anchor's own start value (above a root →
    /// `path-failure`).
    pub(crate) fn walk(
        &self,
        res: &R,
        mut anchor: VarId,
        start: R::Value,
        path: &LocalPath<R::Key>,
        segs: &[Seg<R::Key>],
        mode: Walk,
    ) -> Result<R::Value, VarError> {
        let mut cur = start;
        // Values passed on the way, for `..` (allocates only if a push happens).
        let mut trail: Vec<R::Value> = Vec::new();
        for seg in segs {
            if mode == Walk::Strict && !matches!(seg, Seg::Up) && res.is_nil(&cur) {
                return Err(path_failure("nil in the middle of the path"));
            }
            let next = match seg {
                Seg::Up => {
                    if let Some(prev) = trail.pop() {
                        cur = prev;
                    } else {
                        let parent = self
                            .lock()
                            .vars
                            .get(&anchor)
                            .and_then(|v| v.parent)
                            .ok_or_else(|| path_failure("'..' above a root"))?;
                        cur = self.nav_value(res, parent)?;
                        anchor = parent;
                    }
                    continue;
                }
                Seg::Name(k) => res.get(&cur, k)?,
                Seg::Index(i) => res.index(&cur, *i)?,
                Seg::Call(k) => res.call(&cur, k, None)?,
                Seg::CallArg(_) => return Err(path_failure("m(_) is never called on reads")),
            };
            if path.has_up {
                trail.push(std::mem::replace(&mut cur, next));
            } else {
                cur = next;
            }
        }
        Ok(cur)
    }

    /// Reads a variable's value from its parent's cache (a root shows `fixed`). `Ok(None)`: the variable
    /// is gone.
    pub(crate) fn resolve(&self, res: &R, at: At) -> Result<Option<R::Value>, VarError> {
        let (parent, path) = {
            let st = self.lock();
            let Some(var) = st.live(at) else { return Ok(None) };
            if let Some(fixed) = &var.fixed {
                return Ok(Some(fixed.clone()));
            }
            match (var.parent, &var.path) {
                (Some(parent), Some(path)) => (parent, path.clone()),
                _ => return Err(path_failure(format!("variable {} has no path", at.id))),
            }
        };
        let start = self.nav_value(res, parent)?;
        self.walk(res, parent, start, &path, &path.segs, Walk::Read).map(Some)
    }

    /// Navigates all but the last segment strictly (docs/variables.md "Access"): the value the last segment applies to.
    /// `Ok(None)`: the variable is gone.
    pub(crate) fn target(&self, res: &R, at: At) -> Result<Option<Target<R>>, VarError> {
        let (parent, path) = {
            let st = self.lock();
            let Some(var) = st.live(at) else { return Ok(None) };
            match (var.parent, &var.path) {
                (Some(parent), Some(path)) => (parent, path.clone()),
                _ => return Err(VarError::new(ErrorCode::AccessDenied, format!("variable {} has no path", at.id))),
            }
        };
        let start = self.nav_value(res, parent)?;
        let init = &path.segs[..path.segs.len() - 1];
        let base = self.walk(res, parent, start, &path, init, Walk::Strict)?;
        if !matches!(path.segs.last(), Some(Seg::Up)) && res.is_nil(&base) {
            return Err(path_failure("nil before the last segment"));
        }
        Ok(Some(Target { base, path }))
    }

    /// Takes a freshly resolved raw value: stores it with a new snapshot if it differs from the cached
    /// one (registry counts move only then), rewraps when docs/variables.md "Wrappers" says so, refreshes the sent snapshot and,
    /// when that changed, the `type`. Returns whether the sent snapshot changed; `Ok(None)` if the
    /// variable vanished. An unchanged value keeps its old handle and costs no allocation.
    pub(crate) fn apply_raw(&self, res: &R, at: At, raw: R::Value) -> Result<Option<bool>, VarError> {
        let Some((stored, rewrap, computed)) =
            self.with_var(at, |v| (v.raw_snap.clone(), v.rewrap, matches!(v.wrapper, WrapState::Computed(_))))
        else {
            return Ok(None);
        };
        let mut store = !stored.as_ref().is_some_and(|s| value::matches(res, &raw, s));
        if !store {
            // Host code run by `classify` may have stored another value meanwhile.
            let Some(same) =
                self.with_var(at, |v| v.raw_snap.as_ref().zip(stored.as_ref()).is_some_and(|(a, b)| Arc::ptr_eq(a, b)))
            else {
                return Ok(None);
            };
            store = !same;
        }
        if store {
            let fresh = value::build(res, &raw)?;
            let mut st = self.lock();
            let st = &mut *st;
            let Some(var) = st.vars.get_mut(&at.id).filter(|v| v.seq == at.seq) else { return Ok(None) };
            let snap = Arc::new(fresh.commit(&mut st.registry));
            st.bytes.book_snap(var.raw_snap.as_deref(), Some(&snap));
            if let Some(old) = var.raw_snap.replace(snap) {
                old.release_objs(&mut st.registry);
            }
            var.raw = Some(raw.clone());
        }
        let rewrapped = store || rewrap;
        if rewrapped || computed {
            self.rewrap(res, at, &raw)?;
        }
        self.update_sent(res, at, rewrapped)
    }

    /// Recomputes the wrapper (docs/variables.md "Wrappers"): none when the `wrapper` property is empty or the raw value nil;
    /// otherwise whatever the resolver decides. A replaced `new`-style wrapper is destroyed; a failure
    /// keeps the old wrapper, is the variable's read error, and is retried at the next computation.
    fn rewrap(&self, res: &R, at: At, raw: &R::Value) -> Result<(), VarError> {
        let Some((name, existing)) = self.with_var(at, |v| {
            v.rewrap = false;
            let existing = match &v.wrapper {
                WrapState::Object(w) => Some(w.clone()),
                _ => None,
            };
            (v.prop(property::WRAPPER).unwrap_or("").to_string(), existing)
        }) else {
            return Ok(());
        };
        let decided = if name.is_empty() || res.is_nil(raw) {
            Ok(Wrapped::None)
        } else {
            res.wrap(WrapRequest { var: at.id, wrapper: &name, raw, existing: existing.as_ref() })
        };
        let (state, keep_old) = match decided {
            Err(e) => {
                self.with_var(at, |v| v.rewrap = true);
                return Err(e);
            }
            Ok(Wrapped::Reused) => (existing.map_or(WrapState::None, WrapState::Object), true),
            Ok(Wrapped::New(w)) => (WrapState::Object(w), false),
            Ok(Wrapped::Transform(v)) => (WrapState::Computed(v), false),
            Ok(Wrapped::None) => (WrapState::None, false),
        };
        let old = {
            let mut st = self.lock();
            let st = &mut *st;
            match st.vars.get_mut(&at.id).filter(|v| v.seq == at.seq) {
                Some(var) => {
                    let old = std::mem::replace(&mut var.wrapper, state);
                    if matches!(var.wrapper, WrapState::None) {
                        if let Some(s) = var.wrap_snap.take() {
                            st.bytes.book_snap(Some(&s), None);
                            s.release_objs(&mut st.registry);
                        }
                    }
                    (!keep_old).then_some(old)
                }
                // Destroyed by host code during `wrap`: the new wrapper is an orphan.
                None => Some(state),
            }
        };
        if let Some(WrapState::Object(w)) = old {
            res.destroy_wrapper(at.id, &w)?;
        }
        Ok(())
    }

    /// Brings the wrapper snapshot and the sent snapshot up to date; re-derives `type` when the sent
    /// snapshot changed, the variable is new, or it was rewrapped.
    fn update_sent(&self, res: &R, at: At, rewrapped: bool) -> Result<Option<bool>, VarError> {
        let Some((wrapper, wrap_snap)) = self.with_var(at, |v| (v.wrapper.value().cloned(), v.wrap_snap.clone()))
        else {
            return Ok(None);
        };
        if let Some(w) = wrapper {
            if !wrap_snap.as_ref().is_some_and(|s| value::matches(res, &w, s)) {
                let fresh = value::build(res, &w)?;
                let mut st = self.lock();
                let st = &mut *st;
                let Some(var) = st.vars.get_mut(&at.id).filter(|v| v.seq == at.seq) else { return Ok(None) };
                let snap = Arc::new(fresh.commit(&mut st.registry));
                st.bytes.book_snap(var.wrap_snap.as_deref(), Some(&snap));
                if let Some(old) = var.wrap_snap.replace(snap) {
                    old.release_objs(&mut st.registry);
                }
            }
        }
        let (changed, derive) = {
            let mut st = self.lock();
            let st = &mut *st;
            let Some(var) = st.vars.get_mut(&at.id).filter(|v| v.seq == at.seq) else { return Ok(None) };
            let sent = if var.wrapper.value().is_some() { var.wrap_snap.clone() } else { var.raw_snap.clone() };
            let Some(sent) = sent else { return Ok(Some(false)) };
            let changed = var.sent_snap.as_ref().is_none_or(|s| !Arc::ptr_eq(s, &sent) && **s != *sent);
            if changed {
                sent.retain_objs(&mut st.registry);
                if let Some(old) = var.sent_snap.replace(sent) {
                    old.release_objs(&mut st.registry);
                }
            }
            (changed, changed || rewrapped || var.new)
        };
        if derive {
            self.derive_type(res, at);
        }
        Ok(Some(changed))
    }

    /// Re-derives `type` (docs/variables.md "Values"): `T(wrapper)` for a `new`-style wrapper (else the `wrapper` property),
    /// the `wrapper` property for a `computeValue` wrapper, else `T(raw)`; the pinned type when that is
    /// empty; `""` when there is none. A change is a property change.
    fn derive_type(&self, res: &R, at: At) {
        enum Source<V> {
            Value(V, String),
            Name(String),
            Nothing,
        }
        let Some(source) = self.with_var(at, |v| {
            let wrapper_prop = || v.prop(property::WRAPPER).unwrap_or("").to_string();
            match &v.wrapper {
                WrapState::Object(w) => Source::Value(w.clone(), wrapper_prop()),
                WrapState::Computed(_) => Source::Name(wrapper_prop()),
                WrapState::None => match v.raw.as_ref().or(v.fixed.as_ref()) {
                    Some(raw) => Source::Value(raw.clone(), String::new()),
                    None => Source::Nothing,
                },
            }
        }) else {
            return;
        };
        let derived = match source {
            Source::Value(v, fallback) => res.type_of(&v).filter(|t| !t.is_empty()).unwrap_or(fallback),
            Source::Name(name) => name,
            Source::Nothing => String::new(),
        };
        let mut st = self.lock();
        let st = &mut *st;
        let Some(var) = st.vars.get_mut(&at.id).filter(|v| v.seq == at.seq) else { return };
        var.derived_type = derived;
        let shown = var.effective_type().to_string();
        // Derived from the host's value, so never refused; its bytes are booked like any property's.
        let old = var.prop(property::TYPE).map_or(0, |v| super::budget::prop_bytes(property::TYPE, v));
        let changed = var.set_prop(property::TYPE, &shown, None);
        st.bytes.book_prop(old, var.prop(property::TYPE).map_or(0, |v| super::budget::prop_bytes(property::TYPE, v)));
        if let Some(priority) = changed {
            st.note_prop(at, property::TYPE, priority, None);
        }
    }
}
