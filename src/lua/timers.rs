//! Lua timers (docs/lua-api.md "Timers"): `setTimeout`, `setInterval`, `setImmediate`, `clearTimer`
//! and aliases. Lua only records timers (in [`super::state::Timers`]); the session task fires them, each as
//! its own batch.

use std::sync::Arc;
use std::time::Duration;

use mlua::{Lua, MultiValue, Table, Value};
use parking_lot::Mutex;

use super::resolver::{raise, raise_code};
use super::state::{strip_self, ApiState};
use crate::protocol::ErrorCode;

/// Intervals shorter than this are raised to it.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Delays longer than this (a year) are lowered to it: a later deadline cannot be represented on every
/// platform's clock, and no session lives that long.
pub const MAX_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

/// A delay argument in milliseconds: negative, NaN or missing is 0; huge (even infinite) is [`MAX_DELAY`].
fn millis(v: Option<Value>) -> Duration {
    let ms = match v {
        Some(Value::Integer(i)) => i.max(0) as f64,
        Some(Value::Number(f)) if !f.is_nan() => f.max(0.0),
        _ => 0.0,
    };
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(MAX_DELAY).min(MAX_DELAY)
}

pub fn install(lua: &Lua, session: &Table, state: Arc<Mutex<ApiState>>) -> mlua::Result<()> {
    let add = |interval: bool| {
        let (st, this) = (state.clone(), session.clone());
        lua.create_function(move |_, args: MultiValue| {
            let mut args = strip_self(&this, args);
            let Some(Value::Function(callback)) = args.pop_front() else {
                return Err(raise_code(ErrorCode::BadMessage, "a timer needs a function"));
            };
            let delay = millis(args.pop_front());
            let every = interval.then(|| delay.max(MIN_INTERVAL));
            let delay = every.unwrap_or(delay);
            st.lock().timers.add(callback, delay, every).map_err(raise)
        })
    };
    let set_timeout = add(false)?;
    let set_interval = add(true)?;
    let (st, this) = (state.clone(), session.clone());
    let clear = lua.create_function(move |_, args: MultiValue| {
        let mut args = strip_self(&this, args);
        if let Some(Value::Integer(h)) = args.pop_front() {
            st.lock().timers.pending.remove(&(h as u64));
        }
        Ok(())
    })?;
    let this = session.clone();
    let set_timeout_for_immediate = set_timeout.clone();
    let set_immediate = lua.create_function(move |_, args: MultiValue| {
        let mut args = strip_self(&this, args);
        let f = args.pop_front().unwrap_or(Value::Nil);
        set_timeout_for_immediate.call::<Value>((f, 0))
    })?;
    session.set("setTimeout", set_timeout)?;
    session.set("setInterval", set_interval)?;
    session.set("setImmediate", set_immediate)?;
    for name in ["clearTimer", "clearTimeout", "clearInterval", "clearImmediate"] {
        session.set(name, clear.clone())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_never_panic_and_are_clamped() {
        let ms = |v: Value| millis(Some(v));
        assert_eq!(ms(Value::Number(1e300)), MAX_DELAY);
        assert_eq!(ms(Value::Number(f64::INFINITY)), MAX_DELAY);
        assert_eq!(ms(Value::Number(f64::NAN)), Duration::ZERO);
        assert_eq!(ms(Value::Number(-5.0)), Duration::ZERO);
        assert_eq!(ms(Value::Integer(i64::MAX)), MAX_DELAY);
        assert_eq!(ms(Value::Integer(i64::MIN)), Duration::ZERO);
        assert_eq!(ms(Value::Integer(1500)), Duration::from_millis(1500));
        assert_eq!(millis(None), Duration::ZERO);
    }
}
