//! The `session`, `ui` and `EMPTY` globals `main.lua` and app code use (docs/lua-api.md).
//!
//! Functions that touch variables live in `variables.rs`, timers in `timers.rs`, code loading in
//! `modules.rs`; this file holds the rest. The [`ApiState`] they all share is in `state.rs`.

use std::sync::Arc;

use mlua::{Lua, MultiValue, Value};
use parking_lot::Mutex;

use super::state::{strip_self, ApiState};
use crate::ids::VendedId;

pub fn install(lua: &Lua, vended: VendedId, state: Arc<Mutex<ApiState>>) -> mlua::Result<()> {
    lua.set_app_data(super::resolver::AuthorErrors::new(vended));
    let g = lua.globals();
    let session = lua.create_table()?;
    session.set("_sessionID", vended.to_string())?;
    session.set("reloading", false)?;

    let this = session.clone();
    let st = state.clone();
    session.set(
        "getApp",
        lua.create_function(move |_, args: MultiValue| {
            let _ = strip_self(&this, args);
            Ok(st.lock().app.clone().unwrap_or(Value::Nil))
        })?,
    )?;

    let this = session.clone();
    let tag = vended.to_string();
    let log = lua.create_function(move |_, args: MultiValue| {
        let mut args = strip_self(&this, args);
        let (level, msg) =
            if args.len() >= 2 { (args.pop_front(), args.pop_front()) } else { (None, args.pop_front()) };
        let msg = msg.map(|m| m.to_string().unwrap_or_else(|_| format!("{m:?}"))).unwrap_or_default();
        log_at(level.as_ref(), &tag, &msg);
        Ok(())
    })?;
    session.set("log", log.clone())?;

    let tag = vended.to_string();
    g.set(
        "print",
        lua.create_function(move |_, args: MultiValue| {
            let text: Vec<String> = args.iter().map(|v| v.to_string().unwrap_or_else(|_| format!("{v:?}"))).collect();
            tracing::info!(target: "ui_gateway::lua", vended = %tag, "{}", text.join("\t"));
            Ok(())
        })?,
    )?;

    let ui = lua.create_table()?;
    let session_for_ui = session.clone();
    ui.set(
        "log",
        lua.create_function(move |_, args: MultiValue| {
            let mut with_self = args;
            with_self.push_front(Value::Table(session_for_ui.clone()));
            log.call::<()>(with_self)
        })?,
    )?;
    ui.set(
        "json_decode",
        lua.create_function(|lua, text: mlua::String| match super::json::decode(lua, &text.to_str()?) {
            Ok(v) => Ok((v, Value::Nil)),
            Err(super::json::JsonError::Lua(e @ mlua::Error::MemoryError(_))) => Err(e),
            Err(e) => Ok((Value::Nil, Value::String(lua.create_string(e.to_string())?))),
        })?,
    )?;
    ui.set(
        "json_encode",
        lua.create_function(|lua, v: Value| match super::json::encode(&v) {
            Ok(s) => Ok((Value::String(lua.create_string(s)?), Value::Nil)),
            Err(e) => Ok((Value::Nil, Value::String(lua.create_string(e.to_string())?))),
        })?,
    )?;
    g.set("ui", ui)?;
    super::timers::install(lua, &session, state.clone())?;

    let empty = lua.create_table()?;
    let empty_mt = lua.create_table()?;
    empty_mt.set(
        "__newindex",
        lua.create_function(|_, _: MultiValue| -> mlua::Result<()> {
            Err(mlua::Error::runtime("EMPTY is read-only"))
        })?,
    )?;
    empty_mt.set("__metatable", false)?;
    empty.set_metatable(Some(empty_mt))?;
    g.set("EMPTY", empty)?;

    g.set("session", session)?;
    Ok(())
}

fn log_at(level: Option<&Value>, vended: &str, msg: &str) {
    let level = match level {
        Some(Value::String(s)) => s.to_string_lossy().to_ascii_lowercase(),
        Some(Value::Integer(0)) | None => "info".into(),
        Some(Value::Integer(1)) => "debug".into(),
        Some(Value::Integer(_)) => "trace".into(),
        Some(_) => "info".into(),
    };
    match level.as_str() {
        "error" => tracing::error!(target: "ui_gateway::lua", vended, "{msg}"),
        "warn" => tracing::warn!(target: "ui_gateway::lua", vended, "{msg}"),
        "debug" => tracing::debug!(target: "ui_gateway::lua", vended, "{msg}"),
        "trace" => tracing::trace!(target: "ui_gateway::lua", vended, "{msg}"),
        _ => tracing::info!(target: "ui_gateway::lua", vended, "{msg}"),
    }
}
