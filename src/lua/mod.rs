//! The per-session Lua backend: one sandboxed Lua state with memory and instruction limits, the
//! `session` global that `main.lua` talks to, and the session's [`Tracker`] over a [`LuaResolver`].
//!
//! Seed sequence: `Session::new` → [`LuaBackend::new`] (creates the state and `Tracker::new(resolver)`)
//! → [`LuaBackend::load_main`] (runs `main.lua`, whose `session:createAppVariable(app)` creates
//! variable 1).

mod api;
pub mod limits;
pub mod resolver;
pub mod sandbox;

use std::sync::Arc;

use mlua::{Lua, Value};
use parking_lot::Mutex;

use crate::ids::{VarId, VendedId};
use crate::protocol::ErrorCode;
use crate::tracker::{Tracker, VarError};
pub use limits::Budget;
pub use resolver::LuaResolver;

use api::ApiState;

/// Limits and locations for a session's Lua state.
#[derive(Clone, Debug)]
pub struct LuaConfig {
    /// Heap limit in bytes.
    pub memory_limit: usize,
    /// Instructions per phase.
    pub instruction_budget: u64,
}

impl Default for LuaConfig {
    fn default() -> Self {
        LuaConfig { memory_limit: 64 << 20, instruction_budget: 200_000_000 }
    }
}

