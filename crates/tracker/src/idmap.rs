//! A fast hasher for the tracker's integer keys (variable ids, object ids, identities).
//!
//! Every visited variable costs a few map lookups per pass (P1), so SipHash would dominate a 10,000
//! variable pass. Keys are ids the session allocates or pointer addresses, not attacker-chosen strings,
//! so a multiplicative hash is enough.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Fibonacci hashing of one integer (the `FxHash` idea, 64-bit).
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(K);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A `HashMap` keyed by small integers.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
