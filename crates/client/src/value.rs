//! Conversions between Rust values and the tracker's [`JValue`] tree: what a field reads as (and
//! hence its value JSON) and what a written value JSON becomes.
//!
//! Scalars, `String`, `Option` (`None` = `null`), `Vec` (an array), `()` (nil), [`Obj`](super::Obj)
//! handles (`{"obj":N}`), `serde_json::Value` and `JValue` itself convert automatically.

use serde_json::Value as Json;

use crate::protocol::ErrorCode;
use crate::tracker::{JValue, VarError};

/// A Rust value that can be shown in the UI and written from it.
pub trait UiValue: Sized {
    /// The value as the tracker sees it (cheap: objects are handles).
    fn to_ui(&self) -> JValue;
    /// The value a browser wrote; a value of the wrong kind is a `path-failure`.
    fn from_ui(v: &JValue) -> Result<Self, VarError>;
}

/// The `path-failure` for a written value of the wrong kind.
pub(crate) fn wrong_kind(expected: &str, got: &JValue) -> VarError {
    VarError::new(ErrorCode::PathFailure, format!("expected {expected}, got {got:?}"))
}

impl UiValue for () {
    fn to_ui(&self) -> JValue {
        JValue::Nil
    }
    fn from_ui(_: &JValue) -> Result<Self, VarError> {
        Ok(())
    }
}

impl UiValue for bool {
    fn to_ui(&self) -> JValue {
        JValue::Bool(*self)
    }
    fn from_ui(v: &JValue) -> Result<Self, VarError> {
        match v {
            JValue::Bool(b) => Ok(*b),
            other => Err(wrong_kind("a boolean", other)),
        }
    }
}

macro_rules! integers {
    ($($t:ty),*) => {$(
        impl UiValue for $t {
            fn to_ui(&self) -> JValue {
                match i64::try_from(*self) {
                    Ok(i) => JValue::Int(i),
                    Err(_) => JValue::Float(*self as f64),
                }
            }
            fn from_ui(v: &JValue) -> Result<Self, VarError> {
                let i = match v {
                    JValue::Int(i) => Some(*i),
                    JValue::Float(x) if x.fract() == 0.0 && x.abs() < 9.2e18 => Some(*x as i64),
                    _ => None,
                };
                i.and_then(|i| <$t>::try_from(i).ok()).ok_or_else(|| wrong_kind(stringify!($t), v))
            }
        }
    )*};
}
integers!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

macro_rules! floats {
    ($($t:ty),*) => {$(
        impl UiValue for $t {
            fn to_ui(&self) -> JValue {
                JValue::Float(*self as f64)
            }
            fn from_ui(v: &JValue) -> Result<Self, VarError> {
                match v {
                    JValue::Int(i) => Ok(*i as $t),
                    JValue::Float(x) => Ok(*x as $t),
                    other => Err(wrong_kind("a number", other)),
                }
            }
        }
    )*};
}
floats!(f32, f64);

impl UiValue for String {
    fn to_ui(&self) -> JValue {
        JValue::str(self)
    }
    fn from_ui(v: &JValue) -> Result<Self, VarError> {
        match v {
            JValue::Str(s) => Ok(s.to_string()),
            other => Err(wrong_kind("a string", other)),
        }
    }
}

impl<T: UiValue> UiValue for Option<T> {
    fn to_ui(&self) -> JValue {
        self.as_ref().map_or(JValue::Nil, T::to_ui)
    }
    fn from_ui(v: &JValue) -> Result<Self, VarError> {
        match v {
            JValue::Nil => Ok(None),
            other => T::from_ui(other).map(Some),
        }
    }
}

impl<T: UiValue> UiValue for Vec<T> {
    fn to_ui(&self) -> JValue {
        JValue::seq(self.iter().map(T::to_ui))
    }
    fn from_ui(v: &JValue) -> Result<Self, VarError> {
        match v {
            JValue::Seq(items) => items.borrow().iter().map(T::from_ui).collect(),
            other => Err(wrong_kind("an array", other)),
        }
    }
}

impl UiValue for JValue {
    fn to_ui(&self) -> JValue {
        self.clone()
    }
    fn from_ui(v: &JValue) -> Result<Self, VarError> {
        Ok(v.clone())
    }
}

