//! The object registry (lua-and-tracking.md §3.2): stable `{"obj":N}` ids per object identity, counted
//! by the snapshots that mention them and dropped when no snapshot does.

use std::collections::HashMap;

use super::value::Snap;

/// An object id as sent in `{"obj":N}`: from 1, per session, never reused. Not a variable id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ObjId(pub u64);

struct Entry<V> {
    identity: usize,
    /// Keeps the object alive so its address cannot be reused by another object while registered.
    handle: V,
    count: usize,
}

/// Identity → id map with reference counts.
pub struct ObjectRegistry<V> {
    by_identity: HashMap<usize, ObjId>,
    entries: HashMap<ObjId, Entry<V>>,
    next: u64,
}

impl<V: Clone> Default for ObjectRegistry<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone> ObjectRegistry<V> {
    pub fn new() -> Self {
        ObjectRegistry { by_identity: HashMap::new(), entries: HashMap::new(), next: 1 }
    }

    /// The id of an object if it is registered (comparing registers nothing).
    pub fn peek(&self, identity: usize) -> Option<ObjId> {
        self.by_identity.get(&identity).copied()
    }

    /// Takes one count on the object's id, registering it if new.
    pub fn acquire(&mut self, identity: usize, handle: &V) -> ObjId {
        if let Some(&id) = self.by_identity.get(&identity) {
            self.entries.get_mut(&id).expect("maps agree").count += 1;
            return id;
        }
        let id = ObjId(self.next);
        self.next += 1;
        self.by_identity.insert(identity, id);
        self.entries.insert(id, Entry { identity, handle: handle.clone(), count: 1 });
        id
    }

    /// Drops one count; the entry goes at zero.
    pub fn release(&mut self, id: ObjId) {
        let Some(entry) = self.entries.get_mut(&id) else { return };
        entry.count -= 1;
        if entry.count == 0 {
            let entry = self.entries.remove(&id).expect("present");
            self.by_identity.remove(&entry.identity);
        }
    }

    /// Releases every object a snapshot mentions.
    pub fn release_snap(&mut self, snap: &Snap) {
        match snap {
            Snap::Obj(id) => self.release(*id),
            Snap::Arr(items) => items.iter().for_each(|s| self.release_snap(s)),
            _ => {}
        }
    }

    /// The object known as `id`, for `{"obj":N}` in written values.
    pub fn lookup(&self, id: ObjId) -> Option<&V> {
        self.entries.get(&id).map(|e| &e.handle)
    }

    /// Number of registered objects.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_while_counted_and_never_reused() {
        let mut r: ObjectRegistry<u8> = ObjectRegistry::new();
        let a = r.acquire(100, &0);
        assert_eq!(r.acquire(100, &0), a);
        let b = r.acquire(200, &0);
        assert_ne!(a, b);
        r.release(a);
        assert_eq!(r.peek(100), Some(a));
        r.release(a);
        assert_eq!(r.peek(100), None);
        let again = r.acquire(100, &0);
        assert!(again.0 > b.0, "ids are never reused");
        assert_eq!(r.len(), 2);
        r.release_snap(&Snap::Arr(vec![Snap::Obj(again), Snap::Obj(b)].into()));
        assert!(r.is_empty());
    }
}
