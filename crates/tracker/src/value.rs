//! Snapshots: a resolved value reduced to what the wire can show (docs/variables.md "Values"). Both change
//! comparison and value JSON come from the snapshot; no text is built to compare.
//!
//! Three steps, so that the common case (nothing changed) neither allocates nor touches the registry:
//! - [`matches`] compares a host value with a stored snapshot (P2: no JSON, no allocation);
//! - [`build`] makes a [`Fresh`] snapshot of a changed value without taking registry counts;
//! - [`Fresh::commit`] registers its objects when, and only when, the snapshot is stored (docs/variables.md "Values").

use serde_json::Value as Json;

use super::registry::{ObjId, ObjectRegistry};
use super::{Resolver, VarError};
use crate::protocol::ErrorCode;

/// Values nested deeper than this are refused with `limit-exceeded`: at most this many arrays or objects
/// inside each other (an empty one counts like a full one), so `[[1]]` and `[[]]` both have depth 2.
pub const MAX_VALUE_DEPTH: usize = 32;

/// The shape of a host value, as a resolver reports it.
#[derive(Clone, PartialEq, Debug)]
pub enum Kind {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string with its bytes. Resolvers that can compare without copying also implement
    /// [`Resolver::str_eq`], which the comparison tries first.
    Str(Vec<u8>),
    /// An untyped sequence of n ≥ 1 elements, shown as an array.
    Seq(usize),
    /// A plain table with no (non-`_`) keys, shown as `[]`.
    EmptyPlain,
    /// Anything shown as `{"obj":N}`, with its identity (address).
    Object(usize),
}

/// An object occurrence in a snapshot: the wire id plus the identity it was registered under. Keeping
/// the identity lets [`matches`] compare without the registry; while the snapshot is stored the registry
/// holds a strong handle, so the identity cannot be reused by another object.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ObjRef {
    pub id: ObjId,
    pub identity: usize,
}

/// A comparable, serializable picture of a value.
#[derive(Clone, PartialEq, Debug)]
pub enum Snap {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<[u8]>),
    Obj(ObjRef),
    Arr(Box<[Snap]>),
}

const TWO_POW_53: f64 = 9_007_199_254_740_992.0;

