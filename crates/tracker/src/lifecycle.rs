//! Creating and destroying variables (docs/variables.md `create=T`).

use std::sync::Arc;

use super::path::{parse_path, split_query, Segment};
use super::props::{apply, decide, denied, held, Decision};
use super::shared::{At, Shared};
use super::variable::{LocalPath, Seg, ValueNote, Var, WrapState};
use super::{Access, Resolver, VarError, Writer};
use crate::ids::VarId;
use crate::protocol::property::name as property;
use crate::protocol::{ErrorCode, PropertyWrite};

/// A successful create. The variable exists even if its first computation failed (the error is in its
/// full state).
#[derive(Debug, Default, PartialEq)]
pub struct Created {
    /// Properties the writer may not set (`lua` from a browser): dropped, the rest applied; send this
    /// `access-denied` to the creator.
    pub denied: Option<VarError>,
}

fn bad(description: impl Into<String>) -> VarError {
    VarError::new(ErrorCode::BadMessage, description)
}

/// A create's properties, checked and parsed before the variable is inserted.
struct Spec<K> {
    props: Vec<PropertyWrite>,
    decisions: Vec<Decision>,
    access: Access,
    path: Option<Arc<LocalPath<K>>>,
    denied: Option<VarError>,
}

/// Merges the `?query` of `path` into the properties (the query overrides) and applies the creator
/// rules. `intern` is `Some` for locally resolved variables: the path is then required, checked against
/// the access mode (docs/variables.md "Access") and interned.
fn prepare<R: Resolver>(res: Option<&R>, props: &[PropertyWrite], writer: Writer) -> Result<Spec<R::Key>, VarError> {
    let mut merged: Vec<PropertyWrite> = Vec::with_capacity(props.len());
    let mut query = Vec::new();
    for p in props {
        if p.name == property::PATH {
            let (path, q) = split_query(&p.value);
            merged.push(PropertyWrite { name: p.name.clone(), value: path.to_string(), priority: p.priority });
            query = q;
        } else {
            merged.push(p.clone());
        }
    }
    for q in query {
        match merged.iter_mut().find(|p| p.name == q.name) {
            Some(p) => {
                p.value = q.value;
                p.priority = q.priority.or(p.priority);
            }
            None => merged.push(q),
        }
    }
    let find = |name: &str| merged.iter().rev().find(|p| p.name == name).map(|p| p.value.as_str());
    let access_text = find(property::ACCESS).unwrap_or("");
    let access = Access::parse(access_text).ok_or_else(|| bad(format!("unknown access {access_text:?}")))?;
    let path_text = find(property::PATH).unwrap_or("");
    let path = match res {
        Some(res) => {
            if path_text.is_empty() {
                return Err(bad("create needs a non-empty path"));
            }
            Some(Arc::new(local_path(res, path_text, access)?))
        }
        None => {
            if !path_text.is_empty() {
                parse_path(path_text)?;
            }
            None
        }
    };
    let decisions: Vec<Decision> = merged.iter().map(|p| decide(&p.name, writer, true)).collect();
    let refused: Vec<&str> =
        merged.iter().zip(&decisions).filter(|(_, d)| **d == Decision::Deny).map(|(p, _)| p.name.as_str()).collect();
    let denied = (!refused.is_empty()).then(|| denied(&refused));
    Ok(Spec { props: merged, decisions, access, path, denied })
}

