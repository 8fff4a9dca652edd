//! The ordered children of a variable (or the roots), and the cursor a detection pass walks them with.
//!
//! Entries are appended in creation order and marked dead on destroy, so a destroy is O(1) and the list
//! stays sorted by creation number even when host code creates and destroys variables while a pass walks
//! it. A [`Cursor`] remembers the creation number of the last entry passed (which decides where the walk
//! continues, whatever happened to the list meanwhile) plus that entry's index as a hint, so the common
//! step (nothing compacted since) costs O(1) instead of a binary search.

use crate::ids::VarId;

/// One entry of a [`Children`] list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Child {
    pub seq: u64,
    pub id: VarId,
    /// False once the variable is destroyed (until the list is compacted).
    pub live: bool,
}

/// Children (or roots) in creation order. Each variable knows its slot here, so a destroy marks its
/// entry dead in O(1); the list is compacted (and slots renumbered) once dead entries outnumber live
/// ones, so destroying n siblings costs O(n) in total (P4). Liveness is stored inline: walking children
/// needs no lookup per entry.
#[derive(Default)]
pub(crate) struct Children {
    entries: Vec<Child>,
    dead: usize,
}

/// A position in a [`Children`] list: just after the entry created as `after` (at the start when
/// `None`). Valid across appends, destroys and compaction; `hint` is the index the next entry had when
/// the cursor was made, checked before use.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    after: Option<u64>,
    hint: usize,
}

impl Cursor {
    /// The cursor just past the entry at `index`, created as `seq`.
    pub fn past(index: usize, seq: u64) -> Cursor {
        Cursor { after: Some(seq), hint: index + 1 }
    }
}

impl Children {
    /// Appends an entry; returns its slot.
    pub fn push(&mut self, seq: u64, id: VarId) -> usize {
        debug_assert!(self.entries.last().is_none_or(|e| e.seq < seq), "children are appended in seq order");
        self.entries.push(Child { seq, id, live: true });
        self.entries.len() - 1
    }

    /// Whether the list has no entries at all (dead ones included).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Index of the first entry created after `cursor`: the hint when it still fits (O(1)), else a
    /// binary search by creation number.
    pub fn position(&self, cursor: Cursor) -> usize {
        let Some(after) = cursor.after else { return 0 };
        let h = cursor.hint;
        let fits = h <= self.entries.len()
            && (h == 0 || self.entries[h - 1].seq <= after)
            && self.entries.get(h).is_none_or(|e| e.seq > after);
        if fits {
            h
        } else {
            self.entries.partition_point(|e| e.seq <= after)
        }
    }

    /// The entries after `cursor` (dead ones included) and the index of the first.
    pub fn rest(&self, cursor: Cursor) -> (usize, &[Child]) {
        let start = self.position(cursor);
        (start, &self.entries[start..])
    }

    /// Live entries in creation order.
    pub fn live(&self) -> impl Iterator<Item = VarId> + '_ {
        self.entries.iter().filter(|e| e.live).map(|e| e.id)
    }

    /// All entries, dead ones included.
    pub fn entries(&self) -> &[Child] {
        &self.entries
    }

    /// Marks the entry at `slot` dead; returns whether the list should be compacted now.
    pub fn kill(&mut self, slot: usize) -> bool {
        if let Some(e) = self.entries.get_mut(slot).filter(|e| e.live) {
            e.live = false;
            self.dead += 1;
        }
        self.dead > 8 && self.dead * 2 > self.entries.len()
    }

    /// Drops dead entries (O(len), amortised over the removals that made them dead). The caller must
    /// renumber the slots of the remaining entries (their index in [`Children::entries`]).
    pub fn compact(&mut self) {
        self.entries.retain(|e| e.live);
        self.dead = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(seqs: &[u64]) -> Children {
        let mut c = Children::default();
        for &s in seqs {
            c.push(s, VarId(s as i64 * 10));
        }
        c
    }

    /// The first live entry after `cursor`, with its index.
    fn next_live(c: &Children, cursor: Cursor) -> Option<(usize, Child)> {
        let (start, rest) = c.rest(cursor);
        rest.iter().position(|e| e.live).map(|off| (start + off, rest[off]))
    }

    /// Walks the live entries with cursors, as a pass does.
    fn walk(c: &Children) -> Vec<u64> {
        let mut out = Vec::new();
        let mut cursor = Cursor::default();
        while let Some((i, e)) = next_live(c, cursor) {
            out.push(e.seq);
            cursor = Cursor::past(i, e.seq);
        }
        out
    }

    #[test]
    fn walks_live_entries_in_creation_order() {
        let mut c = list(&[1, 3, 4, 9]);
        assert_eq!(walk(&c), vec![1, 3, 4, 9]);
        c.kill(1);
        assert_eq!(walk(&c), vec![1, 4, 9]);
        assert_eq!(c.live().collect::<Vec<_>>(), vec![VarId(10), VarId(40), VarId(90)]);
        assert_eq!(walk(&Children::default()), Vec::<u64>::new());
    }

    #[test]
    fn the_hint_is_used_when_it_fits_and_searched_otherwise() {
        let c = list(&[2, 5, 7]);
        let at_5 = Cursor::past(1, 5);
        assert_eq!(c.position(at_5), 2);
        // A stale hint (as after a compaction) falls back to the creation number.
        assert_eq!(c.position(Cursor { after: Some(5), hint: 0 }), 2);
        assert_eq!(c.position(Cursor { after: Some(5), hint: 3 }), 2);
        assert_eq!(c.position(Cursor { after: Some(5), hint: 99 }), 2);
        // The entry the cursor passed may be gone: the walk continues after its creation number.
        assert_eq!(c.position(Cursor { after: Some(6), hint: 2 }), 2);
        assert_eq!(c.position(Cursor { after: Some(1), hint: 0 }), 0);
        assert_eq!(c.position(Cursor { after: Some(7), hint: 3 }), 3);
        assert_eq!(c.position(Cursor::default()), 0);
        let (start, rest) = c.rest(at_5);
        assert_eq!((start, rest.len(), rest[0].seq), (2, 1, 7));
    }

    #[test]
    fn cursors_survive_appends_destroys_and_compaction() {
        let mut c = list(&(1..=20).collect::<Vec<_>>());
        // Stand after entry 5 (index 4), then change the list under the cursor.
        let cursor = Cursor::past(4, 5);
        c.push(21, VarId(210));
        assert_eq!(next_live(&c, cursor).map(|(i, e)| (i, e.seq)), Some((5, 6)));
        for slot in 0..12 {
            if c.kill(slot) {
                c.compact();
                break;
            }
        }
        // Entries 1..=10 (and maybe more) are gone and indices shifted; the cursor still means "after 5".
        let (i, e) = next_live(&c, cursor).expect("entries remain");
        assert_eq!(c.entries()[i], e);
        assert!(e.seq > 5 && c.entries()[..i].iter().all(|x| x.seq <= 5 || !x.live));
        assert_eq!(walk(&c), c.entries().iter().filter(|e| e.live).map(|e| e.seq).collect::<Vec<_>>());
    }

    #[test]
    fn compaction_waits_until_dead_entries_dominate() {
        let mut c = list(&(1..=30).collect::<Vec<_>>());
        let mut compact_at = None;
        for slot in 0..30 {
            if c.kill(slot) {
                compact_at = Some(slot);
                break;
            }
        }
        assert_eq!(compact_at, Some(15), "more than 8 dead and more than half");
        c.compact();
        assert_eq!(c.entries().len(), 14);
        assert!(!c.is_empty());
    }
}
