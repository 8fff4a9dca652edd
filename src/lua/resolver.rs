//! `LuaResolver`: the tracker's window onto Lua values (docs/variables.md "Paths", "Values").

use mlua::{ffi, Lua, Table, Value};
use serde_json::Value as Json;

use crate::ids::VarId;
use crate::protocol::ErrorCode;
use crate::tracker::{Kind, ObjId, ObjectRegistry, Peek, PeekKey, Resolver, VarError, WrapRequest, Wrapped};

use super::limits::Budget;
use super::near_miss;
use std::sync::Arc;

/// The registry slot of the handle factory (`session:getVariable` as a function of an id) that
/// wrapper constructors get their handles from; `variables.rs` stores the factory there at install.
pub(crate) const HANDLE_KEY: &str = "ui_gateway.handle";

/// Resolves paths against Lua values. Cheap to clone: it holds handles only.
#[derive(Clone)]
pub struct LuaResolver {
    lua: Lua,
    type_key: mlua::String,
    budget: Arc<Budget>,
    /// Development mode: a nil read of a name close to an existing one is a `path-failure` that
    /// suggests it (`near_miss.rs`). Read once from the session's [`AuthorErrors`].
    suggest_names: bool,
}

impl LuaResolver {
    pub fn new(lua: &Lua, budget: Arc<Budget>) -> mlua::Result<Self> {
        let suggest_names = lua.try_app_data_ref::<AuthorErrors>().ok().flatten().is_some_and(|e| e.suggest_names);
        Ok(LuaResolver { lua: lua.clone(), type_key: lua.create_string("type")?, budget, suggest_names })
    }

    /// In development mode, `key` read as nil from `base`: a `path-failure` with "did you mean …" when
    /// the name is one or two letters from one the object or its prototypes have, unless a prototype
    /// declares it (`EMPTY`: nil on purpose).
    fn check_spelling(&self, base: &Value, key: &Value) -> Result<(), VarError> {
        let (Value::Table(object), Value::String(name)) = (base, key) else { return Ok(()) };
        let suggestions = near_miss::closest(object, &name.as_bytes(), false);
        if suggestions.is_empty() {
            return Ok(());
        }
        let declared = self
            .internal("declares")
            .and_then(|f| f.call::<bool>((base.clone(), key.clone())).map_err(|e| self.error(e)))
            .unwrap_or(false);
        if declared {
            return Ok(());
        }
        let name = name.to_string_lossy();
        let owner = near_miss::type_name(object).map_or_else(|| "this object".to_string(), |t| format!("this {t}"));
        let e = VarError::new(
            ErrorCode::PathFailure,
            format!(
                "`{name}` is not a field of {owner}, so it reads as nil; did you mean {}? (checked in development mode only)",
                near_miss::spelled(&suggestions)
            ),
        );
        author_error(&self.lua, &name, &e);
        Err(e)
    }

    /// Maps a Lua failure to the protocol's codes (`lua-timeout`, `lua-memory`, `lua-error`).
    pub fn error(&self, e: mlua::Error) -> VarError {
        lua_error(&self.budget, &e)
    }

    fn not_indexable(v: &Value) -> VarError {
        VarError::new(ErrorCode::PathFailure, format!("cannot index a {}", v.type_name()))
    }

    /// Paths never name metamethod fields (`__index`, `__call`, …): through them a path would reach
    /// the prototype itself and could replace its methods for the whole session.
    fn reachable(key: &Value) -> Result<(), VarError> {
        match key {
            Value::String(s) if s.as_bytes().starts_with(b"__") => Err(VarError::new(
                ErrorCode::PathFailure,
                format!("{} is not reachable through a path", s.to_string_lossy()),
            )),
            _ => Ok(()),
        }
    }

    /// A path may call only functions the app wrote (Lua functions on an app object, its fields or its
    /// prototype chain). Library functions (`string.find`, `table.concat`, …), reached through a
    /// string's metatable or stored on an object, would let a browser run any of them with arguments
    /// of its choosing.
    fn app_function(name: &str, f: &mlua::Function) -> Result<(), VarError> {
        match f.info().what {
            "Lua" | "main" => Ok(()),
            _ => Err(VarError::new(ErrorCode::PathFailure, format!("{name} is not a method of the app"))),
        }
    }

