//! The object model: plain Rust structs shown as typed UI objects.
//!
//! A struct implements [`Object`] (usually through [`ui_object!`](crate::ui_object)): its type name,
//! its fields read and written by name, its methods called by name. It is shared through an [`Obj`]
//! handle (an `Rc`), whose identity is the object's identity in the UI: the tracker gives each live
//! object one stable `{"obj":N}`, and the object is released when nothing references it any more.
//!
//! Under the hood each object has a *proxy*: an empty typed [`JValue`] object that stands for it in
//! the tracker's JSON resolver tree. [`ObjectResolver`](super::ObjectResolver) routes reads, writes and
//! calls on a proxy to the struct, so fields are always read live and nothing is copied.

use std::any::Any;
use std::cell::{Ref, RefCell, RefMut};
use std::collections::HashMap;
use std::fmt;
use std::rc::{Rc, Weak};

use super::value::{wrong_kind, UiValue};
use crate::protocol::ErrorCode;
use crate::tracker::{JValue, VarError};

/// A Rust type shown in the UI as a typed object. Implement it with [`ui_object!`](crate::ui_object)
/// or by hand.
///
/// Names are the wire names used in viewdef paths (`count`, `newText`, `add()`). Returning `None`
/// means "no such member", which the resolver reports as `path-failure`.
pub trait Object: 'static {
    /// The `type` property the UI sees; viewdefs are looked up by it (`Counter.DEFAULT`).
    fn type_name(&self) -> &str;
    /// Reads field `name`.
    fn get(&self, name: &str) -> Option<JValue>;
    /// Writes field `name`.
    fn set(&mut self, name: &str, value: &JValue) -> Option<Result<(), VarError>>;
    /// Calls method `name`: `None` for `m()`, `Some(v)` for `m(_)`.
    fn call(&mut self, name: &str, arg: Option<&JValue>) -> Option<Result<JValue, VarError>>;
}

/// The type-erased side of an object, as the resolver uses it.
pub(crate) trait Node {
    fn get(&self, name: &str) -> Result<JValue, VarError>;
    fn set(&self, name: &str, value: &JValue) -> Result<(), VarError>;
    fn call(&self, name: &str, arg: Option<&JValue>) -> Result<JValue, VarError>;
    fn as_any(self: Rc<Self>) -> Rc<dyn Any>;
}

struct Inner<T> {
    proxy: JValue,
    cell: RefCell<T>,
}

thread_local! {
    /// Proxy identity → object. Entries are removed when the object is dropped; a proxy outliving its
    /// object (still held by a snapshot) then reads as an empty object.
    static NODES: RefCell<HashMap<usize, Weak<dyn Node>>> = RefCell::new(HashMap::new());
}

/// The object a proxy stands for, if it is alive.
pub(crate) fn node_of(v: &JValue) -> Option<Rc<dyn Node>> {
    let JValue::Obj(_) = v else { return None };
    let key = v.identity()?;
    NODES.with(|n| n.borrow().get(&key).and_then(Weak::upgrade))
}

fn busy(name: &str) -> VarError {
    VarError::new(ErrorCode::PathFailure, format!("object is busy (re-entrant access to {name:?})"))
}

fn missing(type_name: &str, what: &str, name: &str) -> VarError {
    VarError::new(ErrorCode::PathFailure, format!("{type_name} has no {what} {name:?}"))
}

impl<T: Object> Node for Inner<T> {
    fn get(&self, name: &str) -> Result<JValue, VarError> {
        let obj = self.cell.try_borrow().map_err(|_| busy(name))?;
        obj.get(name).ok_or_else(|| missing(obj.type_name(), "field", name))
    }

    fn set(&self, name: &str, value: &JValue) -> Result<(), VarError> {
        let mut obj = self.cell.try_borrow_mut().map_err(|_| busy(name))?;
        match obj.set(name, value) {
            Some(r) => r,
            None => Err(missing(obj.type_name(), "field", name)),
        }
    }

    fn call(&self, name: &str, arg: Option<&JValue>) -> Result<JValue, VarError> {
        let mut obj = self.cell.try_borrow_mut().map_err(|_| busy(name))?;
        match obj.call(name, arg) {
            Some(r) => r,
            None => Err(missing(obj.type_name(), "method", name)),
        }
    }

