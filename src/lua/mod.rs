//! The per-session Lua backend: one sandboxed Lua state with memory and instruction limits, the
//! `session` global that `main.lua` talks to, and the session's [`Tracker`] over a [`LuaResolver`].
//!
//! Seed sequence: `Session::new` → [`LuaBackend::new`] (creates the state and `Tracker::new(resolver)`)
//! → [`LuaBackend::load_main`] (runs `main.lua`, whose `session:createAppVariable(app)` creates
//! variable 1).

mod api;
mod bounded;
mod builtin;
pub mod json;
pub mod limits;
pub mod modules;
mod near_miss;
pub mod pattern;
#[cfg(test)]
mod program_tests;
pub mod resolver;
pub mod sandbox;
mod state;
pub mod timers;
pub mod variables;
#[cfg(test)]
mod wrapper_tests;

use std::sync::Arc;

use mlua::{Lua, Value};
use parking_lot::Mutex;

use crate::ids::{VarId, VendedId};
use crate::protocol::ErrorCode;
use crate::tracker::{Tracker, VarError};
pub use limits::{Budget, TimeLimits};
pub use resolver::LuaResolver;

use state::ApiState;

/// Limits for a session's Lua state.
#[derive(Clone, Debug)]
pub struct LuaConfig {
    /// Heap limit in bytes.
    pub memory_limit: usize,
    /// Instructions per phase.
    pub instruction_budget: u64,
    /// Wall time per phase and per mailbox item.
    pub times: TimeLimits,
    /// What the session's tracker may hold (properties, tracked bytes, variables).
    pub tracker: crate::tracker::TrackerLimits,
    /// Development mode (`--dev`, `--watch`): a binding to a misspelt field is a `path-failure` that
    /// suggests the right name instead of a silent nil (`near_miss.rs`).
    pub suggest_names: bool,
}

impl Default for LuaConfig {
    fn default() -> Self {
        LuaConfig {
            memory_limit: 64 << 20,
            instruction_budget: 200_000_000,
            times: TimeLimits::default(),
            tracker: crate::tracker::TrackerLimits::default(),
            suggest_names: false,
        }
    }
}

/// Where the prelude's internal hooks (`wrap`, `instantiate`, …) live: the registry, out of app code's
/// reach.
pub(crate) const INTERNALS_KEY: &str = "ui_gateway.internals";

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
    /// Whether start-up (state, API, prelude, main.lua) is over and its garbage collected.
    started: std::cell::Cell<bool>,
}

impl LuaBackend {
    /// Creates the sandboxed state, the `session` global and the per-session tracker. `sources` are the
    /// site's `lua/` files, the only code `require`, `dofile` and the `lua` property can load.
    pub fn new(vended: VendedId, config: &LuaConfig, sources: modules::Sources) -> Result<Self, LuaInitError> {
        let lua = sandbox::new_state()?;
        let budget = Arc::new(Budget::with_times(config.instruction_budget, config.times));
        limits::install_budget(&lua, budget.clone())?;
        limits::install_sticky_protection(&lua, budget.clone())?;
        bounded::install(&lua, budget.clone())?;
        let api = Arc::new(Mutex::new(ApiState { sources, ..ApiState::default() }));
        api::install(&lua, vended, api.clone())?;
        if let Some(mut errors) = lua.app_data_mut::<resolver::AuthorErrors>() {
            errors.suggest_names = config.suggest_names;
        }
        modules::install(&lua, api.clone())?;
        let load_viewlist =
            lua.create_function(|lua, args: mlua::MultiValue| builtin::VIEWLIST.chunk(lua).call::<()>(args))?;
        let internals: mlua::Table = builtin::PRELUDE.chunk(&lua).call(load_viewlist)?;
        lua.set_named_registry_value(INTERNALS_KEY, internals)?;
        let resolver = LuaResolver::new(&lua, budget.clone())?;
        let tracker = Tracker::new(resolver);
        tracker.shared().set_limits(config.tracker);
        let session: mlua::Table = lua.globals().get("session")?;
        variables::install(&lua, &session, tracker.shared().downgrade(), api.clone(), budget.clone())?;
        // The limit goes on last so the fixed setup cost never counts against a script.
        lua.set_memory_limit(config.memory_limit)?;
        Ok(LuaBackend { lua, budget, api, tracker, startup_error: None, started: std::cell::Cell::new(false) })
    }