    /// Normal (metamethod-honouring) indexing of any value.
    fn index_value(&self, base: &Value, key: Value) -> Result<Value, VarError> {
        Self::reachable(&key)?;
        match base {
            Value::Nil => Ok(Value::Nil),
            Value::Table(t) => t.get(key).map_err(|e| self.error(e)),
            Value::String(_) => {
                // Strings index the string library, as `("x"):upper` does.
                let string_lib: Table = self.lua.globals().get("string").map_err(|e| self.error(e))?;
                string_lib.get(key).map_err(|e| self.error(e))
            }
            Value::UserData(ud) => {
                let mt = ud.metatable().map_err(|e| self.error(e))?;
                match mt.get::<Value>(mlua::MetaMethod::Index) {
                    Ok(Value::Table(t)) => t.get(key).map_err(|e| self.error(e)),
                    Ok(Value::Function(f)) => f.call((base.clone(), key)).map_err(|e| self.error(e)),
                    _ => Err(Self::not_indexable(base)),
                }
            }
            other => Err(Self::not_indexable(other)),
        }
    }

    /// One of the prelude's internal hooks (`wrap`, `instantiate`, `destroy_wrapper`).
    fn internal(&self, name: &str) -> Result<mlua::Function, VarError> {
        self.lua
            .named_registry_value::<Table>(super::INTERNALS_KEY)
            .and_then(|t| t.get::<mlua::Function>(name))
            .map_err(|e| self.error(e))
    }

    /// A variable handle for `id` (what `session:getVariable(id)` returns), for wrapper constructors.
    fn handle(&self, id: VarId) -> Result<Value, VarError> {
        self.lua
            .named_registry_value::<mlua::Function>(HANDLE_KEY)
            .and_then(|f| f.call::<Value>(id.0))
            .map_err(|e| self.error(e))
    }

    /// Like [`LuaResolver::error`], but an error that names a protocol code keeps that code: a typed
    /// [`VarError`] a Rust callback raised ([`raise`]) as it is, and a message the Lua library raised
    /// with `error("not-found: …", 0)` (the prelude's Lua code has only text) by its prefix.
    fn coded_error(&self, e: mlua::Error) -> VarError {
        let typed = carried(&e).cloned();
        let mut v = self.error(e);
        if v.code == ErrorCode::LuaError {
            if let Some(typed) = typed {
                return typed;
            }
            if let Some((code, rest)) = v.description.split_once(": ") {
                if let Some(code) = ErrorCode::parse(code) {
                    v = VarError::new(code, rest);
                }
            }
        }
        v
    }

    fn assign(&self, base: &Value, key: Value, v: Value) -> Result<(), VarError> {
        Self::reachable(&key)?;
        match base {
            Value::Table(t) => t.set(key, v).map_err(|e| self.error(e)),
            Value::Nil => Err(VarError::new(ErrorCode::PathFailure, "cannot assign into nil")),
            other => Err(VarError::new(ErrorCode::PathFailure, format!("cannot assign into a {}", other.type_name()))),
        }
    }
}

/// Raises a typed error from a Rust callback into Lua. The [`VarError`] travels inside the Lua error
/// value, so Rust code that gets it back ([`carried`]) reads its code without parsing text; Lua code
/// that catches it with `pcall` gets a value whose `tostring` is `"<code>: <description>"` (followed
/// by the traceback).
pub(crate) fn raise(e: VarError) -> mlua::Error {
    mlua::Error::external(e)
}

/// [`raise`] for an error made on the spot.
pub(crate) fn raise_code(code: ErrorCode, description: impl Into<String>) -> mlua::Error {
    raise(VarError::new(code, description))
}

/// The typed error a Rust callback raised with [`raise`], if `e` is one (through the callback and
/// context layers mlua adds on the way out of Lua).
pub(crate) fn carried(e: &mlua::Error) -> Option<&VarError> {
    let mut cur = e;
    loop {
        if let Some(v) = cur.downcast_ref::<VarError>() {
            return Some(v);
        }
        match cur {
            mlua::Error::CallbackError { cause, .. } | mlua::Error::WithContext { cause, .. } => cur = cause,
            _ => return None,
        }
    }
}

