//! One step of a detection pass over the children of one variable (docs/variables.md "Change detection"): a run of plain, unchanged
//! siblings confirmed together, then at most one variable visited the full way.
//!
//! Most variables of a large tree are leaves whose path is one field of the parent's value, and most
//! passes change few of them. Visiting each one fully costs several critical sections, map lookups and
//! host calls. A run instead takes the lock once, finds the next siblings that are *quiet* (not new, no
//! wrapper, no error, the sent snapshot is the raw one) and read one field or index, and asks the
//! resolver to [peek](super::Resolver::peek) all those fields of the parent's value in one host entry.
//! The siblings whose peeked value matches their snapshot are done: exactly what a full visit would have
//! concluded (nothing changed; pending property changes go out), since reading a present plain field
//! runs no host code, so nothing can change in between. The first sibling the peek does not confirm, or
//! that is not quiet, ends the run and is visited fully; the next run peeks again after it, so no
//! sibling is confirmed by a read made before host code ran.
//!
//! Order is unchanged: the run goes in creation order and stops before descending, so recorded changes
//! stay in tree preorder.

use super::children::Cursor;
use super::peek::PeekKey;
use super::shared::{At, Shared, State};
use super::value::Snap;
use super::variable::{Pending, Seg, Var, WrapState};
use super::Resolver;

/// A variable's collected changes, waiting for ordering (the pass in `detect.rs` orders and emits them).
pub(super) struct Rec {
    pub at: At,
    pub pending: Pending,
}

/// Records `pending` for the variable at `at`, if there is any.
pub(super) fn take_pending(pending: Option<Pending>, at: At, recs: &mut Vec<Rec>) {
    if let Some(pending) = pending {
        recs.push(Rec { at, pending });
    }
}

/// What the walk does after a step.
pub(super) enum Step {
    /// More children of the same parent may follow.
    Continue,
    /// Visit the children of this variable next (then come back).
    Descend(At),
    /// No children left.
    Done,
}

/// The run limit after a change. The siblings after a changed one are looked at again by the next run
/// (its full visit may have run host code), so after a change runs start short and double while they
/// are confirmed whole: n changed siblings cost O(n) peeks, not O(n²). The first run over a parent's
/// children has no limit; looking at all of them once per pass is linear too.
const RUN_AFTER_CHANGE: usize = 4;

/// Where the walk stands among one parent's children.
pub(super) struct Position {
    pub cursor: Cursor,
    /// How many live siblings the next run may look at.
    limit: usize,
}

impl Default for Position {
    fn default() -> Self {
        Position { cursor: Cursor::default(), limit: usize::MAX }
    }
}

/// One sibling the run passed.
struct Passed {
    index: usize,
    at: At,
    /// `Some(i)`: a quiet variable whose value is the `i`-th peeked key; `None`: inactive, skipped.
    peeked: Option<usize>,
    has_pending: bool,
    has_children: bool,
}