    /// A phase's result as the session reports it: an exhausted budget is `lua-timeout` even when
    /// the script swallowed the error with `pcall`; other failures are mapped by the resolver.
    fn phase_outcome(&self, result: mlua::Result<()>) -> Result<(), VarError> {
        match result {
            Ok(()) if self.budget.exhausted() => Err(resolver::budget_error(&self.budget)),
            other => other.map_err(|e| resolver::lua_error(&self.budget, &e)),
        }
    }

    /// A new phase's full instruction budget; the end of start-up if main.lua did not end it.
    fn start_phase(&self) {
        self.end_startup();
        self.budget.begin_phase();
    }

    /// Start-up is over (main.lua ran, or something else runs first, e.g. in a site without
    /// main.lua): one full collection drops start-up's garbage.
    ///
    /// While a state grows from nothing to its start-up size, Lua's collector has not yet finished a
    /// cycle, so whatever start-up discarded (about 4.3 KiB of a Contacts session's 66.7 KiB heap)
    /// would stay in an idle session's heap until its next cycle, which an idle session may never
    /// reach. One collection here costs about what the incremental steps it replaces did (measured:
    /// BENCHMARKS.md §13). (Stopping the collector during start-up instead is unsafe: a stopped Lua
    /// 5.4 collector does not run its emergency collection at the memory limit either.)
    fn end_startup(&self) {
        if !self.started.replace(true) {
            if let Err(e) = self.lua.gc_collect() {
                tracing::warn!(error = %e, "Lua collection after start-up failed");
            }
        }
    }

    /// A mailbox item starts: the cap on its total Lua time starts counting (see [`limits`]).
    pub fn begin_item(&self) {
        self.budget.begin_item();
    }

    pub fn end_item(&self) {
        self.budget.end_item();
    }

    /// Whether the current item's time cap is spent: later phases of the item would fail at once, so
    /// callers stop queuing more (pending `lua` values, further due timers wait for the next item).
    pub fn item_spent(&self) -> bool {
        self.budget.spent() == Some(limits::Spent::ItemTime)
    }

    /// Runs `main.lua` given as text (tests, tools): compiles it, then as [`LuaBackend::load_main_file`].
    pub fn load_main(&mut self, source: &str) -> Result<(), VarError> {
        self.load_main_file(&crate::site::LuaFile::from(source))
    }

    /// Runs the site's `main.lua` (its bytecode, compiled once per process) as its own phase, then
    /// applies what it asked for (variable 1).
    ///
    /// A failure is kept as the startup error; the session lives on without variable 1.
    pub fn load_main_file(&mut self, main: &crate::site::LuaFile) -> Result<(), VarError> {
        self.budget.begin_phase();
        let result = modules::load_file(&self.lua, main, "main.lua")
            .and_then(|f| f.call::<()>(()))
            .and_then(|()| modules::run_mutations(&self.lua));
        self.end_startup();
        self.api.lock().loaded_files.insert(0, "main.lua".to_string());
        let result = self.phase_outcome(result);
        if let Err(e) = &result {
            self.startup_error = Some(e.clone());
        }
        result
    }

