//! The state the Lua API callbacks share with the backend ([`ApiState`], with the pending
//! [`Timers`]) and the `self` convention every `session` method follows ([`strip_self`]).
//!
//! It is kept apart from the files that install those callbacks (`api.rs`, `timers.rs`, `modules.rs`,
//! `variables.rs`) so each of them depends on it and it on none of them.

use std::collections::BTreeMap;
use std::time::Duration;

use mlua::{Function, MultiValue, Table, Value};
use tokio::time::Instant;

use crate::protocol::ErrorCode;
use crate::tracker::VarError;

/// What Lua code asked for, shared between the callbacks and the backend.
#[derive(Default)]
pub struct ApiState {
    /// Site files this session loaded (`main.lua`, `require`, `dofile`), in load order; hot reload
    /// reruns them.
    pub loaded_files: Vec<String>,
    /// The site's `lua/` files as this session knows them (hot reload replaces them).
    pub sources: crate::site::LuaSources,
    /// Pending timers.
    pub timers: Timers,
    /// Next id for `createVariable` (0 = not started; then from −2^32 downward).
    pub next_lua_id: i64,
    /// Variables `destroyVariable` removed, children first, not yet announced to connections.
    pub destroyed: Vec<crate::ids::VarId>,
    /// The current app object (`getApp`).
    pub app: Option<Value>,
    /// `lua` property values Lua set on variable 1, run after the current phase (docs/lua-api.md "The lua property").
    pub pending_lua: Vec<String>,
}

/// Drops a leading `self` so both `session:m()` and `session.m()` work.
pub fn strip_self(this: &Table, mut args: MultiValue) -> MultiValue {
    if let Some(Value::Table(t)) = args.front() {
        if t == this {
            args.pop_front();
        }
    }
    args
}

/// At most this many pending timers per session.
pub const MAX_TIMERS: usize = 1000;
/// One pending timer.
pub struct Timer {
    pub callback: Function,
    pub due: Instant,
    pub interval: Option<Duration>,
}

/// Pending timers by handle; handles count from 1 and are never reused.
#[derive(Default)]
pub struct Timers {
    pub pending: BTreeMap<u64, Timer>,
    next_handle: u64,
}

impl Timers {
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.values().map(|t| t.due).min()
    }

    /// Handles due at `now`, earliest first (ties by handle).
    pub fn due(&self, now: Instant) -> Vec<u64> {
        let mut due: Vec<(Instant, u64)> =
            self.pending.iter().filter(|(_, t)| t.due <= now).map(|(h, t)| (t.due, *h)).collect();
        due.sort();
        due.into_iter().map(|(_, h)| h).collect()
    }

    pub(super) fn add(
        &mut self,
        callback: Function,
        delay: Duration,
        interval: Option<Duration>,
    ) -> Result<u64, VarError> {
        if self.pending.len() >= MAX_TIMERS {
            return Err(VarError::new(ErrorCode::LimitExceeded, "at most 1000 pending timers per session"));
        }
        self.next_handle += 1;
        let handle = self.next_handle;
        self.pending.insert(handle, Timer { callback, due: Instant::now() + delay, interval });
        Ok(handle)
    }
}