/// Failure to build a Lua state at all (not a script error).
#[derive(Debug, thiserror::Error)]
#[error("cannot create the Lua state: {0}")]
pub struct LuaInitError(#[from] mlua::Error);

/// One session's Lua: state, limits, tracker.
pub struct LuaBackend {
    lua: Lua,
    budget: Arc<Budget>,
    api: Arc<Mutex<ApiState>>,
    tracker: Tracker<LuaResolver>,
    /// Why `main.lua` failed, answered to `watch 1` instead of `not-found`.
    startup_error: Option<VarError>,
}

impl LuaBackend {
    /// Creates the sandboxed state, the `session` global and the per-session tracker.
    pub fn new(vended: VendedId, config: &LuaConfig) -> Result<Self, LuaInitError> {
        let lua = sandbox::new_state()?;
        let budget = Arc::new(Budget::new(config.instruction_budget));
        limits::install_budget(&lua, budget.clone())?;
        let api = Arc::new(Mutex::new(ApiState::default()));
        api::install(&lua, vended, api.clone(), budget.clone())?;
        let resolver = LuaResolver::new(&lua, budget.clone())?;
        let tracker = Tracker::new(resolver);
        // The limit goes on last so the fixed setup cost never counts against a script.
        lua.set_memory_limit(config.memory_limit)?;
        Ok(LuaBackend { lua, budget, api, tracker, startup_error: None })
    }

    /// Runs `main.lua` as its own phase, then applies what it asked for (variable 1).
    ///
    /// A failure is kept as the startup error; the session lives on without variable 1.
    pub fn load_main(&mut self, source: &str) -> Result<(), VarError> {
        self.budget.begin_phase();
        let result = self.lua.load(source).set_name("@lua/main.lua").set_mode(mlua::ChunkMode::Text).exec();
        let result = match result {
            Ok(()) if self.budget.exhausted() => {
                Err(VarError::new(ErrorCode::LuaTimeout, "Lua instruction budget exhausted"))
            }
            other => other.map_err(|e| resolver::lua_error(&self.budget, &e)),
        };
        self.apply_pending();
        if let Err(e) = &result {
            self.startup_error = Some(e.clone());
        }
        result
    }

    /// Applies operations Lua queued during the last call (they cannot touch the tracker while it runs).
    fn apply_pending(&mut self) {
        let pending = std::mem::take(&mut self.api.lock().pending_app);
        if let Some(app) = pending {
            if let Err(e) = self.tracker.create_root(VarId::APP, app, &[]) {
                tracing::warn!(code = %e.code, message = %e.description, "createAppVariable failed");
            }
        }
    }

    pub fn tracker(&self) -> &Tracker<LuaResolver> {
        &self.tracker
    }

    pub fn tracker_mut(&mut self) -> &mut Tracker<LuaResolver> {
        &mut self.tracker
    }

    pub fn startup_error(&self) -> Option<&VarError> {
        self.startup_error.as_ref()
    }

    /// Bytes used by the Lua heap.
    pub fn used_memory(&self) -> usize {
        self.lua.used_memory()
    }

    /// The app object `main.lua` registered, if any.
    pub fn app(&self) -> Option<Value> {
        self.api.lock().app.clone()
    }

    /// Evaluates a snippet in the session's state (tests and diagnostics).
    pub fn eval<T: mlua::FromLuaMulti>(&self, code: &str) -> Result<T, VarError> {
        self.budget.begin_phase();
        self.lua.load(code).set_name("=eval").eval::<T>().map_err(|e| resolver::lua_error(&self.budget, &e))
    }

    /// The error a `watch` of variable 1 gets while it does not exist.
    pub fn missing_app_error(&self) -> VarError {
        self.startup_error.clone().unwrap_or_else(|| VarError::new(ErrorCode::NotFound, "variable 1 does not exist"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> LuaBackend {
        LuaBackend::new(VendedId(1), &LuaConfig::default()).unwrap()
    }

    #[test]
    fn main_lua_creates_variable_one() {
        let mut b = backend();
        b.load_main("local A = {type='Adder'} A.__index = A session:createAppVariable(setmetatable({a=''}, A))")
            .unwrap();
        let state = serde_json::to_value(b.tracker().full_state(VarId::APP)).unwrap();
        assert_eq!(
            state,
            serde_json::json!([{"type":"update","data":{"varId":1,"value":{"obj":1},"properties":{"type":"Adder"}}}])
        );
        assert!(b.startup_error().is_none());
        assert_eq!(b.eval::<String>("return session._sessionID").unwrap(), "1");
        assert!(b.eval::<bool>("return session:getApp().a == '' and session.getApp().a == ''").unwrap());
    }

    #[test]
    fn failing_main_lua_is_kept_as_the_startup_error() {
        let mut b = backend();
        let e = b.load_main("error('boom')").unwrap_err();
        assert_eq!(e.code, ErrorCode::LuaError);
        assert!(e.description.contains("boom"), "{}", e.description);
        assert!(e.description.starts_with("lua/main.lua:1:"), "{}", e.description);
        assert!(!b.tracker().exists(VarId::APP));
        assert_eq!(b.missing_app_error(), e);
    }

    #[test]
    fn runaway_main_lua_times_out_even_under_pcall() {
        let config = LuaConfig { instruction_budget: 1_000_000, ..Default::default() };
        let mut b = LuaBackend::new(VendedId(1), &config).unwrap();
        let e = b.load_main("pcall(function() while true do end end) session:createAppVariable({})").unwrap_err();
        assert_eq!(e.code, ErrorCode::LuaTimeout);
        // The next phase has a fresh budget.
        assert_eq!(b.eval::<i64>("local n = 0 for i = 1, 1000 do n = n + i end return n").unwrap(), 500500);
    }

    #[test]
    fn memory_bomb_is_lua_memory_and_the_state_survives() {
        let config = LuaConfig { memory_limit: 4 << 20, ..Default::default() };
        let mut b = LuaBackend::new(VendedId(1), &config).unwrap();
        let e = b.load_main("local t = {} for i = 1, 1e8 do t[i] = ('x'):rep(100) .. i end").unwrap_err();
        assert_eq!(e.code, ErrorCode::LuaMemory);
        assert_eq!(b.eval::<i64>("return 1 + 1").unwrap(), 2);
    }

    #[test]
    fn sessions_do_not_share_globals() {
        let mut a = backend();
        let b = backend();
        a.load_main("shared = 'from a'").unwrap();
        assert!(b.eval::<bool>("return shared == nil").unwrap());
    }
}