    /// Runs a `lua` property value (docs/lua-api.md "The lua property") as its own phase, then the mutation queue: `name.lua` runs that
    /// site file, anything else runs as a chunk named `lua-property`. The caller runs the pass.
    pub fn run_lua_property(&mut self, code: &str) -> Result<(), VarError> {
        self.start_phase();
        if self.budget.exhausted() {
            return Err(resolver::budget_error(&self.budget));
        }
        let is_file = modules::valid_file_arg(code) && !code.contains(char::is_whitespace);
        let chunk = if is_file {
            let sources = self.api.lock().sources.clone();
            modules::load_chunk(&self.lua, &sources, code)
        } else {
            self.lua.load(code).set_name("=lua-property").set_mode(mlua::ChunkMode::Text).into_function()
        };
        let result = chunk.and_then(|f| f.call::<()>(())).and_then(|()| modules::run_mutations(&self.lua));
        if is_file && result.is_ok() {
            self.api.lock().loaded_files.push(code.to_string());
        }
        self.phase_outcome(result)
    }

    /// Hot reload (docs/lua-api.md "Hot reload"): the site's `lua/` files as they are now.
    pub fn set_sources(&mut self, sources: modules::Sources) {
        self.api.lock().sources = sources;
    }

    /// Hot reload (docs/lua-api.md "Hot reload"): reruns one site file this session loaded, as its own phase, with
    /// `session.reloading` true while it runs. A module's non-nil result replaces its
    /// `package.loaded` entry; the mutation queue runs after. On failure the definitions the file did
    /// not get to replace stay as they were. The caller runs the pass.
    pub fn reload_file(&mut self, rel: &str) -> Result<(), VarError> {
        self.start_phase();
        let sources = self.api.lock().sources.clone();
        let session: mlua::Table =
            self.lua.globals().get("session").map_err(|e| resolver::lua_error(&self.budget, &e))?;
        let _ = session.raw_set("reloading", true);
        let module = rel.strip_suffix(".lua").map(|m| m.replace('/', "."));
        let result = modules::load_chunk(&self.lua, &sources, rel)
            .and_then(|chunk| chunk.call::<Value>(module.as_deref().unwrap_or_default()))
            .and_then(|value| {
                let Some(module) = &module else { return Ok(()) };
                let loaded: mlua::Table = self.lua.globals().get::<mlua::Table>("package")?.get("loaded")?;
                let required = !loaded.get::<Value>(module.as_str())?.is_nil();
                if required && !value.is_nil() {
                    loaded.set(module.as_str(), value)?;
                }
                Ok(())
            })
            .and_then(|()| modules::run_mutations(&self.lua));
        let _ = session.raw_set("reloading", false);
        self.phase_outcome(result)
    }

    /// Runs the `lua` property values Lua code set on variable 1 since the last call, in order (each may
    /// queue more; at most 100 run per call so a self-requeueing value cannot spin). Failures are logged
    /// and returned.
    pub fn run_pending_lua(&mut self) -> Vec<VarError> {
        let mut errors = Vec::new();
        for _ in 0..100 {
            if self.item_spent() {
                break;
            }
            let queued = std::mem::take(&mut self.api.lock().pending_lua);
            if queued.is_empty() {
                break;
            }
            for code in queued {
                if let Err(e) = self.run_lua_property(&code) {
                    tracing::warn!(code = %e.code, message = %e.description, "lua property failed");
                    errors.push(e);
                }
            }
        }
        errors
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
        self.start_phase();
        self.lua.load(code).set_name("=eval").eval::<T>().map_err(|e| resolver::lua_error(&self.budget, &e))
    }

    /// Variables Lua destroyed since the last call (children first), for destroy notices.
    pub fn take_destroyed(&self) -> Vec<VarId> {
        std::mem::take(&mut self.api.lock().destroyed)
    }

    /// Starts a new phase: a full instruction budget (one inbound batch, one pass…).
    pub fn begin_phase(&self) {
        self.start_phase();
    }

    /// When the earliest pending timer is due.
    pub fn next_timer_due(&self) -> Option<tokio::time::Instant> {
        self.api.lock().timers.next_due()
    }

