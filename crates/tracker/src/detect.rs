//! Change detection and update assembly (docs/variables.md "Change detection").
//!
//! A pass walks the tree in preorder (roots, then children, by creation number) with an explicit stack
//! and a creation-number cursor per level, so host code may create or destroy variables during the pass
//! and deep trees cannot overflow the stack. Each step over a level confirms a run of unchanged plain
//! siblings at once and visits at most one variable fully (`siblings.rs`). Each visited variable's
//! recorded changes (value, error, properties — also those recorded by writes and property updates
//! since the last pass) are collected in visit order, which is already preorder. Changes of variables
//! the pass did not visit (inactive or unwatched subtrees) are merged in afterwards by their preorder
//! key; that slower path costs O(depth) per such variable only. Nothing is built for unchanged
//! variables: the value JSON is made at emission, from the sent snapshot, for changed values only.

use std::sync::Arc;

use parking_lot::MutexGuard;

use serde_json::Value as Json;

use super::compute::Walk;
use super::shared::{At, Shared, State};
use super::siblings::{take_pending, Position, Rec, Step};
use super::value::{self, Snap};
use super::variable::{LocalPath, Pending, ValueNote, WrapState};
use super::{Origin, Resolver, VarError};
use crate::ids::VarId;
use crate::protocol::{ErrorCode, Priority, ServerMessage, UpdateOut};

/// The value part of a [`ChangeItem`].
#[derive(Clone, PartialEq, Debug)]
pub enum ValueOut {
    /// The new value; `origin` wrote it and must not get it back (`None`: everyone gets it).
    Value { json: Json, origin: Option<Origin> },
    /// A new or changed read error, in the value's place; goes to every watcher.
    Error(VarError),
}

/// One changed property of a [`ChangeItem`] (`""` = deleted).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PropOut {
    pub name: String,
    pub value: String,
    /// Who set it (not echoed to it); `None` for everyone.
    pub origin: Option<Origin>,
}

/// The changes of one variable in one priority bucket: at most one per variable and bucket.
#[derive(Clone, PartialEq, Debug)]
pub struct ChangeItem {
    pub var_id: VarId,
    pub bucket: Priority,
    /// Present iff the value changed (or failed) and the value's priority is this bucket.
    pub value: Option<ValueOut>,
    /// The changed properties of this bucket, with their current values.
    pub properties: Vec<PropOut>,
}

impl ChangeItem {
    /// Appends what `receiver` gets of this item: an `update` with the value and properties it did not
    /// write itself (none if nothing is left), then the `error` if the value failed.
    pub fn messages_for(&self, receiver: Option<Origin>, out: &mut Vec<ServerMessage>) {
        let mine = |origin: Option<Origin>| origin.is_some() && origin == receiver;
        let mut update = UpdateOut { var_id: self.var_id, ..Default::default() };
        let mut error = None;
        match &self.value {
            Some(ValueOut::Value { json, origin }) if !mine(*origin) => update.value = Some(json.clone()),
            Some(ValueOut::Error(e)) => error = Some(e),
            _ => {}
        }
        for p in self.properties.iter().filter(|p| !mine(p.origin)) {
            update.properties.set(&p.name, &p.value);
        }
        if update.value.is_some() || !update.properties.is_empty() {
            out.push(ServerMessage::Update(update));
        }
        if let Some(e) = error {
            out.push(ServerMessage::error(self.var_id, e.code, e.description.clone()));
        }
    }
}

/// The result of a pass, in emission order: buckets high → medium → low, within each tree preorder.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Changes {
    pub items: Vec<ChangeItem>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The messages for one receiver, in order, for the variables it watches (`watches`), without what
    /// it wrote itself.
    pub fn messages_for(&self, receiver: Option<Origin>, mut watches: impl FnMut(VarId) -> bool) -> Vec<ServerMessage> {
        let mut out = Vec::new();
        for item in self.items.iter().filter(|i| watches(i.var_id)) {
            item.messages_for(receiver, &mut out);
        }
        out
    }
}

/// Where a visited variable's value comes from, as found under the lock.
enum Start<R: Resolver> {
    /// A root shows its fixed value.
    Root(R::Value),
    /// A path variable: its parent, the parent's navigation value (or why there is none), its path.
    Path(VarId, Result<Option<R::Value>, VarError>, Arc<LocalPath<R::Key>>),
    /// Neither (cannot happen for locally resolved variables; reported as `path-failure`).
    Broken,
}

