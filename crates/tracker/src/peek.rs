//! Peeking: reading plain fields of one value without running host code, so a pass can confirm a run of
//! unchanged siblings in one critical section and one host entry (BENCHMARKS.md).
//!
//! A peek is an optimisation only. It answers "certainly this primitive" or "don't know"; every "don't
//! know", and every value that differs from the stored snapshot, goes through the normal read
//! ([`Resolver::get`], metamethods and all), so what a pass reports never depends on whether a resolver
//! can peek.
//!
//! [`Resolver::get`]: super::Resolver::get

use super::value::Snap;

/// The last (and only) segment of a path that can be peeked: a field name or a 0-based index.
pub enum PeekKey<'a, K> {
    Name(&'a K),
    Index(u32),
}

/// What a peek found, borrowed from the host for the duration of the callback.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Peek<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a [u8]),
    /// Anything else, or a value that only a full read can decide (absent fields, which a prototype or
    /// `__index` may supply; tables, whose snapshot depends on their keys and type).
    Unknown,
}

impl Peek<'_> {
    /// Whether a value peeked as `self` certainly has the snapshot `snap`, with the rules of
    /// [`value::matches`](super::value::matches): an integral float equals the integer, strings compare
    /// by bytes. `Unknown` matches nothing.
    pub fn matches(self, snap: &Snap) -> bool {
        match (self, snap) {
            (Peek::Bool(a), Snap::Bool(b)) => a == *b,
            (Peek::Int(a), Snap::Int(b)) => a == *b,
            (Peek::Float(f), s) => Snap::float(f) == *s,
            (Peek::Str(a), Snap::Str(b)) => a == &b[..],
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ObjId;
    use crate::value::ObjRef;

    #[test]
    fn peeks_match_snapshots_like_values_do() {
        assert!(Peek::Str(b"abc").matches(&Snap::Str(b"abc".to_vec().into())));
        assert!(!Peek::Str(b"abc").matches(&Snap::Str(b"abd".to_vec().into())));
        assert!(!Peek::Str(b"1").matches(&Snap::Int(1)));
        assert!(Peek::Int(3).matches(&Snap::Int(3)));
        assert!(!Peek::Int(3).matches(&Snap::Float(3.5)));
        assert!(Peek::Float(3.0).matches(&Snap::Int(3)), "an integral float is the integer");
        assert!(Peek::Float(0.25).matches(&Snap::Float(0.25)));
        assert!(Peek::Float(f64::NAN).matches(&Snap::Null), "NaN shows as null");
        assert!(Peek::Bool(false).matches(&Snap::Bool(false)));
        assert!(!Peek::Bool(true).matches(&Snap::Int(1)));
        let obj = Snap::Obj(ObjRef { id: ObjId(1), identity: 7 });
        for snap in [Snap::Null, obj, Snap::Arr(Box::new([])), Snap::Str(Box::new([]))] {
            assert!(!Peek::Unknown.matches(&snap), "{snap:?}");
        }
    }

    #[test]
    fn the_json_resolver_peeks_own_fields_and_elements() {
        use crate::{JValue, JsonResolver, Resolver};
        let res = JsonResolver::new();
        let proto = JValue::object([("inherited", JValue::Int(1))]);
        let obj =
            JValue::instance(&proto, [("s", JValue::str("x")), ("n", JValue::Float(2.5)), ("o", JValue::object([]))]);
        let names: Vec<std::rc::Rc<str>> =
            ["s", "n", "o", "inherited"].iter().map(|n| res.intern(n).unwrap()).collect();
        let mut keys: Vec<PeekKey<'_, std::rc::Rc<str>>> = names.iter().map(PeekKey::Name).collect();
        keys.push(PeekKey::Index(0));
        let mut seen = Vec::new();
        assert!(res.peek(&obj, &keys, &mut |i, p| seen.push((i, format!("{p:?}")))));
        let expected = ["Str([120])", "Float(2.5)", "Unknown", "Unknown", "Unknown"];
        assert_eq!(seen, expected.iter().enumerate().map(|(i, s)| (i, s.to_string())).collect::<Vec<_>>());

        let seq = JValue::seq([JValue::Bool(true)]);
        let mut seen = Vec::new();
        assert!(
            res.peek(&seq, &[PeekKey::Index(0), PeekKey::Index(1)], &mut |i, p| seen.push((i, p == Peek::Bool(true))))
        );
        assert_eq!(seen, vec![(0, true), (1, false)]);
        assert!(!res.peek(&JValue::Int(1), &[PeekKey::Index(0)], &mut |_, _| unreachable!()));
    }
}