/// Classifies a Lua failure; the budget decides whether it was a timeout (the message may have been
/// rewrapped by `pcall`/`error` on the way out).
pub fn lua_error(budget: &Budget, e: &mlua::Error) -> VarError {
    if budget.exhausted() {
        return budget_error(budget);
    }
    let mut cur = e;
    loop {
        match cur {
            mlua::Error::MemoryError(_) => {
                crate::metrics::metrics().lua_limit_hit("memory");
                return VarError::new(ErrorCode::LuaMemory, "Lua memory limit reached");
            }
            mlua::Error::CallbackError { cause, .. } => cur = cause,
            mlua::Error::WithContext { cause, .. } => cur = cause,
            mlua::Error::RuntimeError(msg) => return VarError::new(ErrorCode::LuaError, first_line(msg)),
            mlua::Error::SyntaxError { message, .. } => return VarError::new(ErrorCode::LuaError, first_line(message)),
            other => return VarError::new(ErrorCode::LuaError, first_line(&other.to_string())),
        }
    }
}

/// The `lua-timeout` error for a spent budget, naming the limit that was hit (and counting it).
pub fn budget_error(budget: &Budget) -> VarError {
    let spent = budget.spent().unwrap_or(super::limits::Spent::Instructions);
    crate::metrics::metrics().lua_limit_hit(spent.metric_label());
    VarError::new(ErrorCode::LuaTimeout, spent.description())
}

/// Lua messages carry a traceback after the first line; the browser gets the message only.
fn first_line(msg: &str) -> String {
    msg.split("\nstack traceback:").next().unwrap_or(msg).trim_end().to_string()
}

/// How many distinct messages a session remembers for rate limiting; past it the oldest goes.
const AUTHOR_ERROR_MESSAGES: usize = 32;
/// The same message is logged again at most once per this interval (with how often it repeated).
const AUTHOR_ERROR_REPEAT: std::time::Duration = std::time::Duration::from_secs(60);
/// Log lines per session per [`AUTHOR_ERROR_REPEAT`] window, over all messages.
const AUTHOR_ERROR_BURST: u32 = 10;

/// Errors in app code (a method, getter or setter that raised, a path naming no function) go to the
/// log at WARN so an author sees them where they look, not only in the browser's DOM attributes.
/// A throwing getter fails on every pass, so the log is rate limited per session (a burst per
/// window) and per message (once per window, then the count of repeats), with a bounded table.
/// It lives in the Lua state's app data: one per session, installed by `api::install`.
pub struct AuthorErrors {
    vended: String,
    /// Development mode: the resolver suggests close names for nil reads (`near_miss.rs`).
    pub suggest_names: bool,
    window_start: std::time::Instant,
    logged_in_window: u32,
    /// Message → (when last logged, repeats since), oldest first.
    seen: std::collections::VecDeque<(String, std::time::Instant, u64)>,
}

impl AuthorErrors {
    pub fn new(vended: crate::ids::VendedId) -> Self {
        AuthorErrors {
            vended: vended.to_string(),
            suggest_names: false,
            window_start: std::time::Instant::now(),
            logged_in_window: 0,
            seen: Default::default(),
        }
    }

    /// Whether to log `message` now, and how many times it repeated unlogged before.
    fn admit(&mut self, message: &str, now: std::time::Instant) -> Option<u64> {
        if now.duration_since(self.window_start) >= AUTHOR_ERROR_REPEAT {
            self.window_start = now;
            self.logged_in_window = 0;
        }
        let slot = self.seen.iter().position(|(m, _, _)| m == message);
        if let Some(i) = slot {
            let (_, last, repeats) = &mut self.seen[i];
            if now.duration_since(*last) < AUTHOR_ERROR_REPEAT || self.logged_in_window >= AUTHOR_ERROR_BURST {
                *repeats += 1;
                return None;
            }
            let before = *repeats;
            *last = now;
            *repeats = 0;
            self.logged_in_window += 1;
            return Some(before);
        }
        if self.logged_in_window >= AUTHOR_ERROR_BURST {
            return None;
        }
        if self.seen.len() >= AUTHOR_ERROR_MESSAGES {
            self.seen.pop_front();
        }
        self.seen.push_back((message.to_string(), now, 0));
        self.logged_in_window += 1;
        Some(0)
    }
}

/// Splits a Lua message `lua/main.lua:5: attempt to …` into file, line and the rest.
pub fn split_location(message: &str) -> (Option<&str>, Option<u32>, &str) {
    let mut parts = message.splitn(3, ':');
    if let (Some(file), Some(line), Some(rest)) = (parts.next(), parts.next(), parts.next()) {
        if let Ok(n) = line.parse::<u32>() {
            if !file.is_empty() && !file.contains(' ') {
                return (Some(file), Some(n), rest.trim_start());
            }
        }
    }
    (None, None, message)
}

