//! The object registry (docs/variables.md "Values"): stable `{"obj":N}` ids per object identity, counted
//! by the snapshots that mention them and dropped when no snapshot does.
//!
//! Every occurrence of an object in a *stored* snapshot slot (a variable's raw, wrapper and sent
//! snapshots, array elements included) holds one count (`Snap::retain_objs` / `Snap::release_objs` in
//! `value.rs` take and drop them; the registry knows ids and counts, not snapshots). Comparing a fresh value with a stored snapshot
//! never touches the registry (snapshots carry the identity next to the id), so only stores and releases
//! do.

use super::idmap::IdMap;

/// An object id as sent in `{"obj":N}`: from 1, per session, never reused. Not a variable id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ObjId(pub u64);

struct Entry<V> {
    id: ObjId,
    /// Keeps the object alive so its address cannot be reused by another object while registered.
    handle: V,
    count: usize,
}

/// Identity → id map with reference counts.
pub struct ObjectRegistry<V> {
    by_identity: IdMap<usize, Entry<V>>,
    identity_of: IdMap<ObjId, usize>,
    next: u64,
}

impl<V: Clone> Default for ObjectRegistry<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone> ObjectRegistry<V> {
    pub fn new() -> Self {
        ObjectRegistry { by_identity: IdMap::default(), identity_of: IdMap::default(), next: 1 }
    }

    /// The id of an object if it is registered (comparing registers nothing).
    pub fn peek(&self, identity: usize) -> Option<ObjId> {
        self.by_identity.get(&identity).map(|e| e.id)
    }

    /// Takes one count on the object's id, registering it (and keeping `handle`) if new. The handle is
    /// moved in, so the registry never clones host values while the tracker holds its lock.
    pub fn acquire(&mut self, identity: usize, handle: V) -> ObjId {
        if let Some(entry) = self.by_identity.get_mut(&identity) {
            entry.count += 1;
            return entry.id;
        }
        let id = ObjId(self.next);
        self.next += 1;
        self.by_identity.insert(identity, Entry { id, handle, count: 1 });
        self.identity_of.insert(id, identity);
        id
    }

    /// Takes one more count on an id that is already registered (a snapshot stored in a second slot).
    pub fn retain(&mut self, id: ObjId) {
        if let Some(entry) = self.identity_of.get(&id).and_then(|i| self.by_identity.get_mut(i)) {
            entry.count += 1;
        }
    }

    /// Drops one count; the entry goes at zero.
    pub fn release(&mut self, id: ObjId) {
        let Some(&identity) = self.identity_of.get(&id) else { return };
        let entry = self.by_identity.get_mut(&identity).expect("maps agree");
        entry.count -= 1;
        if entry.count == 0 {
            self.by_identity.remove(&identity);
            self.identity_of.remove(&id);
        }
    }

    /// The object known as `id`, for `{"obj":N}` in written values.
    pub fn lookup(&self, id: ObjId) -> Option<&V> {
        self.identity_of.get(&id).and_then(|i| self.by_identity.get(i)).map(|e| &e.handle)
    }

    /// A registry holding only the given ids (same ids, same handles). Writes convert their JSON with it
    /// outside the tracker's lock, because `Resolver::from_json` may run host code.
    pub fn subset(&self, ids: impl IntoIterator<Item = ObjId>) -> ObjectRegistry<V> {
        let mut out = ObjectRegistry { by_identity: IdMap::default(), identity_of: IdMap::default(), next: self.next };
        for id in ids {
            if let Some(&identity) = self.identity_of.get(&id) {
                let handle = self.by_identity[&identity].handle.clone();
                out.by_identity.insert(identity, Entry { id, handle, count: 1 });
                out.identity_of.insert(id, identity);
            }
        }
        out
    }

    /// The current count of an id (0 when unregistered); for tests and diagnostics.
    pub fn count(&self, id: ObjId) -> usize {
        self.identity_of.get(&id).and_then(|i| self.by_identity.get(i)).map_or(0, |e| e.count)
    }

    /// Number of registered objects.
    pub fn len(&self) -> usize {
        self.by_identity.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_identity.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_keeps_ids() {
        let mut r: ObjectRegistry<&'static str> = ObjectRegistry::new();
        let a = r.acquire(1, "a");
        let b = r.acquire(2, "b");
        let s = r.subset([b, ObjId(99)]);
        assert_eq!(s.lookup(b), Some(&"b"));
        assert_eq!(s.lookup(a), None);
        assert_eq!(s.len(), 1);
    }
}