    fn as_any(self: Rc<Self>) -> Rc<dyn Any> {
        self
    }
}

impl<T> Drop for Inner<T> {
    fn drop(&mut self) {
        if let Some(key) = self.proxy.identity() {
            // `try_with`: the table may already be gone when a thread exits.
            let _ = NODES.try_with(|n| n.borrow_mut().remove(&key));
        }
    }
}

/// A shared handle on a UI object: clone it to reference the same object from several places (a
/// list and a selection, say); all of them show the same `{"obj":N}`.
pub struct Obj<T: Object>(Rc<Inner<T>>);

impl<T: Object> Obj<T> {
    pub fn new(value: T) -> Self {
        let proxy = JValue::typed(value.type_name(), []);
        let inner = Rc::new(Inner { proxy, cell: RefCell::new(value) });
        let key = inner.proxy.identity().expect("objects have identity");
        let weak: Weak<dyn Node> = Rc::downgrade(&inner) as Weak<dyn Node>;
        NODES.with(|n| n.borrow_mut().insert(key, weak));
        Obj(inner)
    }

    /// Reads the object. Panics if it is being changed (as `RefCell` does).
    pub fn borrow(&self) -> Ref<'_, T> {
        self.0.cell.borrow()
    }

    /// Changes the object; the change is detected after the batch or handle closure that made it.
    pub fn borrow_mut(&self) -> RefMut<'_, T> {
        self.0.cell.borrow_mut()
    }

    /// Same object.
    pub fn ptr_eq(&self, other: &Obj<T>) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }

    /// The tracker-side stand-in of this object.
    pub fn proxy(&self) -> &JValue {
        &self.0.proxy
    }
}

impl<T: Object> Clone for Obj<T> {
    fn clone(&self) -> Self {
        Obj(self.0.clone())
    }
}

impl<T: Object + fmt::Debug> fmt::Debug for Obj<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.cell.try_borrow() {
            Ok(v) => write!(f, "Obj({v:?})"),
            Err(_) => f.write_str("Obj(<busy>)"),
        }
    }
}

impl<T: Object> UiValue for Obj<T> {
    fn to_ui(&self) -> JValue {
        self.0.proxy.clone()
    }

    fn from_ui(v: &JValue) -> Result<Self, VarError> {
        node_of(v)
            .and_then(|n| n.as_any().downcast::<Inner<T>>().ok())
            .map(Obj)
            .ok_or_else(|| wrong_kind(std::any::type_name::<T>(), v))
    }
}

