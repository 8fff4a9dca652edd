//! Lua-created variables and variable handles (docs/lua-api.md, docs/viewdefs.md "Other wrappers"): `createVariable`,
//! `destroyVariable`, `getVariable` and the handle methods.
//!
//! Callbacks reach the tracker through a weak [`Shared`] handle (the lock is never held while Lua runs,
//! so this is safe from inside getters and methods) and build a resolver from the `&Lua` they are
//! given, so no strong reference to the state is captured inside the state.

use std::sync::Arc;

use mlua::{Lua, MultiValue, Table, Value};
use parking_lot::Mutex;

use super::limits::Budget;
use super::resolver::{raise, raise_code, LuaResolver, HANDLE_KEY};
use super::state::{strip_self, ApiState};
use crate::ids::VarId;
use crate::protocol::message::split_path_query;
use crate::protocol::priority::split_suffix;
use crate::protocol::property::{decide, name as property, Decision};
use crate::protocol::{ErrorCode, PropertyWrite};
use crate::tracker::{Shared, WeakShared, Writer};

/// Lua-created ids start here and go down, so they never meet backend ids (−1 … −(2^32−1)).
pub const FIRST_LUA_ID: i64 = -(1 << 32);

struct Ctx {
    shared: WeakShared<LuaResolver>,
    state: Arc<Mutex<ApiState>>,
    budget: Arc<Budget>,
}

impl Ctx {
    fn shared(&self) -> mlua::Result<Shared<LuaResolver>> {
        self.shared.upgrade().ok_or_else(|| raise_code(ErrorCode::Internal, "the session is gone"))
    }

    fn resolver(&self, lua: &Lua) -> mlua::Result<LuaResolver> {
        LuaResolver::new(lua, self.budget.clone())
    }
}

/// Reads a Lua `props` table into property writes (suffixes split, `?query` merged).
fn props_from(v: Option<Value>) -> mlua::Result<Vec<PropertyWrite>> {
    let mut out = Vec::new();
    if let Some(Value::Table(t)) = v {
        for pair in t.pairs::<String, Value>() {
            let (name, value) = pair?;
            let value = match value {
                Value::String(s) => s.to_string_lossy(),
                Value::Integer(i) => i.to_string(),
                Value::Number(n) => n.to_string(),
                Value::Boolean(b) => b.to_string(),
                _ => return Err(raise_code(ErrorCode::BadMessage, format!("property {name} is not a string"))),
            };
            let (name, priority) = split_suffix(&name);
            out.push(PropertyWrite { name: name.to_string(), value, priority });
        }
    }
    split_path_query(&mut out);
    Ok(out)
}

/// The earliest variable (by creation) showing `value`: depth-first over roots and children.
fn variable_showing(shared: &Shared<LuaResolver>, value: &Value) -> Option<VarId> {
    let mut stack: Vec<VarId> = shared.roots().into_iter().rev().collect();
    while let Some(id) = stack.pop() {
        if shared.value(id).is_some_and(|v| v == *value) {
            return Some(id);
        }
        stack.extend(shared.children(id).into_iter().rev());
    }
    None
}

