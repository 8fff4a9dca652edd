//! Snapshots: a resolved value reduced to what the wire can show (lua-and-tracking.md §3.1). Both change
//! comparison and value JSON come from the snapshot; no text is built to compare.

use serde_json::Value as Json;

use super::registry::{ObjId, ObjectRegistry};
use super::{Resolver, VarError};
use crate::protocol::ErrorCode;

/// Values nested deeper than this are refused with `limit-exceeded`.
pub const MAX_VALUE_DEPTH: usize = 32;

/// The shape of a host value, as a resolver reports it.
#[derive(Clone, PartialEq, Debug)]
pub enum Kind {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Vec<u8>),
    /// An untyped sequence of n ≥ 1 elements, shown as an array.
    Seq(usize),
    /// A plain table with no (non-`_`) keys, shown as `[]`.
    EmptyPlain,
    /// Anything shown as `{"obj":N}`, with its identity (address).
    Object(usize),
}

/// A comparable, serializable picture of a value.
#[derive(Clone, PartialEq, Debug)]
pub enum Snap {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<[u8]>),
    Obj(ObjId),
    Arr(Box<[Snap]>),
}

const TWO_POW_53: f64 = 9_007_199_254_740_992.0;

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
        match self {
            Snap::Null => Json::Null,
            Snap::Bool(b) => Json::Bool(*b),
            Snap::Int(i) => Json::from(*i),
            Snap::Float(f) => serde_json::Number::from_f64(*f).map(Json::Number).unwrap_or(Json::Null),
            Snap::Str(bytes) => Json::String(String::from_utf8_lossy(bytes).into_owned()),
            Snap::Obj(id) => serde_json::json!({ "obj": id.0 }),
            Snap::Arr(items) => Json::Array(items.iter().map(Snap::to_json).collect()),
        }
    }
}

/// Builds the snapshot of `v`, taking registry counts for the objects it mentions.
pub fn snapshot<R: Resolver + ?Sized>(
    resolver: &R,
    v: &R::Value,
    registry: &mut ObjectRegistry<R::Value>,
    depth: usize,
) -> Result<Snap, VarError> {
    if depth > MAX_VALUE_DEPTH {
        return Err(VarError::new(ErrorCode::LimitExceeded, "value nested deeper than 32"));
    }
    Ok(match resolver.classify(v) {
        Kind::Nil => Snap::Null,
        Kind::Bool(b) => Snap::Bool(b),
        Kind::Int(i) => Snap::Int(i),
        Kind::Float(f) => Snap::float(f),
        Kind::Str(s) => Snap::Str(s.into_boxed_slice()),
        Kind::EmptyPlain => Snap::Arr(Box::new([])),
        Kind::Object(identity) => Snap::Obj(registry.acquire(identity, v)),
        Kind::Seq(n) => {
            let mut items = Vec::with_capacity(n);
            for i in 0..n {
                let e = resolver.elem(v, i);
                match snapshot(resolver, &e, registry, depth + 1) {
                    Ok(s) => items.push(s),
                    Err(err) => {
                        items.iter().for_each(|s| registry.release_snap(s));
                        return Err(err);
                    }
                }
            }
            Snap::Arr(items.into_boxed_slice())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_normalise() {
        assert_eq!(Snap::float(5.0), Snap::Int(5));
        assert_eq!(Snap::float(f64::NAN), Snap::Null);
        assert_eq!(Snap::float(f64::INFINITY), Snap::Null);
        assert_eq!(Snap::float(1.5).to_json(), json!(1.5));
        assert_eq!(Snap::float(1e300).to_json(), json!(1e300));
    }

    #[test]
    fn json_of_snapshots() {
        let s =
            Snap::Arr(vec![Snap::Int(1), Snap::Str(b"<a>".to_vec().into()), Snap::Obj(ObjId(3)), Snap::Null].into());
        assert_eq!(s.to_json(), json!([1, "<a>", {"obj": 3}, null]));
        assert_eq!(Snap::Str(b"\xff".to_vec().into()).to_json(), json!("\u{fffd}"));
    }
}