#[cfg(test)]
thread_local! {
    /// Number of `Snap::to_json` calls on this thread (P2 tests: an unchanged pass builds no JSON).
    pub(crate) static JSON_BUILDS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Number of snapshots built on this thread (an unchanged pass builds none).
    pub(crate) static SNAP_BUILDS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Snap {
    /// Numbers are normalised: an integral float within ±2^53 is an integer, NaN/±inf is null.
    pub fn float(f: f64) -> Snap {
        if !f.is_finite() {
            Snap::Null
        } else if f.fract() == 0.0 && f.abs() <= TWO_POW_53 {
            Snap::Int(f as i64)
        } else {
            Snap::Float(f)
        }
    }

    /// The value JSON for this snapshot.
    pub fn to_json(&self) -> Json {
        #[cfg(test)]
        JSON_BUILDS.with(|c| c.set(c.get() + 1));
        self.json()
    }

    fn json(&self) -> Json {
        match self {
            Snap::Null => Json::Null,
            Snap::Bool(b) => Json::Bool(*b),
            Snap::Int(i) => Json::from(*i),
            Snap::Float(f) => serde_json::Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
            Snap::Str(bytes) => Json::String(String::from_utf8_lossy(bytes).into_owned()),
            Snap::Obj(r) => serde_json::json!({ "obj": r.id.0 }),
            Snap::Arr(items) => Json::Array(items.iter().map(Snap::json).collect()),
        }
    }

    /// Calls `f` for every object occurrence, depth first.
    pub fn for_each_obj(&self, f: &mut impl FnMut(&ObjRef)) {
        match self {
            Snap::Obj(r) => f(r),
            Snap::Arr(items) => items.iter().for_each(|s| s.for_each_obj(f)),
            _ => {}
        }
    }

    /// Takes one registry count per object occurrence (a snapshot stored in one more slot; its objects
    /// are registered already).
    pub fn retain_objs<V: Clone>(&self, registry: &mut ObjectRegistry<V>) {
        self.for_each_obj(&mut |r| registry.retain(r.id));
    }

    /// Drops the registry count of every object occurrence (a stored snapshot leaves its slot).
    pub fn release_objs<V: Clone>(&self, registry: &mut ObjectRegistry<V>) {
        self.for_each_obj(&mut |r| registry.release(r.id));
    }

    fn for_each_obj_mut(&mut self, f: &mut impl FnMut(&mut ObjRef)) {
        match self {
            Snap::Obj(r) => f(r),
            Snap::Arr(items) => items.iter_mut().for_each(|s| s.for_each_obj_mut(f)),
            _ => {}
        }
    }
}

fn too_deep() -> VarError {
    VarError::new(ErrorCode::LimitExceeded, format!("value nested deeper than {MAX_VALUE_DEPTH}"))
}

/// Whether `v` still looks exactly like `snap`: primitives by value (an integral float equals the
/// integer), strings by bytes, objects by identity, arrays element-wise. Allocates nothing unless the
/// resolver's `classify` does; never touches the registry.
pub fn matches<R: Resolver + ?Sized>(resolver: &R, v: &R::Value, snap: &Snap) -> bool {
    matches_at(resolver, v, snap, 0)
}

fn matches_at<R: Resolver + ?Sized>(resolver: &R, v: &R::Value, snap: &Snap, depth: usize) -> bool {
    if depth > MAX_VALUE_DEPTH {
        return false;
    }
    if let Snap::Str(bytes) = snap {
        if let Some(eq) = resolver.str_eq(v, bytes) {
            return eq;
        }
    }
    match (resolver.classify(v), snap) {
        (Kind::Nil, Snap::Null) => true,
        (Kind::Bool(a), Snap::Bool(b)) => a == *b,
        (Kind::Int(a), Snap::Int(b)) => a == *b,
        (Kind::Float(f), s) => Snap::float(f) == *s,
        (Kind::Str(a), Snap::Str(b)) => a[..] == b[..],
        (Kind::EmptyPlain, Snap::Arr(items)) => items.is_empty() && depth < MAX_VALUE_DEPTH,
        (Kind::Seq(n), Snap::Arr(items)) => {
            n == items.len()
                && items.iter().enumerate().all(|(i, s)| matches_at(resolver, &resolver.elem(v, i), s, depth + 1))
        }
        (Kind::Object(identity), Snap::Obj(r)) => r.identity == identity,
        _ => false,
    }
}

/// A snapshot that is built but not stored: its objects hold no registry counts yet.
pub struct Fresh<V> {
    snap: Snap,
    /// One handle per object occurrence, in depth-first order.
    handles: Vec<V>,
}

impl<V: Clone> Fresh<V> {
    /// Registers the snapshot's objects (one count per occurrence) and returns the stored snapshot.
    pub fn commit(self, registry: &mut ObjectRegistry<V>) -> Snap {
        let Fresh { mut snap, handles } = self;
        let mut handles = handles.into_iter();
        snap.for_each_obj_mut(&mut |r| {
            let handle = handles.next().expect("one handle per object occurrence");
            r.id = registry.acquire(r.identity, handle);
        });
        snap
    }

    /// The snapshot as built (object ids are not assigned yet).
    pub fn peek(&self) -> &Snap {
        &self.snap
    }
}

/// Builds the snapshot of `v` without registering anything (`limit-exceeded` past depth 32).
pub fn build<R: Resolver + ?Sized>(resolver: &R, v: &R::Value) -> Result<Fresh<R::Value>, VarError> {
    #[cfg(test)]
    SNAP_BUILDS.with(|c| c.set(c.get() + 1));
    let mut handles = Vec::new();
    let snap = build_at(resolver, v, 0, &mut handles)?;
    Ok(Fresh { snap, handles })
}

fn build_at<R: Resolver + ?Sized>(
    resolver: &R,
    v: &R::Value,
    depth: usize,
    handles: &mut Vec<R::Value>,
) -> Result<Snap, VarError> {
    if depth > MAX_VALUE_DEPTH {
        return Err(too_deep());
    }
    Ok(match resolver.classify(v) {
        Kind::Nil => Snap::Null,
        Kind::Bool(b) => Snap::Bool(b),
        Kind::Int(i) => Snap::Int(i),
        Kind::Float(f) => Snap::float(f),
        Kind::Str(s) => Snap::Str(s.into_boxed_slice()),
        // A container one level past the limit is refused even when empty (review L5).
        Kind::EmptyPlain | Kind::Seq(_) if depth >= MAX_VALUE_DEPTH => return Err(too_deep()),
        Kind::EmptyPlain => Snap::Arr(Box::new([])),
        Kind::Object(identity) => {
            handles.push(v.clone());
            Snap::Obj(ObjRef { id: ObjId(0), identity })
        }
        Kind::Seq(n) => {
            let mut items = Vec::with_capacity(n);
            for i in 0..n {
                items.push(build_at(resolver, &resolver.elem(v, i), depth + 1, handles)?);
            }
            Snap::Arr(items.into_boxed_slice())
        }
    })
}

/// Builds and stores in one step: the snapshot of `v` with registry counts taken.
pub fn snapshot<R: Resolver + ?Sized>(
    resolver: &R,
    v: &R::Value,
    registry: &mut ObjectRegistry<R::Value>,
) -> Result<Snap, VarError> {
    build(resolver, v).map(|f| f.commit(registry))
}

/// Whether written JSON nests more than [`MAX_VALUE_DEPTH`] arrays or objects, with the same convention
/// as snapshots: `outer` is the number of containers around `j`, and an empty container counts.
pub fn json_too_deep(json: &Json) -> bool {
    fn walk(j: &Json, outer: usize) -> bool {
        match j {
            Json::Array(_) | Json::Object(_) if outer >= MAX_VALUE_DEPTH => true,
            Json::Array(items) => items.iter().any(|i| walk(i, outer + 1)),
            Json::Object(map) => map.values().any(|i| walk(i, outer + 1)),
            _ => false,
        }
    }
    walk(json, 0)
}

/// The object ids a written value refers to (`{"obj":N}` anywhere inside it).
pub fn json_obj_refs(json: &Json, out: &mut Vec<ObjId>) {
    match json {
        Json::Array(items) => items.iter().for_each(|i| json_obj_refs(i, out)),
        Json::Object(map) => {
            if map.len() == 1 {
                if let Some(n) = map.get("obj").and_then(Json::as_u64) {
                    out.push(ObjId(n));
                    return;
                }
            }
            map.values().for_each(|i| json_obj_refs(i, out));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_stable_while_counted_and_never_reused() {
        let mut r: ObjectRegistry<u8> = ObjectRegistry::new();
        let a = r.acquire(100, 0);
        assert_eq!(r.acquire(100, 0), a);
        let b = r.acquire(200, 0);
        assert_ne!(a, b);
        r.release(a);
        assert_eq!(r.peek(100), Some(a));
        r.release(a);
        assert_eq!(r.peek(100), None);
        let again = r.acquire(100, 0);
        assert!(again.0 > b.0, "ids are never reused");
        assert_eq!(r.len(), 2);
        let snap = Snap::Arr(
            vec![Snap::Obj(ObjRef { id: again, identity: 100 }), Snap::Obj(ObjRef { id: b, identity: 200 })].into(),
        );
        snap.retain_objs(&mut r);
        assert_eq!(r.count(again), 2);
        snap.release_objs(&mut r);
        snap.release_objs(&mut r);
        assert!(r.is_empty());
    }

    #[test]
    fn numbers_normalise() {
        assert_eq!(Snap::float(5.0), Snap::Int(5));
        assert_eq!(Snap::float(-0.0), Snap::Int(0));
        assert_eq!(Snap::float(f64::NAN), Snap::Null);
        assert_eq!(Snap::float(f64::INFINITY), Snap::Null);
        assert_eq!(Snap::float(1.5).to_json(), json!(1.5));
        assert_eq!(Snap::float(1e300).to_json(), json!(1e300));
        assert_eq!(Snap::float(9_007_199_254_740_994.0), Snap::Float(9_007_199_254_740_994.0));
    }

    #[test]
    fn json_of_snapshots() {
        let obj = Snap::Obj(ObjRef { id: ObjId(3), identity: 0 });
        let s = Snap::Arr(vec![Snap::Int(1), Snap::Str(b"<a>".to_vec().into()), obj, Snap::Null].into());
        assert_eq!(s.to_json(), json!([1, "<a>", {"obj": 3}, null]));
        assert_eq!(Snap::Str(b"\xff".to_vec().into()).to_json(), json!("\u{fffd}"));
    }

    #[test]
    fn json_depth_and_refs() {
        let mut deep = json!(1);
        for _ in 0..32 {
            deep = json!([deep]);
        }
        assert!(!json_too_deep(&deep));
        assert!(json_too_deep(&json!([deep])));
        // Review L5: 32 empty arrays inside each other are the limit, 33 are over it.
        let mut empty = json!([]);
        for _ in 0..31 {
            empty = json!([empty]);
        }
        assert!(!json_too_deep(&empty));
        assert!(json_too_deep(&json!([empty.clone()])));
        assert!(json_too_deep(&json!({"a": [empty]})));
        let mut refs = Vec::new();
        json_obj_refs(&json!([{"obj": 4}, {"a": {"obj": 5}}, {"obj": 6, "x": 1}]), &mut refs);
        assert_eq!(refs, vec![ObjId(4), ObjId(5)]);
    }
}