/// Logs an author's mistake at WARN, within the session's rate limits: a Lua error with the file and
/// line it names, or a binding path that does not resolve (no Lua ran, so there is no location; the
/// walk of issue 17 found `file="?" line=0` misleading there).
fn author_error(lua: &Lua, name: &str, error: &VarError) {
    let message = error.description.as_str();
    let Ok(Some(mut errors)) = lua.try_app_data_mut::<AuthorErrors>() else { return };
    let Some(repeated) = errors.admit(message, std::time::Instant::now()) else { return };
    if error.code == ErrorCode::PathFailure {
        tracing::warn!(target: "ui_gateway::lua", vended = %errors.vended, path = name, repeated, "binding path does not resolve: {message}");
        return;
    }
    let (file, line, text) = split_location(message);
    tracing::warn!(
        target: "ui_gateway::lua",
        vended = %errors.vended,
        method = name,
        file = file.unwrap_or("?"),
        line = line.unwrap_or(0),
        repeated,
        "app code failed: {text}"
    );
}

/// Pauses the collector while alive (and restarts it only if it was running), so no finalizer runs.
struct GcPause<'a> {
    lua: &'a Lua,
    was_running: bool,
}

impl<'a> GcPause<'a> {
    fn new(lua: &'a Lua) -> Self {
        let was_running = lua.gc_is_running();
        if was_running {
            lua.gc_stop();
        }
        GcPause { lua, was_running }
    }
}

impl Drop for GcPause<'_> {
    fn drop(&mut self) {
        if self.was_running {
            self.lua.gc_restart();
        }
    }
}

impl Resolver for LuaResolver {
    type Value = Value;
    type Key = Value;

    fn nil(&self) -> Value {
        Value::Nil
    }

    fn is_nil(&self, v: &Value) -> bool {
        v.is_nil()
    }

    /// Compares in place: an unchanged string costs no copy (P2).
    fn str_eq(&self, v: &Value, bytes: &[u8]) -> Option<bool> {
        match v {
            Value::String(s) => Some(&*s.as_bytes() == bytes),
            _ => None,
        }
    }

    fn intern(&self, name: &str) -> Result<Value, VarError> {
        self.lua.create_string(name).map(Value::String).map_err(|e| self.error(e))
    }

    fn get(&self, base: &Value, key: &Value) -> Result<Value, VarError> {
        let v = self.index_value(base, key.clone())?;
        if self.suggest_names && v.is_nil() {
            self.check_spelling(base, key)?;
        }
        Ok(v)
    }

    fn index(&self, base: &Value, index: u32) -> Result<Value, VarError> {
        self.index_value(base, Value::Integer(i64::from(index) + 1))
    }

    fn set(&self, base: &Value, key: &Value, v: Value) -> Result<(), VarError> {
        self.assign(base, key.clone(), v)
    }

    fn set_index(&self, base: &Value, index: u32, v: Value) -> Result<(), VarError> {
        self.assign(base, Value::Integer(i64::from(index) + 1), v)
    }

    fn call(&self, base: &Value, key: &Value, arg: Option<Value>) -> Result<Value, VarError> {
        if base.is_nil() {
            return Ok(Value::Nil);
        }
        let name = key.to_string().unwrap_or_default();
        if !matches!(base, Value::Table(_)) {
            return Err(VarError::new(
                ErrorCode::PathFailure,
                format!("{name}: only methods of app objects can be called, not of a {}", base.type_name()),
            ));
        }
        let f = self.index_value(base, key.clone())?;
        // A callable table is called through its `__call`, with itself first.
        let (callee, callable_table) = match &f {
            Value::Function(func) => (func.clone(), None),
            Value::Table(t) => {
                match t.metatable().and_then(|mt| mt.get::<Option<mlua::Function>>("__call").ok().flatten()) {
                    Some(call) => (call, Some(f.clone())),
                    None => return Err(VarError::new(ErrorCode::PathFailure, format!("{name} is not callable"))),
                }
            }
            _ => {
                let hint = match base {
                    Value::Table(t) => match near_miss::closest(t, name.as_bytes(), true) {
                        s if s.is_empty() => String::new(),
                        s => format!("; did you mean {}?", near_miss::spelled(&s)),
                    },
                    _ => String::new(),
                };
                let e = VarError::new(ErrorCode::PathFailure, format!("{name} is not a function{hint}"));
                author_error(&self.lua, &name, &e);
                return Err(e);
            }
        };
        Self::app_function(&name, &callee)?;
        let mut args: Vec<Value> = Vec::with_capacity(3);
        args.extend(callable_table);
        args.push(base.clone());
        args.extend(arg);
        let result = callee.call::<Value>(mlua::MultiValue::from_iter(args));
        result.map_err(|e| {
            let e = self.error(e);
            if e.code == ErrorCode::LuaError {
                author_error(&self.lua, &name, &e);
            }
            e
        })
    }