    /// Runs every timer due at `now`, each as its own phase; intervals are rescheduled (late ticks are
    /// skipped), one-shot timers removed. Errors are logged and returned; intervals keep running.
    pub fn run_due_timers(&mut self, now: tokio::time::Instant) -> Vec<VarError> {
        let due = self.api.lock().timers.due(now);
        let mut errors = Vec::new();
        for handle in due {
            // The rest stay due and run in the session's next item, after what waits in its mailbox.
            if self.item_spent() {
                break;
            }
            let callback = {
                let mut st = self.api.lock();
                let Some(timer) = st.timers.pending.get_mut(&handle) else { continue };
                let callback = timer.callback.clone();
                match timer.interval {
                    Some(every) => {
                        let mut next = timer.due + every;
                        if next <= now {
                            next = now + every;
                        }
                        timer.due = next;
                    }
                    None => {
                        st.timers.pending.remove(&handle);
                    }
                }
                callback
            };
            self.start_phase();
            let result = self.phase_outcome(callback.call::<()>(()));
            if let Err(e) = result {
                tracing::warn!(code = %e.code, message = %e.description, timer = handle, "Lua timer failed");
                errors.push(e);
            }
        }
        errors
    }

    /// Site files this session loaded, in first-load order, each once.
    pub fn loaded_files(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.api.lock().loaded_files.iter().filter(|f| seen.insert(f.as_str())).cloned().collect()
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
        LuaBackend::new(VendedId(1), &LuaConfig::default(), Default::default()).unwrap()
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

    /// URL paths load on first use: a session that never calls them has none of their code, and one
    /// that registers a path after making its app still marks variable 1 for the page's router.
    #[test]
    fn url_paths_load_on_first_use_and_mark_an_app_made_before() {
        let mut b = backend();
        b.load_main("session:createAppVariable({})").unwrap();
        let loaded = |b: &LuaBackend| b.lua.named_registry_value::<bool>(variables::URL_PATHS_LOADED).unwrap();
        assert!(!loaded(&b), "no URL-path code before an app asks for it");
        assert_eq!(b.tracker().property(VarId::APP, "urlPaths"), None);
        assert!(b.eval::<bool>("return session:resolveUrlPath('/x') == nil").unwrap());
        assert!(loaded(&b));
        b.eval::<()>("session:registerUrlPath('/x', session:getApp())").unwrap();
        assert_eq!(b.tracker().property(VarId::APP, "urlPaths").as_deref(), Some("on"));
        assert!(b.eval::<bool>("return session.resolveUrlPath('x/') == session:getApp()").unwrap());
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
        let mut b = LuaBackend::new(VendedId(1), &config, Default::default()).unwrap();
        let e = b.load_main("pcall(function() while true do end end) session:createAppVariable({})").unwrap_err();
        assert_eq!(e.code, ErrorCode::LuaTimeout);
        // The next phase has a fresh budget.
        assert_eq!(b.eval::<i64>("local n = 0 for i = 1, 1000 do n = n + i end return n").unwrap(), 500500);
    }

    #[test]
    fn memory_bomb_is_lua_memory_and_the_state_survives() {
        let config = LuaConfig { memory_limit: 4 << 20, ..Default::default() };
        let mut b = LuaBackend::new(VendedId(1), &config, Default::default()).unwrap();
        let e = b.load_main("local t = {} for i = 1, 1e8 do t[i] = ('x'):rep(100) .. i end").unwrap_err();
        assert_eq!(e.code, ErrorCode::LuaMemory);
        assert_eq!(b.eval::<i64>("return 1 + 1").unwrap(), 2);
    }

    fn with_sources(files: &[(&str, &str)]) -> LuaBackend {
        let compiler = Lua::new();
        let sources: std::collections::HashMap<String, crate::site::LuaFile> = files
            .iter()
            .map(|(k, v)| (k.to_string(), crate::site::LuaFile::compile(&compiler, k, Arc::from(*v))))
            .collect();
        LuaBackend::new(VendedId(1), &LuaConfig::default(), std::sync::Arc::new(sources)).unwrap()
    }

    #[test]
    fn require_is_confined_to_the_site_sources() {
        let mut b = with_sources(&[("util/strings.lua", "return {shout = function(s) return s:upper() end}")]);
        b.load_main("local s = require('util.strings') assert(require('util.strings') == s) result = s.shout('hi')")
            .unwrap();
        assert_eq!(b.eval::<String>("return result").unwrap(), "HI");
        for bad in ["require('../etc/passwd')", "require('missing')", "dofile('/etc/passwd.lua')", "dofile('../x.lua')"]
        {
            let e = b.eval::<()>(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::LuaError, "{bad}");
            assert!(e.description.contains("not-found"), "{bad}: {}", e.description);
        }
        assert_eq!(b.loaded_files(), vec!["main.lua".to_string(), "util/strings.lua".to_string()]);
    }

    #[test]
    fn prototypes_keep_identity_and_mutate_instances_on_change() {
        let mut b = backend();
        b.load_main(
            "Counter = session:prototype('Counter', {count = 0, label = EMPTY})
             function Counter:inc() self.count = self.count + 1 end
             c = Counter:new({label = 'clicks'})
             c:inc()
             session:createAppVariable(c)",
        )
        .unwrap();
        assert!(b
            .eval::<bool>("return c.count == 1 and getmetatable(c) == Counter and Counter.type == 'Counter'")
            .unwrap());
        // A reload renames `label` to `title`: same prototype table, mutate runs before `label` is cleared.
        b.eval::<()>(
            "local before = Counter
             Counter = session:prototype('Counter', {count = 0, title = EMPTY})
             function Counter:mutate() self.title = self.title or self.label end
             assert(before == Counter)
             session._runMutations()",
        )
        .unwrap();
        assert!(b.eval::<bool>("return c.title == 'clicks' and rawget(c, 'label') == nil").unwrap());
        // Unchanged re-runs queue nothing.
        assert!(b
            .eval::<bool>("local p = session:prototype('Counter', {count = 0, title = EMPTY}) return p == Counter")
            .unwrap());
        assert!(b.eval::<bool>("return session.prototype('Counter') == Counter").unwrap());
    }

    #[test]
    fn type_lookup_and_json() {
        let b = backend();
        assert!(b
            .eval::<bool>(
                "local P = session:prototype('lua.Thing', {}) ui.registerWrapper('W', {x = 1}) Dotted = {Name = {y = 2}}
                 return session._lookupType('lua.Thing') == P and session._lookupType('W').x == 1
                    and session._lookupType('Dotted.Name').y == 2 and session._lookupType('Nope') == nil"
            )
            .unwrap());
        assert_eq!(b.eval::<String>("return ui.json_encode({b = 1, a = {1, 2}})").unwrap(), r#"{"a":[1,2],"b":1}"#);
        assert!(b.eval::<bool>("local v = ui.json_decode('[1,2]') return v[2] == 2").unwrap());
        assert!(b
            .eval::<bool>("local v, err = ui.json_decode('{') return v == nil and type(err) == 'string'")
            .unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn timers_fire_in_their_own_phase() {
        let mut b = backend();
        b.load_main(
            "ticks, once = 0, 0
             session:setTimeout(function() once = once + 1 end, 50)
             local h = session:setInterval(function() ticks = ticks + 1 end, 20)
             local cancelled = session:setTimeout(function() error('must not run') end, 10)
             session:clearTimer(cancelled)
             session.setImmediate(function() immediate = true end)",
        )
        .unwrap();
        let start = tokio::time::Instant::now();
        assert_eq!(b.next_timer_due(), Some(start));
        assert!(b.run_due_timers(start).is_empty());
        assert!(b.eval::<bool>("return immediate == true").unwrap());
        for step in 1..=5 {
            tokio::time::advance(std::time::Duration::from_millis(10)).await;
            let now = tokio::time::Instant::now();
            assert!(b.run_due_timers(now).is_empty(), "step {step}");
        }
        assert_eq!(b.eval::<(i64, i64)>("return ticks, once").unwrap(), (2, 1));
    }

    #[test]
    fn lua_variables_and_handles() {
        let mut b = backend();
        b.load_main(
            "App = session:prototype('App', {title = 'x', rows = EMPTY})
             app = App:new({rows = {{name = 'a'}, {name = 'b'}}})
             session:createAppVariable(app)
             root = session:createVariable(0, {n = 1}, {note = 'mine'})
             child = session:createVariable(1, nil, {path = 'rows.1.name?priority=high'})",
        )
        .unwrap();
        let (root, child): (i64, i64) = b.eval("return root, child").unwrap();
        assert_eq!(root, -(1 << 32));
        assert_eq!(child, root - 1);
        assert!(b.tracker().exists(VarId(root)) && b.tracker().exists(VarId(child)));
        assert_eq!(b.tracker().property(VarId(child), "path").as_deref(), Some("rows.1.name"));
        assert_eq!(b.tracker().property(VarId(child), "priority").as_deref(), Some("high"));
        assert!(b
            .eval::<bool>(
                "local h = session:getVariable(child)
                 return h:getID() == child and h.getValue() == 'b' and h:getProperty('path') == 'rows.1.name'
                    and h:getParent():getID() == 1 and session:getVariable(1):getValue() == app
                    and session:getVariable(999) == nil"
            )
            .unwrap());
        b.eval::<()>("session:getVariable(root):setProperty('label:high', 'L')").unwrap();
        assert_eq!(b.tracker().property(VarId(root), "label").as_deref(), Some("L"));
        let e = b.eval::<()>("session:getVariable(root):setProperty('path', 'x')").unwrap_err();
        assert!(e.description.contains("access-denied"), "{}", e.description);
        let e = b.eval::<()>("session:destroyVariable(1)").unwrap_err();
        assert!(e.description.contains("access-denied"), "{}", e.description);
        b.eval::<()>("h = session:getVariable(child) session:destroyVariable(child)").unwrap();
        assert_eq!(b.take_destroyed(), vec![VarId(child)]);
        assert!(b.eval::<bool>("return h:getValue() == nil and h:getID() == child").unwrap());
        b.eval::<()>("session.destroyVariable(session:getVariable(root):getValue())").unwrap();
        assert_eq!(b.take_destroyed(), vec![VarId(root)]);
    }

    #[test]
    fn value_variables_under_a_parent_follow_their_table() {
        let mut b = backend();
        b.load_main(
            "session:createAppVariable({})
             item = {n = 1}
             kid = session:createVariable(1, item)
             grandkid = session:createVariable(item, nil, {path = 'n'})",
        )
        .unwrap();
        let (kid, grandkid): (i64, i64) = b.eval("return kid, grandkid").unwrap();
        let shared = b.tracker().shared();
        assert_eq!(shared.parent(VarId(kid)), Some(VarId::APP));
        assert_eq!(shared.parent(VarId(grandkid)), Some(VarId(kid)));
        assert_eq!(shared.value_json(VarId(grandkid)), Some(serde_json::json!(1)));
        b.eval::<()>("item.n = 2").unwrap();
        b.tracker_mut().detect_changes();
        assert_eq!(shared.value_json(VarId(grandkid)), Some(serde_json::json!(2)));
        // Destroying the parent takes the subtree with it.
        b.eval::<()>("session:destroyVariable(kid)").unwrap();
        assert_eq!(b.take_destroyed(), vec![VarId(grandkid), VarId(kid)]);
    }

    /// Passes confirm unchanged plain fields with raw reads (`Resolver::peek`); whatever that cannot
    /// settle (absent fields that `__index` supplies, tables, calls) is still read the normal way.
    #[test]
    fn raw_confirmed_fields_and_metamethod_reads_report_the_same_changes() {
        let mut b = backend();
        b.load_main(
            "local Row = {f = 'default'} Row.__index = Row
             function Row:get() return self.g end
             row = setmetatable({f = 'own', g = 1, h = 2.5, t = {}}, Row)
             reads = 0
             proxy = setmetatable({}, {__index = function(_, k) reads = reads + 1 return k end})
             session:createAppVariable({row = row, proxy = proxy})",
        )
        .unwrap();
        let t = b.tracker_mut();
        let path =
            |p: &str| vec![crate::protocol::PropertyWrite { name: "path".into(), value: p.into(), priority: None }];
        t.create(VarId(2), VarId::APP, &path("row"), crate::tracker::Writer::Browser).unwrap();
        for (id, p) in [(3, "f"), (4, "g"), (5, "h"), (6, "t"), (7, "get()")] {
            t.create(VarId(id), VarId(2), &path(p), crate::tracker::Writer::Browser).unwrap();
        }
        t.create(VarId(8), VarId::APP, &path("proxy"), crate::tracker::Writer::Browser).unwrap();
        t.create(VarId(9), VarId(8), &path("a"), crate::tracker::Writer::Browser).unwrap();
        t.detect_changes();
        let pass = |b: &mut LuaBackend| {
            let changes = b.tracker_mut().detect_changes();
            serde_json::to_value(changes.messages_for(None, |_| true)).unwrap()
        };
        assert_eq!(pass(&mut b), serde_json::json!([]));
        b.eval::<()>("row.f = nil  row.g = 1.0  row.h = 'x'  row.t = {1}").unwrap();
        assert_eq!(
            pass(&mut b),
            serde_json::json!([
                {"type":"update","data":{"varId":3,"value":"default"}},
                {"type":"update","data":{"varId":5,"value":"x"}},
                {"type":"update","data":{"varId":6,"value":[1]}},
            ]),
            "an integral float equals the integer it replaced"
        );
        b.eval::<()>("row.g = 2").unwrap();
        assert_eq!(
            pass(&mut b),
            serde_json::json!([
                {"type":"update","data":{"varId":4,"value":2}},
                {"type":"update","data":{"varId":7,"value":2}},
            ])
        );
        let before: i64 = b.eval("return reads").unwrap();
        assert_eq!(pass(&mut b), serde_json::json!([]));
        // Per pass: variable 9's absent `a`, and the `type` lookup that classifies the proxy itself (docs/variables.md "Values").
        assert_eq!(b.eval::<i64>("return reads").unwrap(), before + 2, "`__index` still runs for absent fields");
    }

    #[test]
    fn lua_property_runs_after_the_call_as_its_own_phase() {
        let mut b = with_sources(&[("extra.lua", "extra_loaded = (extra_loaded or 0) + 1")]);
        b.load_main(
            "session:createAppVariable({})
             session:getVariable(1):setProperty('lua', 'from_property = true')
             queued_before_run = from_property == nil",
        )
        .unwrap();
        assert!(b.eval::<bool>("return queued_before_run and from_property == nil").unwrap());
        assert!(b.run_pending_lua().is_empty());
        assert!(b.eval::<bool>("return from_property").unwrap());
        assert!(b.tracker().property(VarId::APP, "lua").is_none());
        // A file name runs that site file; errors come back typed and name the chunk.
        b.eval::<()>("session:getVariable(1):setProperty('lua', 'extra.lua')").unwrap();
        b.eval::<()>("session:getVariable(1):setProperty('lua', 'error(\"bad\")')").unwrap();
        let errors = b.run_pending_lua();
        assert_eq!(b.eval::<i64>("return extra_loaded").unwrap(), 1);
        assert!(b.loaded_files().contains(&"extra.lua".to_string()));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].description.starts_with("lua-property:1:"), "{}", errors[0].description);
        // Only variable 1 takes it.
        let e =
            b.eval::<()>("session:createVariable(0, {}) session:getVariable(-4294967296):setProperty('lua', 'x = 1')");
        assert!(e.unwrap_err().description.contains("access-denied"));
    }

    #[test]
    fn site_files_run_from_their_bytecode_and_app_code_still_cannot_load_bytecode() {
        use crate::site::LuaFile;
        let compiler = Lua::new();
        let dump = |src: &str| compiler.load(src).set_name("@lua/main.lua").into_function().unwrap().dump(false);
        // The text says one thing, the bytecode another: the session runs the bytecode.
        let main = LuaFile::with_bytecode("ran = 'text'", dump("ran = 'bytecode' session:createAppVariable({})"));
        let module = LuaFile::with_bytecode("return 'text'", dump("return 'module bytecode'"));
        let sources: modules::Sources = Arc::new([("m.lua".to_string(), module)].into_iter().collect());
        let mut b = LuaBackend::new(VendedId(1), &LuaConfig::default(), sources).unwrap();
        b.load_main_file(&main).unwrap();
        assert_eq!(b.eval::<String>("return ran").unwrap(), "bytecode");
        assert_eq!(b.eval::<String>("return require('m')").unwrap(), "module bytecode");
        // App code cannot get at a dump nor load one.
        assert!(b.eval::<bool>("return string.dump == nil").unwrap());
        let (f, err): (Value, Option<String>) = b.eval("return load('\\27Lua')").unwrap();
        assert!(f.is_nil());
        assert!(err.unwrap().contains("binary"));
    }

    #[test]
    fn errors_in_compiled_site_files_keep_file_and_line() {
        use crate::site::LuaFile;
        let compiler = Lua::new();
        let util = LuaFile::compile(
            &compiler,
            "util.lua",
            "local M = {}\nfunction M.f()\n  error('deep')\nend\nreturn M".into(),
        );
        assert!(util.bytecode().is_some());
        let sources: modules::Sources = Arc::new([("util.lua".to_string(), util)].into_iter().collect());
        let mut b = LuaBackend::new(VendedId(1), &LuaConfig::default(), sources).unwrap();
        let main = LuaFile::compile(&compiler, "main.lua", "\nrequire('util').f()".into());
        let e = b.load_main_file(&main).unwrap_err();
        assert!(e.description.starts_with("lua/util.lua:3:"), "{}", e.description);
        // A main.lua that does not compile has no bytecode; the session reports Lua's syntax error.
        let broken = LuaFile::compile(&compiler, "main.lua", "x = = 1".into());
        assert!(broken.bytecode().is_none());
        let e = backend().load_main_file(&broken).unwrap_err();
        assert!(e.description.starts_with("lua/main.lua:1:"), "{}", e.description);
    }

    #[test]
    fn the_collector_waits_for_start_up_and_main_lua_garbage_stays_within_the_limit() {
        // main.lua makes ~20 MiB of garbage under a 4 MiB limit during start-up: the collector runs
        // all along.
        let config = LuaConfig { memory_limit: 4 << 20, ..Default::default() };
        let mut b = LuaBackend::new(VendedId(1), &config, Default::default()).unwrap();
        assert!(!b.started.get(), "start-up");
        b.load_main("for i = 1, 2000 do local s = ('x'):rep(10000) .. i end session:createAppVariable({})").unwrap();
        assert!(b.started.get(), "main.lua ends start-up");
        assert!(b.used_memory() < 1 << 20, "start-up's garbage is gone: {}", b.used_memory());
        // A live heap over the limit is still lua-memory.
        let e = b.eval::<()>("local t = {} for i = 1, 1e8 do t[i] = ('x'):rep(100) .. i end").unwrap_err();
        assert_eq!(e.code, ErrorCode::LuaMemory);
        // Without main.lua, the first phase ends start-up.
        let b = backend();
        assert!(!b.started.get());
        b.begin_phase();
        assert!(b.started.get());
    }

    #[test]
    fn sessions_do_not_share_globals() {
        let mut a = backend();
        let b = backend();
        a.load_main("shared = 'from a'").unwrap();
        assert!(b.eval::<bool>("return shared == nil").unwrap());
    }
}