/// Parses a path, applies the docs/variables.md "Access" create refusals and interns its names.
fn local_path<R: Resolver>(res: &R, text: &str, access: Access) -> Result<LocalPath<R::Key>, VarError> {
    let parsed = parse_path(text)?;
    let n = parsed.segments.len();
    for (i, seg) in parsed.segments.iter().enumerate() {
        if matches!(seg, Segment::CallArg(_)) && i + 1 != n {
            return Err(bad("m(_) must be the last segment"));
        }
    }
    match (parsed.last(), access) {
        (Some(Segment::CallArg(_)), Access::R | Access::Rw) => {
            return Err(VarError::new(ErrorCode::AccessDenied, "m(_) needs access w or action"))
        }
        (Some(Segment::Call(_)), Access::W) => {
            return Err(VarError::new(ErrorCode::AccessDenied, "m() cannot be written with access w"))
        }
        _ => {}
    }
    let mut segs = Vec::with_capacity(n);
    for seg in parsed.segments {
        segs.push(match seg {
            Segment::Name(s) => Seg::Name(res.intern(&s)?),
            Segment::Index(i) => Seg::Index(i),
            Segment::Call(s) => Seg::Call(res.intern(&s)?),
            Segment::CallArg(s) => Seg::CallArg(res.intern(&s)?),
            Segment::Up => Seg::Up,
        });
    }
    let has_up = segs.iter().any(|s| matches!(s, Seg::Up));
    Ok(LocalPath { segs: segs.into_boxed_slice(), has_up })
}

impl<R: Resolver> Shared<R> {
    /// Creates a path variable `id` under `parent` (docs/variables.md), owned like its parent. Refusals (the variable
    /// does not exist afterwards): `id-in-use`, unknown parent → `not-found`, empty or bad path, unknown
    /// access, `m(_)` not last → `bad-message`, `m(_)` with `r`/`rw` or `m()` last with `w` →
    /// `access-denied`. Readable variables are computed at once; a read error there (or an unknown
    /// `create` type) stays on the variable, which exists. The next pass reports it as new.
    pub fn create(
        &self,
        res: &R,
        id: VarId,
        parent: VarId,
        props: &[PropertyWrite],
        writer: Writer,
    ) -> Result<Created, VarError> {
        {
            let st = self.lock();
            if st.vars.contains_key(&id) {
                return Err(VarError::new(ErrorCode::IdInUse, format!("variable {id} exists")));
            }
            if !st.vars.contains_key(&parent) {
                return Err(VarError::new(ErrorCode::NotFound, format!("parent {parent} not found")));
            }
        }
        let spec = prepare(Some(res), props, writer)?;
        let denied = spec.denied.clone();
        let at = self.insert(id, Some(parent), spec, None)?;
        if self.with_var(at, |v| v.access.readable()) == Some(true) {
            self.first_computation(res, at);
        }
        Ok(Created { denied })
    }

    /// Creates a root showing `value` (variable 1, a Lua value-variable), or replaces an existing root's
    /// value (a second `createAppVariable`: the change is reported at the next pass). Computed at once.
    pub fn create_root(&self, res: &R, id: VarId, value: R::Value, props: &[PropertyWrite]) -> Result<(), VarError> {
        let existing = {
            let mut st = self.lock();
            let st = &mut *st;
            match st.vars.get_mut(&id) {
                Some(var) if var.parent.is_some() || var.fixed.is_none() => {
                    return Err(VarError::new(ErrorCode::IdInUse, format!("variable {id} exists")));
                }
                Some(var) => {
                    let at = At { id, seq: var.seq };
                    var.fixed = Some(value.clone());
                    let mut changes = Vec::new();
                    for p in props {
                        if let Some((name, priority)) =
                            apply(var, &mut st.bytes, decide(&p.name, Writer::Lua, true), p)?
                        {
                            changes.push((name, priority));
                        }
                    }
                    for (name, priority) in changes {
                        st.note_prop(at, name, priority, None);
                    }
                    Some(at)
                }
                None => None,
            }
        };
        let at = match existing {
            Some(at) => at,
            None => {
                let spec = prepare::<R>(None, props, Writer::Lua)?;
                self.insert(id, None, spec, Some(value.clone()))?
            }
        };
        self.compute_fixed(res, at, value);
        Ok(())
    }