    fn classify(&self, v: &Value) -> Kind {
        match v {
            Value::Nil => Kind::Nil,
            Value::Boolean(b) => Kind::Bool(*b),
            Value::Integer(i) => Kind::Int(*i),
            Value::Number(f) => Kind::Float(*f),
            Value::String(s) => Kind::Str(s.as_bytes().to_vec()),
            Value::Table(t) => classify_table(self, t, v),
            other => Kind::Object(other.to_pointer() as usize),
        }
    }

    /// Raw reads (`rawget`) of the fields of a table, all in one protected entry into the Lua state
    /// with the keys on its stack: no metamethod runs, no value reference is made. A field present in
    /// the table itself is what normal indexing gives too (`__index` only applies to absent keys); an
    /// absent field, a table or a function is `Unknown`.
    fn peek(&self, base: &Value, keys: &[PeekKey<'_, Value>], f: &mut dyn FnMut(usize, Peek<'_>)) -> bool {
        if !matches!(base, Value::Table(_)) || keys.is_empty() {
            return false;
        }
        let mut args: Vec<&Value> = Vec::with_capacity(keys.len() + 1);
        args.push(base);
        args.extend(keys.iter().filter_map(|k| match k {
            PeekKey::Name(k) => Some(*k),
            PeekKey::Index(_) => None,
        }));
        // SAFETY: the closure gets the arguments at stack slots 1 (the table) and 2.. (the name keys)
        // and only uses API functions that cannot raise a Lua error here: `lua_pushvalue`, `lua_rawget`
        // and `lua_rawgeti` on a table (raw access calls no metamethod), type checks and `lua_tolstring`
        // on a value that is a string (no conversion, no allocation). It holds at most one extra stack
        // slot (a C function has `LUA_MINSTACK` free) and pops it before the next key. The borrowed
        // bytes live on the stack until that pop, after `f` returned.
        //
        // The caller holds the tracker's lock, so no Lua code may run: entering the protected call can
        // grow the stack, which may take a collector step, and a step may run `__gc` finalizers. The
        // collector is paused for the peek.
        let _paused = GcPause::new(&self.lua);
        let result = unsafe {
            self.lua.exec_raw::<()>(mlua::Variadic::from(args), |state| {
                let mut arg = 2;
                for (i, key) in keys.iter().enumerate() {
                    let ty = match key {
                        PeekKey::Name(_) => {
                            ffi::lua_pushvalue(state, arg);
                            arg += 1;
                            ffi::lua_rawget(state, 1)
                        }
                        PeekKey::Index(n) => ffi::lua_rawgeti(state, 1, i64::from(*n) + 1),
                    };
                    let peek = match ty {
                        ffi::LUA_TBOOLEAN => Peek::Bool(ffi::lua_toboolean(state, -1) != 0),
                        ffi::LUA_TNUMBER if ffi::lua_isinteger(state, -1) != 0 => {
                            Peek::Int(ffi::lua_tointeger(state, -1))
                        }
                        ffi::LUA_TNUMBER => Peek::Float(ffi::lua_tonumber(state, -1)),
                        ffi::LUA_TSTRING => {
                            let mut len = 0;
                            let ptr = ffi::lua_tolstring(state, -1, &mut len);
                            Peek::Str(std::slice::from_raw_parts(ptr.cast::<u8>(), len))
                        }
                        _ => Peek::Unknown,
                    };
                    f(i, peek);
                    ffi::lua_pop(state, 1);
                }
                ffi::lua_settop(state, 0);
            })
        };
        result.is_ok()
    }

    fn elem(&self, v: &Value, i: usize) -> Value {
        match v {
            Value::Table(t) => t.raw_get(i as i64 + 1).unwrap_or(Value::Nil),
            _ => Value::Nil,
        }
    }

    fn type_of(&self, v: &Value) -> Option<String> {
        let Value::Table(t) = v else { return None };
        let from_meta = t.metatable().and_then(|mt| mt.get::<Value>(self.type_key.clone()).ok());
        let named = |x: Option<Value>| match x {
            Some(Value::String(s)) if !s.as_bytes().is_empty() => Some(s.to_string_lossy()),
            _ => None,
        };
        named(from_meta).or_else(|| named(t.get::<Value>(self.type_key.clone()).ok()))
    }