impl<R: Resolver> Shared<R> {
    /// Visits the next children of `parent` (the roots when `None`) after `pos` and advances it.
    pub(super) fn step(&self, res: &R, parent: Option<At>, pos: &mut Position, recs: &mut Vec<Rec>) -> Step {
        let mut st = self.lock();
        let Some(siblings) = (match parent {
            None => Some(&st.roots),
            Some(p) => st.live(p).map(|v| &v.children),
        }) else {
            return Step::Done;
        };
        let base = parent.and_then(|p| plain_nav_value(&st, p));
        // The run: skipped and quiet siblings, up to the first one that needs a full visit (`stop`).
        let mut passed: Vec<Passed> = Vec::new();
        let mut stop: Option<(usize, At)> = None;
        let mut matched: Vec<bool> = Vec::new();
        let mut at_limit = false;
        {
            let (start, rest) = siblings.rest(pos.cursor);
            let mut keys: Vec<PeekKey<'_, R::Key>> = Vec::new();
            let mut snaps: Vec<&Snap> = Vec::new();
            for (offset, entry) in rest.iter().enumerate() {
                if !entry.live {
                    continue;
                }
                let index = start + offset;
                let at = At { id: entry.id, seq: entry.seq };
                let Some(var) = st.live(at) else {
                    stop = Some((index, at));
                    break;
                };
                let (has_pending, has_children) = (var.pending.is_some(), !var.children.is_empty());
                if passed.len() == pos.limit {
                    at_limit = true;
                    break;
                }
                if !var.active || var.inactive {
                    // Not visited, subtree included (docs/variables.md "Change detection").
                    passed.push(Passed { index, at, peeked: None, has_pending, has_children: false });
                    continue;
                }
                let Some((key, snap)) = base.and_then(|_| quiet_field(var)) else {
                    stop = Some((index, at));
                    break;
                };
                passed.push(Passed { index, at, peeked: Some(keys.len()), has_pending, has_children });
                keys.push(key);
                snaps.push(snap);
                if has_children {
                    // Its subtree comes before the next sibling.
                    break;
                }
            }
            if let Some(base) = base.filter(|_| !keys.is_empty()) {
                matched = vec![false; keys.len()];
                if !res.peek(base, &keys, &mut |i, peek| matched[i] = peek.matches(snaps[i])) {
                    matched.fill(false);
                }
            }
        }
        for p in passed {
            if p.peeked.is_some_and(|i| !matched[i]) {
                // Changed, or only a full read can tell.
                stop = Some((p.index, p.at));
                pos.limit = RUN_AFTER_CHANGE;
                break;
            }
            pos.cursor = Cursor::past(p.index, p.at.seq);
            if p.peeked.is_none() {
                continue;
            }
            if p.has_pending {
                let pending = st.live_mut(p.at).and_then(|v| v.pending.take()).map(|p| *p);
                take_pending(pending, p.at, recs);
            }
            if p.has_children {
                return Step::Descend(p.at);
            }
        }
        match stop {
            Some((index, at)) => {
                pos.cursor = Cursor::past(index, at.seq);
                if self.visit(res, at, st, recs) {
                    Step::Descend(at)
                } else {
                    Step::Continue
                }
            }
            None if at_limit => {
                pos.limit = pos.limit.saturating_mul(2);
                Step::Continue
            }
            None => Step::Done,
        }
    }
}

/// The value children of `id` start from, if it is a plain host value (a readable, locally resolved
/// variable with a non-nil value); anything else is left to the full visit, which reports it.
fn plain_nav_value<R: Resolver>(st: &State<R>, id: At) -> Option<&R::Value> {
    let var = st.live(id)?;
    if !var.access.readable() {
        return None;
    }
    var.wrapper.value().or(var.raw.as_ref()).or(var.fixed.as_ref())
}

/// For a quiet variable whose path is one field or index, that key and the snapshot its value had.
/// Quiet: nothing but a changed value could make its visit report anything (not new, no wrapper, no
/// pending rewrap, no error, the sent snapshot is the raw one).
fn quiet_field<R: Resolver>(var: &Var<R>) -> Option<(PeekKey<'_, R::Key>, &Snap)> {
    if !var.resolves()
        || var.new
        || var.rewrap
        || !matches!(var.wrapper, WrapState::None)
        || var.error.is_some()
        || var.create_error.is_some()
        || var.fixed.is_some()
    {
        return None;
    }
    let (raw, sent) = (var.raw_snap.as_ref()?, var.sent_snap.as_ref()?);
    if !std::sync::Arc::ptr_eq(raw, sent) {
        return None;
    }
    let key = match &*var.path.as_ref()?.segs {
        [Seg::Name(k)] => PeekKey::Name(k),
        [Seg::Index(i)] => PeekKey::Index(*i),
        _ => return None,
    };
    Some((key, raw))
}