    /// Creates a Lua value-variable under `parent` (`session:createVariable(parent, obj)`, docs/lua-api.md): it
    /// shows `value`, re-snapshotted each pass, and sits in the tree for ordering and destroy.
    pub fn create_child_showing(
        &self,
        res: &R,
        id: VarId,
        parent: VarId,
        value: R::Value,
        props: &[PropertyWrite],
    ) -> Result<(), VarError> {
        let spec = prepare::<R>(None, props, Writer::Lua)?;
        let at = self.insert(id, Some(parent), spec, Some(value.clone()))?;
        self.compute_fixed(res, at, value);
        Ok(())
    }

    /// Stores a fixed value's computation; a change or error of an already reported variable is noted
    /// for the next pass.
    fn compute_fixed(&self, res: &R, at: At, value: R::Value) {
        let result = self.apply_raw(res, at, value);
        let mut st = self.lock();
        let Some(var) = st.live_mut(at) else { return };
        let note = match result {
            Ok(None) => None,
            Ok(Some(changed)) => {
                let recovered = var.error.take().is_some();
                (!var.new && (changed || recovered)).then_some(ValueNote::Changed { origin: None })
            }
            Err(e) if var.error.as_ref() != Some(&e) => {
                var.error = Some(e.clone());
                (!var.new).then_some(ValueNote::Error(e))
            }
            Err(_) => None,
        };
        if let Some(note) = note {
            st.note_value(at, note);
        }
    }

    /// Inserts a prepared variable (re-checking id and parent: host code may have run since).
    fn insert(
        &self,
        id: VarId,
        parent: Option<VarId>,
        spec: Spec<R::Key>,
        fixed: Option<R::Value>,
    ) -> Result<At, VarError> {
        let mut st = self.lock();
        let st = &mut *st;
        if st.vars.contains_key(&id) {
            return Err(VarError::new(ErrorCode::IdInUse, format!("variable {id} exists")));
        }
        if let Some(p) = parent.filter(|p| !st.vars.contains_key(p)) {
            return Err(VarError::new(ErrorCode::NotFound, format!("parent {p} not found")));
        }
        let mut var = Var::new(id, st.next_seq, parent, spec.access);
        var.path = spec.path;
        var.fixed = fixed;
        for (p, decision) in spec.props.iter().zip(spec.decisions) {
            // A property over the limits (a huge path, too many properties) refuses the whole create.
            if let Err(e) = apply(&mut var, &mut st.bytes, decision, p) {
                st.bytes.book_prop(held(&var), 0);
                return Err(e);
            }
        }
        let seq = st.next_seq;
        st.next_seq += 1;
        // Only a wrapper change after create rewraps; the first computation wraps anyway.
        var.rewrap = false;
        var.slot = match parent {
            Some(p) => st.vars.get_mut(&p).expect("checked above").children.push(seq, id),
            None => st.roots.push(seq, id),
        };
        st.vars.insert(id, Box::new(var));
        Ok(At { id, seq })
    }

    /// The create-time computation of a readable variable, with `create=T` (docs/variables.md "Access"): if the path is nil
    /// and ends in a name or index, the resolver instantiates T, assigns it there and the path is re-read.
    fn first_computation(&self, res: &R, at: At) {
        let wants_create = self.with_var(at, |v| v.prop(property::CREATE).is_some()) == Some(true);
        let raw = match self.resolve(res, at) {
            Ok(None) => return,
            Ok(Some(v)) if wants_create && res.is_nil(&v) => match self.create_value(res, at) {
                Ok(made) => Ok(made.unwrap_or(v)),
                Err(e) => {
                    self.with_var(at, |var| var.create_error = Some(e.clone()));
                    Err(e)
                }
            },
            Ok(Some(v)) => Ok(v),
            Err(e) => Err(e),
        };
        if let Err(e) = raw.and_then(|raw| self.apply_raw(res, at, raw)) {
            self.with_var(at, |v| v.error = Some(e));
        }
    }