    fn from_json(&self, json: &Json, registry: &ObjectRegistry<Value>) -> Result<Value, VarError> {
        json_to_lua(&self.lua, json, registry, 0).map_err(|e| match e {
            JsonToLua::Lua(e) => self.error(e),
            JsonToLua::Var(v) => v,
        })
    }

    /// `T:new(variable)` / `T:computeValue(variable)` through the prelude (docs/viewdefs.md "Other wrappers").
    fn wrap(&self, request: WrapRequest<'_, Value>) -> Result<Wrapped<Value>, VarError> {
        let handle = self.handle(request.var)?;
        let wrap = self.internal("wrap")?;
        let (kind, value): (String, Value) =
            wrap.call((handle, request.wrapper, request.raw.clone())).map_err(|e| self.coded_error(e))?;
        Ok(match kind.as_str() {
            "reuse" => Wrapped::Reused,
            "new" => Wrapped::New(value),
            "transform" => Wrapped::Transform(value),
            _ => Wrapped::None,
        })
    }

    fn destroy_wrapper(&self, _var: VarId, wrapper: &Value) -> Result<(), VarError> {
        self.internal("destroy_wrapper")?.call::<()>(wrapper.clone()).map_err(|e| self.coded_error(e))
    }

    /// `create=T`: `T:new()`, or `session:create(T)` when T has no `new` (docs/variables.md "Access").
    fn create_value(&self, type_name: &str) -> Result<Value, VarError> {
        self.internal("instantiate")?.call::<Value>(type_name).map_err(|e| self.coded_error(e))
    }
}

/// Tables with a derived type are objects; untyped tables whose keys (ignoring `_`-prefixed strings) are
/// exactly 1..n are sequences; keyless plain tables are `[]`; anything else is an object.
fn classify_table(r: &LuaResolver, t: &Table, v: &Value) -> Kind {
    let object = Kind::Object(v.to_pointer() as usize);
    if r.type_of(v).is_some() {
        return object;
    }
    let mut count: usize = 0;
    let mut max: i64 = 0;
    for pair in t.pairs::<Value, Value>() {
        let Ok((k, _)) = pair else { return object };
        match k {
            Value::Integer(i) if i >= 1 => {
                count += 1;
                max = max.max(i);
            }
            Value::String(s) if s.as_bytes().first() == Some(&b'_') => {}
            _ => return object,
        }
    }
    if count == 0 {
        return if t.metatable().is_none() { Kind::EmptyPlain } else { object };
    }
    if max as usize == count {
        Kind::Seq(count)
    } else {
        object
    }
}

enum JsonToLua {
    Lua(mlua::Error),
    Var(VarError),
}

impl From<mlua::Error> for JsonToLua {
    fn from(e: mlua::Error) -> Self {
        JsonToLua::Lua(e)
    }
}