pub fn install(
    lua: &Lua,
    session: &Table,
    shared: WeakShared<LuaResolver>,
    state: Arc<Mutex<ApiState>>,
    budget: Arc<Budget>,
) -> mlua::Result<()> {
    let ctx = Arc::new(Ctx { shared, state, budget });

    let (c, this) = (ctx.clone(), session.clone());
    session.set(
        "createAppVariable",
        lua.create_function(move |lua, args: MultiValue| {
            if c.budget.exhausted() {
                return Err(raise_code(ErrorCode::LuaTimeout, "instruction budget exhausted"));
            }
            let mut args = strip_self(&this, args);
            let obj = args.pop_front().unwrap_or(Value::Nil);
            if obj.is_nil() {
                return Err(raise_code(ErrorCode::BadMessage, "createAppVariable needs a value"));
            }
            let props = props_from(args.pop_front())?;
            let shared = c.shared()?;
            if shared.exists(VarId::APP) {
                tracing::info!("createAppVariable: replacing the value of variable 1");
            }
            shared.create_root(&c.resolver(lua)?, VarId::APP, obj.clone(), &props).map_err(raise)?;
            c.state.lock().app = Some(obj);
            Ok(1)
        })?,
    )?;

    let (c, this) = (ctx.clone(), session.clone());
    session.set(
        "createVariable",
        lua.create_function(move |lua, args: MultiValue| {
            let mut args = strip_self(&this, args);
            let parent = args.pop_front().unwrap_or(Value::Nil);
            let obj = args.pop_front().unwrap_or(Value::Nil);
            let props = props_from(args.pop_front())?;
            let shared = c.shared()?;
            let parent = match &parent {
                Value::Nil | Value::Integer(0) => None,
                Value::Integer(n) => Some(VarId(*n)),
                Value::Table(_) => Some(
                    variable_showing(&shared, &parent)
                        .ok_or_else(|| raise_code(ErrorCode::NotFound, "no variable shows that table"))?,
                ),
                _ => return Err(raise_code(ErrorCode::BadMessage, "parent must be an id or a table")),
            };
            // `--max-variables` counts all owners (docs/configuration.md); Lua used to be exempt (review M3).
            let max = shared.limits().max_variables;
            if shared.len() >= max {
                crate::metrics::metrics().limit_hit(crate::metrics::Limit::Variables);
                return Err(raise_code(ErrorCode::LimitExceeded, format!("session variable limit ({max}) reached")));
            }
            let id = {
                let mut st = c.state.lock();
                if st.next_lua_id == 0 {
                    st.next_lua_id = FIRST_LUA_ID;
                }
                let id = VarId(st.next_lua_id);
                st.next_lua_id -= 1;
                id
            };
            let res = c.resolver(lua)?;
            let has_path = props.iter().any(|p| p.name == property::PATH && !p.value.is_empty());
            match (parent, has_path) {
                (Some(parent), true) if obj.is_nil() => {
                    shared.create(&res, id, parent, &props, Writer::Lua).map_err(raise)?;
                }
                (_, true) => return Err(raise_code(ErrorCode::BadMessage, "a variable with a path takes no value")),
                (None, false) => shared.create_root(&res, id, obj, &props).map_err(raise)?,
                (Some(parent), false) => shared.create_child_showing(&res, id, parent, obj, &props).map_err(raise)?,
            }
            Ok(id.0)
        })?,
    )?;

    let (c, this) = (ctx.clone(), session.clone());
    session.set(
        "destroyVariable",
        lua.create_function(move |lua, args: MultiValue| {
            let mut args = strip_self(&this, args);
            let target = args.pop_front().unwrap_or(Value::Nil);
            let shared = c.shared()?;
            let res = c.resolver(lua)?;
            let ids: Vec<VarId> = match &target {
                Value::Integer(1) => {
                    return Err(raise_code(ErrorCode::AccessDenied, "variable 1 ends only with the session"))
                }
                Value::Integer(n) => vec![VarId(*n)],
                Value::Table(_) => {
                    let mut found = Vec::new();
                    let mut stack = shared.roots();
                    while let Some(id) = stack.pop() {
                        if id.0 <= FIRST_LUA_ID && shared.value(id).is_some_and(|v| v == target) {
                            found.push(id);
                        }
                        stack.extend(shared.children(id));
                    }
                    found
                }
                _ => Vec::new(),
            };
            for id in ids {
                let destroyed = shared.destroy(&res, id);
                c.state.lock().destroyed.extend(destroyed);
            }
            Ok(())
        })?,
    )?;

    install_url_paths(lua, session)?;

    let (weak, st) = (ctx.shared.clone(), ctx.state.clone());
    lua.set_named_registry_value(
        HANDLE_KEY,
        lua.create_function(move |lua, id: i64| handle(lua, weak.clone(), st.clone(), VarId(id)))?,
    )?;

    let (c, this) = (ctx, session.clone());
    session.set(
        "getVariable",
        lua.create_function(move |lua, args: MultiValue| {
            let mut args = strip_self(&this, args);
            let Some(Value::Integer(id)) = args.pop_front() else { return Ok(Value::Nil) };
            let shared = c.shared()?;
            if !shared.exists(VarId(id)) {
                return Ok(Value::Nil);
            }
            handle(lua, c.shared.clone(), c.state.clone(), VarId(id)).map(Value::Table)
        })?,
    )?;
    Ok(())
}

/// Registry key: whether this state has run the URL-path code.
pub(super) const URL_PATHS_LOADED: &str = "ui.url_paths_loaded";