    /// Runs the `create` property for a nil path; `Ok(None)` when there is nothing to do.
    fn create_value(&self, res: &R, at: At) -> Result<Option<R::Value>, VarError> {
        let Some(type_name) = self.with_var(at, |v| v.prop(property::CREATE).map(str::to_string)).flatten() else {
            return Ok(None);
        };
        let Some(target) = self.target(res, at)? else { return Ok(None) };
        let made = res.create_value(&type_name)?;
        match target.last() {
            Seg::Name(k) => res.set(&target.base, k, made)?,
            Seg::Index(i) => res.set_index(&target.base, *i, made)?,
            _ => return Ok(None),
        }
        self.resolve(res, at)
    }

    /// Destroys `id` and its subtree, children first (post-order, siblings in creation order), releases
    /// their registry counts and destroys their wrappers (after the lock is released: that runs host
    /// code; failures are logged, the wrapper is dropped anyway). Returns the destroyed ids; an unknown
    /// id gives `[]`. O(subtree size).
    pub fn destroy(&self, res: &R, id: VarId) -> Vec<VarId> {
        let (order, wrappers, removed) = {
            let mut st = self.lock();
            let st = &mut *st;
            let Some(top) = st.vars.get(&id) else { return Vec::new() };
            let (parent, slot) = (top.parent, top.slot);
            let order = post_order(&st.vars, id);
            let mut wrappers = Vec::new();
            let mut removed = Vec::with_capacity(order.len());
            for vid in &order {
                let mut var = st.vars.remove(vid).expect("collected from the live tree");
                st.bytes.book_prop(held(&var), 0);
                st.bytes.book_snap(var.raw_snap.as_deref(), None);
                st.bytes.book_snap(var.wrap_snap.as_deref(), None);
                for snap in [var.raw_snap.take(), var.wrap_snap.take(), var.sent_snap.take()].into_iter().flatten() {
                    snap.release_objs(&mut st.registry);
                }
                if let WrapState::Object(w) = std::mem::replace(&mut var.wrapper, WrapState::None) {
                    wrappers.push((*vid, w));
                }
                removed.push(var);
            }
            let siblings = match parent {
                Some(p) => &mut st.vars.get_mut(&p).expect("the parent of a live variable is live").children,
                None => &mut st.roots,
            };
            if siblings.kill(slot) {
                siblings.compact();
                let moved: Vec<(usize, VarId)> = siblings.entries().iter().map(|e| e.id).enumerate().collect();
                for (i, vid) in moved {
                    if let Some(v) = st.vars.get_mut(&vid) {
                        v.slot = i;
                    }
                }
            }
            (order, wrappers, removed)
        };
        // Host values are released outside the lock.
        drop(removed);
        for (vid, w) in wrappers {
            if let Err(e) = res.destroy_wrapper(vid, &w) {
                tracing::debug!(var = vid.0, error = %e, "wrapper destroy failed");
            }
        }
        order
    }
}

/// The subtree of `id` in post-order (children first, siblings by creation), without recursion so a
/// deep chain cannot overflow the stack.
fn post_order<R: Resolver>(vars: &super::idmap::IdMap<VarId, Box<Var<R>>>, id: VarId) -> Vec<VarId> {
    let mut out = Vec::new();
    // (variable, index of the next child entry to look at)
    let mut stack: Vec<(VarId, usize)> = vec![(id, 0)];
    while let Some(&mut (cur, ref mut next)) = stack.last_mut() {
        let var = &vars[&cur];
        let child = var
            .children
            .entries()
            .get(*next..)
            .and_then(|rest| rest.iter().position(|e| e.live).map(|off| (off, rest[off].id)));
        match child {
            Some((off, c)) => {
                *next += off + 1;
                stack.push((c, 0));
            }
            None => {
                out.push(cur);
                stack.pop();
            }
        }
    }
    out
}