/// The first critical section's findings.
struct Plan<R: Resolver> {
    start: Start<R>,
    /// The cached raw snapshot to compare with.
    stored: Option<Arc<Snap>>,
    /// Nothing but an unchanged value can make this visit report something: no wrapper, no pending
    /// rewrap, not new, and the sent snapshot is the raw one.
    quiet: bool,
}

enum Outcome<V> {
    /// Compared equal without the lock; confirm the cache did not move meanwhile.
    Quick(V),
    Done(Result<Option<bool>, VarError>),
}

/// One level of the walk: a variable whose children are being visited (`None`: the roots), and where
/// the walk stands among them.
struct Level {
    parent: Option<At>,
    pos: Position,
}

/// Resets `in_pass` even if host code panics through the pass.
struct PassGuard<'a, R: Resolver>(&'a Shared<R>);

impl<R: Resolver> Drop for PassGuard<'_, R> {
    fn drop(&mut self) {
        self.0.lock().in_pass = false;
    }
}

impl<R: Resolver> Shared<R> {
    /// One detection pass and the ordered updates it yields (docs/variables.md "Change detection"). A nested call from host code
    /// during a pass returns no changes.
    pub fn detect(&self, res: &R) -> Changes {
        {
            let mut st = self.lock();
            if st.in_pass {
                return Changes::default();
            }
            st.in_pass = true;
        }
        let _guard = PassGuard(self);
        let mut recs = Vec::new();
        // The roots level first; a level is pushed for each variable whose children are to be visited.
        let mut levels: Vec<Level> = vec![Level { parent: None, pos: Position::default() }];
        while let Some(top) = levels.last_mut() {
            match self.step(res, top.parent, &mut top.pos, &mut recs) {
                Step::Continue => {}
                Step::Descend(at) => levels.push(Level { parent: Some(at), pos: Position::default() }),
                Step::Done => {
                    levels.pop();
                }
            }
        }
        self.assemble(recs)
    }

    /// Visits one variable, starting inside the caller's critical section `st`. Returns whether to visit
    /// its children (false when it has none).
    ///
    /// The common case (value unchanged, no wrapper, nothing new) costs two short critical sections
    /// around an unlocked walk and compare; anything else goes through [`Shared::apply_raw`].
    pub(super) fn visit(&self, res: &R, at: At, mut st: MutexGuard<'_, State<R>>, recs: &mut Vec<Rec>) -> bool {
        let plan = {
            let Some(var) = st.live_mut(at) else { return false };
            if !var.active || var.inactive {
                return false;
            }
            if !var.resolves() {
                // `w` and `action` variables have no value; their property changes go out.
                var.new = false;
                take_pending(var.pending.take().map(|p| *p), at, recs);
                return !var.children.is_empty();
            }
            let quiet = !var.new
                && !var.rewrap
                && matches!(var.wrapper, WrapState::None)
                && var.raw_snap.as_ref().zip(var.sent_snap.as_ref()).is_some_and(|(a, b)| Arc::ptr_eq(a, b));
            let stored = var.raw_snap.clone();
            let start: Start<R> = match (&var.fixed, var.parent, &var.path) {
                (Some(fixed), _, _) => Start::Root(fixed.clone()),
                (None, Some(parent), Some(path)) => {
                    let path = path.clone();
                    Start::Path(parent, st.nav_value(parent), path)
                }
                _ => Start::Broken,
            };
            Plan::<R> { start, stored, quiet }
        };
        drop(st);
        let raw = match plan.start {
            Start::Root(fixed) => Ok(fixed),
            Start::Path(parent, start, path) => start.and_then(|start| {
                let start = start.unwrap_or_else(|| res.nil());
                self.walk(res, parent, start, &path, &path.segs, Walk::Read)
            }),
            Start::Broken => Err(VarError::new(ErrorCode::PathFailure, format!("variable {} has no path", at.id))),
        };
        let stored = plan.stored;
        let outcome = match raw {
            Ok(raw) if plan.quiet && stored.as_ref().is_some_and(|s| value::matches(res, &raw, s)) => {
                Outcome::Quick(raw)
            }
            Ok(raw) => Outcome::Done(self.apply_raw(res, at, raw)),
            Err(e) => Outcome::Done(Err(e)),
        };
        let mut guard = self.lock();
        let result = match outcome {
            Outcome::Done(result) => result,
            Outcome::Quick(raw) => {
                let same = guard
                    .live(at)
                    .and_then(|v| v.raw_snap.as_ref().zip(stored.as_ref()))
                    .is_some_and(|(a, b)| Arc::ptr_eq(a, b));
                if same {
                    Ok(Some(false))
                } else {
                    // Host code stored another value while we compared: take the full path.
                    drop(guard);
                    let result = self.apply_raw(res, at, raw);
                    guard = self.lock();
                    result
                }
            }
        };
        let Some(var) = guard.live_mut(at) else { return false };
        // A failed `create=T` stays the variable's error while its path still reads nil.
        let result = match (&var.create_error, &result) {
            (Some(e), Ok(_)) if var.raw_snap.as_deref().is_none_or(|s| matches!(s, Snap::Null)) => Err(e.clone()),
            (Some(_), _) => {
                var.create_error = None;
                result
            }
            _ => result,
        };
        let (note, descend) = match result {
            Ok(None) => return false,
            Err(e) => {
                // Reported once per distinct error; the cache is kept and the children are not visited.
                let note = (var.new || var.error.as_ref() != Some(&e)).then(|| {
                    var.error = Some(e.clone());
                    ValueNote::Error(e)
                });
                (note, false)
            }
            Ok(Some(sent_changed)) => {
                // An update after an error clears the browser's error state, even if the value is the same.
                let recovered = var.error.take().is_some();
                ((var.new || sent_changed || recovered).then_some(ValueNote::Changed { origin: None }), true)
            }
        };
        var.new = false;
        let mut pending = var.pending.take().map(|p| *p);
        if let Some(note) = note {
            pending.get_or_insert_with(Pending::default).value = Some(note);
        }
        let descend = descend && !var.children.is_empty();
        take_pending(pending, at, recs);
        descend
    }