/// Implements [`Object`] for a struct from a list of its fields and methods.
///
/// ```
/// use ui_gateway_client::ui_object;
///
/// struct Todo { text: String, done: bool, new_text: String }
/// impl Todo {
///     fn toggle(&mut self) { self.done = !self.done }
///     fn rename(&mut self, text: String) { self.text = text }
///     fn summary(&self) -> String { format!("{} ({})", self.text, self.done) }
/// }
/// ui_object!(Todo {
///     fields { text, done, new_text as "newText" }
///     methods { toggle(), rename(_), summary() }
/// });
/// ```
///
/// - `Type as "Name" { … }` changes the type name (default: the Rust type's name).
/// - A field is read with [`UiValue::to_ui`] and written with [`UiValue::from_ui`]; `f as "wire"`
///   renames it.
/// - `m()` calls `self.m()`; `m(_)` calls `self.m(arg)` with the written value converted to the
///   parameter's type. The return value may be any [`UiValue`] (`()` is nil) or a `Result` (see
///   [`IntoReturn`](crate::IntoReturn)). `m() as "wire"` renames.
#[macro_export]
macro_rules! ui_object {
    ($ty:ident $(as $tname:literal)? {
        $(fields { $($field:ident $(as $fname:literal)?),* $(,)? })?
        $(methods { $($method:ident ( $($arg:tt)? ) $(as $mname:literal)?),* $(,)? })?
    }) => {
        impl $crate::Object for $ty {
            fn type_name(&self) -> &str {
                $crate::__ui_pick!(stringify!($ty) $(, $tname)?)
            }
            #[allow(unused_variables)]
            fn get(&self, name: &str) -> Option<$crate::tracker::JValue> {
                $($(
                    if name == $crate::__ui_pick!(stringify!($field) $(, $fname)?) {
                        return Some($crate::UiValue::to_ui(&self.$field));
                    }
                )*)?
                None
            }
            #[allow(unused_variables)]
            fn set(
                &mut self,
                name: &str,
                value: &$crate::tracker::JValue,
            ) -> Option<Result<(), $crate::tracker::VarError>> {
                $($(
                    if name == $crate::__ui_pick!(stringify!($field) $(, $fname)?) {
                        return Some($crate::UiValue::from_ui(value).map(|v| self.$field = v));
                    }
                )*)?
                None
            }
            #[allow(unused_variables)]
            fn call(
                &mut self,
                name: &str,
                arg: Option<&$crate::tracker::JValue>,
            ) -> Option<Result<$crate::tracker::JValue, $crate::tracker::VarError>> {
                $($(
                    if name == $crate::__ui_pick!(stringify!($method) $(, $mname)?) {
                        return Some($crate::__ui_call!(self, $method, [$($arg)?], arg));
                    }
                )*)?
                None
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __ui_pick {
    ($default:expr) => {
        $default
    };
    ($default:expr, $name:literal) => {
        $name
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __ui_call {
    ($this:ident, $m:ident, [], $arg:ident) => {
        match $arg {
            None => $crate::IntoReturn::into_return($this.$m()),
            Some(_) => Err($crate::tracker::VarError::new(
                $crate::protocol::ErrorCode::PathFailure,
                concat!(stringify!($m), "() takes no value"),
            )),
        }
    };
    ($this:ident, $m:ident, [_], $arg:ident) => {
        match $arg.map($crate::UiValue::from_ui) {
            Some(Ok(v)) => $crate::IntoReturn::into_return($this.$m(v)),
            Some(Err(e)) => Err(e),
            None => Err($crate::tracker::VarError::new(
                $crate::protocol::ErrorCode::PathFailure,
                concat!(stringify!($m), "(_) needs a value"),
            )),
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IntoReturn;

    struct Item {
        text: String,
        done: bool,
    }
    impl Item {
        fn toggle(&mut self) {
            self.done = !self.done;
        }
        fn rename(&mut self, s: String) -> Result<(), VarError> {
            if s.is_empty() {
                return Err(VarError::new(ErrorCode::PathFailure, "empty"));
            }
            self.text = s;
            Ok(())
        }
    }
    crate::ui_object!(Item as "TodoItem" { fields { text, done as "isDone" } methods { toggle(), rename(_) as "setText" } });

    #[test]
    fn fields_methods_and_names() {
        let o = Obj::new(Item { text: "milk".into(), done: false });
        let n = node_of(o.proxy()).unwrap();
        assert_eq!(n.get("text").unwrap().as_str(), Some("milk"));
        assert!(matches!(n.get("isDone").unwrap(), JValue::Bool(false)));
        assert_eq!(n.get("done").unwrap_err().code, ErrorCode::PathFailure);
        n.call("toggle", None).unwrap();
        assert!(o.borrow().done);
        assert_eq!(n.call("toggle", Some(&JValue::Int(1))).unwrap_err().code, ErrorCode::PathFailure);
        n.call("setText", Some(&JValue::str("eggs"))).unwrap();
        assert_eq!(o.borrow().text, "eggs");
        assert!(n.call("setText", Some(&JValue::str(""))).is_err());
        assert!(n.call("setText", Some(&JValue::Int(3))).is_err());
        n.set("text", &JValue::str("bread")).unwrap();
        assert_eq!(o.borrow().text, "bread");
        assert!(n.set("text", &JValue::Int(1)).is_err());
        assert!(n.set("nope", &JValue::Int(1)).is_err());
        assert_eq!(o.borrow().type_name(), "TodoItem");
        assert!(().into_return().unwrap().is_nil());
    }

    #[test]
    fn identity_and_release() {
        let o = Obj::new(Item { text: "a".into(), done: false });
        let p = o.to_ui();
        assert!(p.ptr_eq(&o.clone().to_ui()));
        let back = Obj::<Item>::from_ui(&p).unwrap();
        assert!(back.ptr_eq(&o));
        drop(back);
        drop(o);
        // The proxy outlives the object: it no longer resolves.
        assert!(node_of(&p).is_none());
        assert!(Obj::<Item>::from_ui(&p).is_err());
        assert!(Obj::<Item>::from_ui(&JValue::Int(1)).is_err());
    }
}