/// JSON → Lua for written values (docs/variables.md "Values"): `{"obj":N}` is the registered object itself.
fn json_to_lua(lua: &Lua, json: &Json, registry: &ObjectRegistry<Value>, depth: usize) -> Result<Value, JsonToLua> {
    if depth > crate::tracker::value::MAX_VALUE_DEPTH {
        return Err(JsonToLua::Var(VarError::new(ErrorCode::LimitExceeded, "value nested deeper than 32")));
    }
    Ok(match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(lua.create_string(s)?),
        Json::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i as i64 + 1, json_to_lua(lua, item, registry, depth + 1)?)?;
            }
            Value::Table(t)
        }
        Json::Object(map) => {
            if map.len() == 1 {
                if let Some(n) = map.get("obj").and_then(Json::as_u64) {
                    return registry.lookup(ObjId(n)).cloned().ok_or_else(|| {
                        JsonToLua::Var(VarError::new(ErrorCode::NotFound, format!("unknown object {n}")))
                    });
                }
            }
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, item) in map {
                t.raw_set(k.as_str(), json_to_lua(lua, item, registry, depth + 1)?)?;
            }
            Value::Table(t)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lua_messages_split_into_file_line_and_text() {
        assert_eq!(
            split_location("lua/main.lua:5: attempt to perform arithmetic on a nil value"),
            (Some("lua/main.lua"), Some(5), "attempt to perform arithmetic on a nil value")
        );
        assert_eq!(split_location("totl is not a function"), (None, None, "totl is not a function"));
        assert_eq!(split_location("bad: thing: here"), (None, None, "bad: thing: here"));
    }

    /// A getter that throws on every pass logs once per window per message, a burst bounds a session
    /// whatever the messages, repeats are counted, and the table of messages stays bounded.
    #[test]
    fn author_errors_are_rate_limited_per_message_and_per_session() {
        let mut e = AuthorErrors::new(crate::ids::VendedId(7));
        let t0 = std::time::Instant::now();
        assert_eq!(e.admit("a", t0), Some(0));
        for _ in 0..5 {
            assert_eq!(e.admit("a", t0), None, "the same message inside the window is not logged again");
        }
        let later = t0 + AUTHOR_ERROR_REPEAT;
        assert_eq!(e.admit("a", later), Some(5), "after the window it is logged with the repeats");
        let mut logged = 1; // "a" at `later`
        for i in 0..100 {
            if e.admit(&format!("m{i}"), later).is_some() {
                logged += 1;
            }
        }
        assert_eq!(logged, AUTHOR_ERROR_BURST, "a burst bounds a session's lines per window");
        for i in 0..100 {
            e.admit(&format!("n{i}"), later + AUTHOR_ERROR_REPEAT * (i + 2));
        }
        assert!(e.seen.len() <= AUTHOR_ERROR_MESSAGES);
    }

    /// Through the resolver: a method that raises is logged at WARN with its file and line.
    #[test]
    fn a_throwing_method_is_logged_with_file_and_line_and_a_bad_path_without() {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || Capture(writer.clone()))
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        let (lua, r) = resolver();
        lua.set_app_data(AuthorErrors::new(crate::ids::VendedId(3)));
        let obj: Value = lua
            .load("return {vote = function(self) return self.votes + self.weight end, votes = 1}")
            .set_name("@lua/main.lua")
            .eval()
            .unwrap();
        let key = Value::String(lua.create_string("vote").unwrap());
        let missing = Value::String(lua.create_string("totl").unwrap());
        tracing::subscriber::with_default(subscriber, || {
            let e = r.call(&obj, &key, None).unwrap_err();
            assert_eq!(e.code, ErrorCode::LuaError);
            let e = r.call(&obj, &missing, None).unwrap_err();
            assert_eq!(e.code, ErrorCode::PathFailure);
        });
        let log = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert!(log.contains("WARN"), "{log}");
        assert!(log.contains("file=\"lua/main.lua\"") || log.contains("file=lua/main.lua"), "{log}");
        assert!(log.contains("line=1"), "{log}");
        assert!(log.contains("method=\"vote\"") || log.contains("method=vote"), "{log}");
        assert!(log.contains("arithmetic on a nil value"), "{log}");
        // A path that does not resolve ran no Lua: it has no file or line, and says what it is.
        let path_line = log.lines().find(|l| l.contains("totl is not a function")).expect("path failure logged");
        assert!(path_line.contains("binding path does not resolve"), "{path_line}");
        assert!(path_line.contains("path=\"totl\"") || path_line.contains("path=totl"), "{path_line}");
        assert!(!path_line.contains("file=") && !path_line.contains("line="), "{path_line}");
    }

    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn resolver() -> (Lua, LuaResolver) {
        let lua = Lua::new();
        let r = LuaResolver::new(&lua, Arc::new(Budget::new(1_000_000))).unwrap();
        (lua, r)
    }

    #[test]
    fn strings_compare_in_place_and_nil_is_cheap() {
        let (lua, r) = resolver();
        let s = Value::String(lua.create_string("abc").unwrap());
        assert_eq!(r.str_eq(&s, b"abc"), Some(true));
        assert_eq!(r.str_eq(&s, b"abd"), Some(false));
        assert_eq!(r.str_eq(&Value::Integer(1), b"1"), None);
        assert!(r.is_nil(&Value::Nil));
        assert!(!r.is_nil(&s));
    }

    #[test]
    fn classification_follows_value_json_rules() {
        let (lua, r) = resolver();
        let eval = |code: &str| lua.load(code).eval::<Value>().unwrap();
        assert_eq!(r.classify(&eval("return {}")), Kind::EmptyPlain);
        assert_eq!(r.classify(&eval("return {_hidden = 1}")), Kind::EmptyPlain);
        assert!(matches!(r.classify(&eval("return setmetatable({}, {})")), Kind::Object(_)));
        assert_eq!(r.classify(&eval("return {1, 2, {3, 4}}")), Kind::Seq(3));
        assert_eq!(r.classify(&eval("return {1, 2, _t = 1}")), Kind::Seq(2));
        assert!(matches!(r.classify(&eval("return {1, nil, 3}")), Kind::Object(_)));
        assert!(matches!(r.classify(&eval("return setmetatable({1}, {type = 'T'})")), Kind::Object(_)));
        assert_eq!(r.classify(&eval("return 10 / 2")), Kind::Float(5.0));
        assert_eq!(r.type_of(&eval("return setmetatable({}, {type = 'Meta'})")).as_deref(), Some("Meta"));
        assert_eq!(r.type_of(&eval("return {type = 'Own'}")).as_deref(), Some("Own"));
        assert_eq!(r.type_of(&eval("return {type = ''}")), None);
    }

    #[test]
    fn peeks_read_present_primitive_fields_only() {
        let (lua, r) = resolver();
        let eval = |code: &str| lua.load(code).eval::<Value>().unwrap();
        let base = eval(
            "local proto = {inherited = 'p'} proto.__index = proto
             return setmetatable({s = 'text', i = 7, f = 1.5, whole = 2.0, b = false, t = {}, fn = print,
                                  'first', 'second'}, proto)",
        );
        let names: Vec<Value> = ["s", "i", "f", "whole", "b", "t", "fn", "inherited", "absent"]
            .iter()
            .map(|n| r.intern(n).unwrap())
            .collect();
        let mut keys: Vec<PeekKey<'_, Value>> = names.iter().map(PeekKey::Name).collect();
        keys.extend([PeekKey::Index(1), PeekKey::Index(5)]);
        let mut seen = Vec::new();
        let peeked = r.peek(&base, &keys, &mut |i, p| {
            seen.push((i, format!("{p:?}")));
        });
        assert!(peeked);
        let expected = [
            "Str([116, 101, 120, 116])",
            "Int(7)",
            "Float(1.5)",
            "Float(2.0)",
            "Bool(false)",
            "Unknown",
            "Unknown",
            // Inherited through `__index`: only a full read can tell.
            "Unknown",
            "Unknown",
            "Str([115, 101, 99, 111, 110, 100])",
            "Unknown",
        ];
        let expected: Vec<(usize, String)> = expected.iter().enumerate().map(|(i, s)| (i, s.to_string())).collect();
        assert_eq!(seen, expected);
        // Peeking ran no Lua code and left the stack and the values alone.
        assert_eq!(r.get(&base, &names[0]).unwrap().to_string().unwrap(), "text");
        assert_eq!(r.get(&base, &names[7]).unwrap().to_string().unwrap(), "p");
    }

    #[test]
    fn no_finalizer_runs_while_peeking() {
        // The tracker peeks under its lock; a `__gc` finalizer running then could call back into it.
        let (lua, r) = resolver();
        lua.load("finalized = 0").exec().unwrap();
        let keys: Vec<Value> = (0..400).map(|i| r.intern(&format!("k{i}")).unwrap()).collect();
        let peek_keys: Vec<PeekKey<'_, Value>> = keys.iter().map(PeekKey::Name).collect();
        let base = lua.load("return {k1 = 'x'}").eval::<Value>().unwrap();
        for _ in 0..50 {
            // Garbage with finalizers, so the collector has work due when the peek enters Lua.
            lua.load(
                "local mt = {__gc = function() finalized = finalized + 1 end}
                      for _ = 1, 2000 do setmetatable({}, mt) end",
            )
            .exec()
            .unwrap();
            let before: i64 = lua.globals().get("finalized").unwrap();
            let mut peeked = 0;
            assert!(r.peek(&base, &peek_keys, &mut |_, _| peeked += 1));
            let after: i64 = lua.globals().get("finalized").unwrap();
            assert_eq!(before, after, "a finalizer ran inside the peek");
            assert_eq!(peeked, keys.len());
            assert!(lua.gc_is_running(), "the collector runs again afterwards");
        }
        // The finalizers do run later.
        lua.gc_collect().unwrap();
        assert!(lua.globals().get::<i64>("finalized").unwrap() > 0);
    }

    #[test]
    fn peeking_into_a_non_table_calls_nothing() {
        let (lua, r) = resolver();
        let key = r.intern("len").unwrap();
        let s = Value::String(lua.create_string("abc").unwrap());
        for base in [Value::Nil, Value::Integer(1), s] {
            let mut calls = 0;
            assert!(!r.peek(&base, &[PeekKey::Name(&key)], &mut |_, _| calls += 1));
            assert_eq!(calls, 0);
        }
    }
}
