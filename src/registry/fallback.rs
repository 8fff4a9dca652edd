//! Vended ids a node hands out on its own while Redis cannot be reached.
//!
//! They must never meet an id from the shared counter, nor one of another node: they live above
//! 2^52 (the counter would need 4.5 · 10^15 sessions to get there), the node id sits in bits 40–47,
//! and the low 40 bits count. Everything stays below 2^53, so the id is exact in JavaScript and in
//! any JSON number. The count starts at the wall clock's milliseconds (mod 2^40, about 12.7 days),
//! so a restarted node does not hand out its own earlier fallback ids again unless it gave out more
//! of them than milliseconds passed between the two starts.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::ids::{NodeId, VendedId};

const BASE: u64 = 1 << 52;
const COUNT_BITS: u32 = 40;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

#[derive(Debug)]
pub struct FallbackIds {
    node: NodeId,
    next: AtomicU64,
}

impl FallbackIds {
    pub fn new(node: NodeId, start: u64) -> Self {
        FallbackIds { node, next: AtomicU64::new(start) }
    }

    pub fn from_clock(node: NodeId) -> Self {
        Self::new(node, super::unix_ms())
    }

    pub fn next(&self) -> VendedId {
        let count = self.next.fetch_add(1, Ordering::Relaxed) & COUNT_MASK;
        VendedId(BASE | (u64::from(self.node.0) << COUNT_BITS) | count)
    }

    /// Whether `id` is a fallback id (docs and tests tell them apart).
    pub fn is_fallback(id: VendedId) -> bool {
        id.0 >= BASE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_ids_are_per_node_json_safe_and_above_the_counter() {
        let a = FallbackIds::new(NodeId(1), COUNT_MASK);
        let b = FallbackIds::new(NodeId(2), COUNT_MASK);
        let (a1, a2, b1) = (a.next(), a.next(), b.next());
        assert_ne!(a1, a2);
        assert_ne!(a1, b1);
        for id in [a1, a2, b1] {
            assert!(id.0 < 1 << 53, "{id} is exact in a JSON number");
            assert!(FallbackIds::is_fallback(id));
        }
        assert!(!FallbackIds::is_fallback(VendedId(12345)));
        let top = FallbackIds::new(NodeId(0xff), COUNT_MASK).next();
        assert!(top.0 < 1 << 53);
    }
}