impl UiValue for Json {
    fn to_ui(&self) -> JValue {
        match self {
            Json::Null => JValue::Nil,
            Json::Bool(b) => JValue::Bool(*b),
            Json::Number(n) => n.as_i64().map_or_else(|| JValue::Float(n.as_f64().unwrap_or(f64::NAN)), JValue::Int),
            Json::String(s) => JValue::str(s),
            Json::Array(items) => JValue::seq(items.iter().map(Json::to_ui)),
            Json::Object(map) => JValue::object(map.iter().map(|(k, v)| (k.as_str(), v.to_ui()))),
        }
    }
    fn from_ui(v: &JValue) -> Result<Self, VarError> {
        Ok(match v {
            JValue::Nil => Json::Null,
            JValue::Bool(b) => Json::Bool(*b),
            JValue::Int(i) => Json::from(*i),
            JValue::Float(x) => serde_json::Number::from_f64(*x).map_or(Json::Null, Json::Number),
            JValue::Str(s) => Json::String(s.to_string()),
            JValue::Seq(items) => Json::Array(items.borrow().iter().map(Json::from_ui).collect::<Result<_, _>>()?),
            other => return Err(wrong_kind("plain data", other)),
        })
    }
}

/// What a method's return value becomes: any [`UiValue`], or a `Result` whose error is reported on
/// the variable (as `path-failure` unless it is a [`VarError`] already).
pub trait IntoReturn {
    fn into_return(self) -> Result<JValue, VarError>;
}

impl<T: UiValue> IntoReturn for T {
    fn into_return(self) -> Result<JValue, VarError> {
        Ok(self.to_ui())
    }
}

impl<T: UiValue, E: Into<MethodError>> IntoReturn for Result<T, E> {
    fn into_return(self) -> Result<JValue, VarError> {
        self.map(|v| v.to_ui()).map_err(|e| e.into().0)
    }
}

/// The error of a method that returns `Result`: a [`VarError`], or any message (a `path-failure`).
pub struct MethodError(pub VarError);

impl From<VarError> for MethodError {
    fn from(e: VarError) -> Self {
        MethodError(e)
    }
}

impl From<String> for MethodError {
    fn from(s: String) -> Self {
        MethodError(VarError::new(ErrorCode::PathFailure, s))
    }
}

impl From<&str> for MethodError {
    fn from(s: &str) -> Self {
        MethodError(VarError::new(ErrorCode::PathFailure, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_round_trip() {
        assert_eq!(i64::from_ui(&5i64.to_ui()).unwrap(), 5);
        assert_eq!(u8::from_ui(&JValue::Float(7.0)).unwrap(), 7);
        assert_eq!(u8::from_ui(&JValue::Int(300)).unwrap_err().code, ErrorCode::PathFailure);
        assert_eq!(f64::from_ui(&JValue::Int(2)).unwrap(), 2.0);
        assert!(bool::from_ui(&JValue::Int(1)).is_err());
        assert_eq!(String::from_ui(&"x".to_string().to_ui()).unwrap(), "x");
        assert_eq!(Option::<i64>::from_ui(&JValue::Nil).unwrap(), None);
        assert_eq!(Option::<i64>::from_ui(&JValue::Int(3)).unwrap(), Some(3));
        assert!(None::<i64>.to_ui().is_nil());
        assert_eq!(Vec::<i64>::from_ui(&vec![1i64, 2].to_ui()).unwrap(), vec![1, 2]);
        assert!(().to_ui().is_nil());
    }

    #[test]
    fn json_values() {
        let j = json!([1, 2.5, "a", null, true, [3]]);
        assert_eq!(Json::from_ui(&j.to_ui()).unwrap(), j);
        assert!(Json::from_ui(&json!({"a": 1}).to_ui()).is_err());
    }

    #[test]
    fn method_returns() {
        assert_eq!(3i64.into_return().unwrap().as_int(), Some(3));
        let r: Result<i64, &str> = Err("nope");
        assert_eq!(r.into_return().unwrap_err().code, ErrorCode::PathFailure);
    }
}
