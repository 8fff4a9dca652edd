//! Code loading inside the sandbox (docs/lua-limits.md): `require`, `dofile` and `loadfile`, confined
//! to the site's `lua/` files as the session last got them (cached at startup, replaced by hot reload).

use std::sync::Arc;

use mlua::{Lua, MultiValue, Table, Value};
use parking_lot::Mutex;

use super::resolver::raise_code;
use super::state::ApiState;
use crate::protocol::ErrorCode;

/// Module sources keyed by their path below `lua/` (`a/b.lua`).
pub type Sources = crate::site::LuaSources;

/// `a.b-c_d` style names only.
fn valid_module_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
}

/// Relative, ends in `.lua`, no `..`.
pub(crate) fn valid_file_arg(path: &str) -> bool {
    path.ends_with(".lua") && !path.starts_with('/') && !path.contains("..") && !path.contains('\\')
}

fn not_found(what: &str) -> mlua::Error {
    raise_code(ErrorCode::NotFound, what)
}

/// Runs `session._runMutations` (the prototype mutation queue runs after every code load).
pub fn run_mutations(lua: &Lua) -> mlua::Result<()> {
    let session: Table = lua.globals().get("session")?;
    if let Ok(f) = session.get::<mlua::Function>("_runMutations") {
        f.call::<()>(())?;
    }
    Ok(())
}

/// Loads a cached file as a chunk named `lua/<path>` (so errors read `lua/app.lua:12: …`).
pub fn load_chunk(lua: &Lua, sources: &Sources, rel: &str) -> mlua::Result<mlua::Function> {
    let file = sources.get(rel).ok_or_else(|| not_found(&format!("lua/{rel}")))?;
    load_file(lua, file, rel)
}

/// Loads a site file: the bytecode the site compiled once per process, or, for a file that does not
/// compile, its text (which then fails with Lua's syntax error, naming the file and line).
///
/// This is the only place binary chunks from the site enter a session; they come from the gateway's own
/// compile of the site's text, never from app code (the sandbox's `load` refuses binary chunks).
pub fn load_file(lua: &Lua, file: &crate::site::LuaFile, rel: &str) -> mlua::Result<mlua::Function> {
    let name = format!("@lua/{rel}");
    match file.bytecode() {
        Some(bytecode) => lua.load(bytecode).set_name(name).set_mode(mlua::ChunkMode::Binary).into_function(),
        None => lua.load(file.text()).set_name(name).set_mode(mlua::ChunkMode::Text).into_function(),
    }
}

/// Installs `require`, `dofile` and `loadfile`; they read the sources kept in `state`.
pub fn install(lua: &Lua, state: Arc<Mutex<ApiState>>) -> mlua::Result<()> {
    let g = lua.globals();

    let st = state.clone();
    g.set(
        "require",
        lua.create_function(move |lua, name: String| {
            if !valid_module_name(&name) {
                return Err(not_found(&format!("module {name:?}")));
            }
            let loaded: Table = lua.globals().get::<Table>("package")?.get("loaded")?;
            let cached: Value = loaded.get(name.as_str())?;
            if !cached.is_nil() {
                return Ok(cached);
            }
            let rel = format!("{}.lua", name.replace('.', "/"));
            let src = st.lock().sources.clone();
            let chunk = load_chunk(lua, &src, &rel)?;
            let result: Value = chunk.call(name.as_str())?;
            let value = if result.is_nil() { Value::Boolean(true) } else { result };
            loaded.set(name.as_str(), value.clone())?;
            st.lock().loaded_files.push(rel);
            run_mutations(lua)?;
            Ok(value)
        })?,
    )?;

    let st = state.clone();
    g.set(
        "dofile",
        lua.create_function(move |lua, path: String| {
            if !valid_file_arg(&path) {
                return Err(not_found(&format!("file {path:?}")));
            }
            let src = st.lock().sources.clone();
            let chunk = load_chunk(lua, &src, &path)?;
            let result: MultiValue = chunk.call(())?;
            st.lock().loaded_files.push(path);
            run_mutations(lua)?;
            Ok(result)
        })?,
    )?;

    let st = state;
    g.set(
        "loadfile",
        lua.create_function(move |lua, path: String| {
            if !valid_file_arg(&path) {
                return Ok((Value::Nil, Some(format!("not-found: file {path:?}"))));
            }
            let src = st.lock().sources.clone();
            match load_chunk(lua, &src, &path) {
                Ok(f) => Ok((Value::Function(f), None)),
                Err(e) => Ok((Value::Nil, Some(e.to_string()))),
            }
        })?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_module_name("a.b-c_d"));
        assert!(!valid_module_name("a..b"));
        assert!(!valid_module_name("../x"));
        assert!(!valid_module_name("a/b"));
        assert!(valid_file_arg("x/y.lua"));
        assert!(!valid_file_arg("/etc/x.lua"));
        assert!(!valid_file_arg("../x.lua"));
        assert!(!valid_file_arg("x.txt"));
    }
}