/// URL paths (`url_paths.lua`, docs/lua-api.md "URL paths") load on the first call of one of their
/// three functions. Most apps register no path, and the code's closures, tables and protos cost every
/// session several KiB of Lua heap (BENCHMARKS.md §13c). Until then the three names hold loaders: the
/// first call runs the code (bytecode compiled once per process), which replaces all three and wraps
/// `createAppVariable` (that wrapper only matters once a path exists: registering marks an app made
/// before), and goes on to the loaded function.
fn install_url_paths(lua: &Lua, session: &Table) -> mlua::Result<()> {
    let create_app: mlua::Function = session.get("createAppVariable")?;
    for name in ["registerUrlPath", "resolveUrlPath", "navigate"] {
        let (this, create_app) = (session.clone(), create_app.clone());
        let loader = lua.create_function(move |lua, args: MultiValue| {
            if !lua.named_registry_value::<bool>(URL_PATHS_LOADED)? {
                // Marked only once the code has run: a load that fails (the memory limit) is tried
                // again on the next call rather than leaving this loader to call itself.
                super::builtin::URL_PATHS.chunk(lua).call::<()>((this.clone(), create_app.clone()))?;
                lua.set_named_registry_value(URL_PATHS_LOADED, true)?;
            }
            let loaded: mlua::Function = this.get(name)?;
            loaded.call::<MultiValue>(args)
        })?;
        session.set(name, loader)?;
    }
    Ok(())
}

/// A variable handle: a table whose methods are bound to one variable id.
pub fn handle(
    lua: &Lua,
    shared: WeakShared<LuaResolver>,
    state: Arc<Mutex<ApiState>>,
    id: VarId,
) -> mlua::Result<Table> {
    let h = lua.create_table()?;
    h.set("id", id.0)?;
    let live = {
        let shared = shared.clone();
        move || shared.upgrade().filter(|s| s.exists(id))
    };
    h.set("getID", lua.create_function(move |_, _: MultiValue| Ok(id.0))?)?;
    let l = live.clone();
    h.set(
        "getValue",
        lua.create_function(move |_, _: MultiValue| Ok(l().and_then(|s| s.value(id)).unwrap_or(Value::Nil)))?,
    )?;
    let l = live.clone();
    h.set(
        "getWrapper",
        lua.create_function(move |_, _: MultiValue| Ok(l().and_then(|s| s.wrapper(id)).unwrap_or(Value::Nil)))?,
    )?;
    let (l, this) = (live.clone(), h.clone());
    h.set(
        "getProperty",
        lua.create_function(move |_, args: MultiValue| {
            let mut args = strip_self(&this, args);
            let Some(Value::String(name)) = args.pop_front() else { return Ok(None) };
            Ok(l().and_then(|s| s.property(id, &name.to_string_lossy())))
        })?,
    )?;
    let (l, this, weak, st) = (live.clone(), h.clone(), shared, state.clone());
    h.set(
        "getParent",
        lua.create_function(move |lua, args: MultiValue| {
            let _ = strip_self(&this, args);
            match l().and_then(|s| s.parent(id)) {
                Some(p) => handle(lua, weak.clone(), st.clone(), p).map(Value::Table),
                None => Ok(Value::Nil),
            }
        })?,
    )?;
    let (l, this) = (live, h.clone());
    h.set(
        "setProperty",
        lua.create_function(move |_, args: MultiValue| {
            let mut args = strip_self(&this, args);
            let Some(shared) = l() else { return Ok(()) };
            let Some(Value::String(name)) = args.pop_front() else {
                return Err(raise_code(ErrorCode::BadMessage, "setProperty needs a name"));
            };
            let value = match args.pop_front() {
                Some(Value::String(s)) => s.to_string_lossy(),
                Some(Value::Nil) | None => String::new(),
                Some(other) => other.to_string()?,
            };
            let name = name.to_string_lossy();
            let (name, priority) = split_suffix(&name);
            let name = name.to_string();
            if decide(&name, Writer::Lua, false) == Decision::Deny {
                return Err(raise_code(ErrorCode::AccessDenied, format!("{name} is fixed at create")));
            }
            if name == property::LUA {
                if id != VarId::APP {
                    return Err(raise_code(ErrorCode::AccessDenied, "lua is a property of variable 1 only"));
                }
                // Runs after the current call returns, as its own phase; never stored.
                if !value.is_empty() {
                    state.lock().pending_lua.push(value);
                }
                return Ok(());
            }
            shared.set_properties(id, &[PropertyWrite { name, value, priority }], Writer::Lua, None).map_err(raise)
        })?,
    )?;
    Ok(h)
}