    /// Orders the collected changes and builds the items.
    fn assemble(&self, mut recs: Vec<Rec>) -> Changes {
        let mut st = self.lock();
        let st = &mut *st;
        // Changes of variables the pass did not visit.
        let dirty = std::mem::take(&mut st.dirty);
        let mut late = Vec::new();
        for (id, seq) in dirty {
            let at = At { id, seq };
            if let Some(p) = st.live_mut(at).and_then(|v| v.pending.take()) {
                late.push(Rec { at, pending: *p });
            }
        }
        if !late.is_empty() {
            let mut index: std::collections::HashMap<VarId, usize> =
                recs.iter().enumerate().map(|(i, r)| (r.at.id, i)).collect();
            for rec in late {
                match index.get(&rec.at.id) {
                    Some(&i) => recs[i].pending.merge(rec.pending),
                    None => {
                        index.insert(rec.at.id, recs.len());
                        recs.push(rec);
                    }
                }
            }
            let mut keyed: Vec<(Vec<u64>, Rec)> = recs.into_iter().map(|r| (preorder_key(st, r.at.id), r)).collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            recs = keyed.into_iter().map(|(_, r)| r).collect();
        }
        let mut items = Vec::new();
        for bucket in Priority::ORDER {
            for rec in &recs {
                let Some(var) = st.live(rec.at) else { continue };
                let value = match &rec.pending.value {
                    Some(_) if var.value_priority != bucket => None,
                    Some(ValueNote::Changed { origin }) => Some(ValueOut::Value {
                        json: var.sent_snap.as_ref().map_or(Json::Null, |s| s.to_json()),
                        origin: *origin,
                    }),
                    Some(ValueNote::Error(e)) => Some(ValueOut::Error(e.clone())),
                    None => None,
                };
                let properties: Vec<PropOut> = rec
                    .pending
                    .props
                    .iter()
                    .filter(|(name, recorded, _)| var.prop_priority(name).unwrap_or(*recorded) == bucket)
                    .map(|(name, _, origin)| PropOut {
                        name: name.clone(),
                        value: var.prop(name).unwrap_or("").to_string(),
                        origin: *origin,
                    })
                    .collect();
                if value.is_some() || !properties.is_empty() {
                    items.push(ChangeItem { var_id: rec.at.id, bucket, value, properties });
                }
            }
        }
        Changes { items }
    }
}

/// The creation numbers from the root down to `id`: sorting by it gives tree preorder.
fn preorder_key<R: Resolver>(st: &super::shared::State<R>, id: VarId) -> Vec<u64> {
    let mut key = Vec::new();
    let mut cur = st.vars.get(&id);
    while let Some(var) = cur {
        key.push(var.seq);
        cur = var.parent.and_then(|p| st.vars.get(&p));
    }
    key.reverse();
    key
}
