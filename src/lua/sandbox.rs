//! The sandbox (docs/lua-limits.md): which libraries a session's Lua state gets.

use mlua::{Lua, LuaOptions, StdLib, Table, Value};

/// Creates a state with only the safe standard libraries, then trims what remains.
pub fn new_state() -> mlua::Result<Lua> {
    // No `package` library: of it the sandbox keeps only `loaded` (the registry's `_LOADED`, which
    // every opened library is registered in anyway). Opening it cost every session its searchers,
    // path strings read from the environment, and mlua's C-module guards, only to throw them away.
    let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::UTF8 | StdLib::COROUTINE | StdLib::OS;
    let lua = Lua::new_with(libs, LuaOptions::default())?;
    let g = lua.globals();

    // os: only clock, date, difftime, time.
    let os: Table = g.get("os")?;
    let safe_os = lua.create_table()?;
    for name in ["clock", "date", "difftime", "time"] {
        safe_os.set(name, os.get::<Value>(name)?)?;
    }
    g.set("os", safe_os)?;

    // package: only `loaded` (require is replaced by a site-confined loader).
    let loaded: Table = lua.named_registry_value("_LOADED")?;
    let safe_package = lua.create_table()?;
    safe_package.set("loaded", loaded.clone())?;
    g.set("package", safe_package.clone())?;
    // `package.loaded` still listed the original `os`: without this, `package.loaded.os.execute`
    // would reach around the trimmed one.
    loaded.set("os", g.get::<Table>("os")?)?;
    loaded.set("package", safe_package)?;

    let string: Table = g.get("string")?;
    string.set("dump", Value::Nil)?;

    // load: text chunks only.
    let raw_load: mlua::Function = g.get("load")?;
    for name in ["io", "dofile", "loadfile", "require", "collectgarbage", "load", "print", "warn", "debug"] {
        g.set(name, Value::Nil)?;
    }
    // load (text chunks only) and setmetatable (no `__gc`), from the repo's lua/sandbox.lua.
    let (load, setmetatable): (mlua::Function, mlua::Function) = super::builtin::SANDBOX.chunk(&lua).call((
        raw_load.clone(),
        g.get::<mlua::Function>("setmetatable")?,
        g.get::<mlua::Function>("rawget")?,
        g.get::<mlua::Function>("type")?,
        g.get::<mlua::Function>("error")?,
    ))?;
    g.set("load", load)?;
    g.set("setmetatable", setmetatable)?;

    // collectgarbage: only "count".
    g.set(
        "collectgarbage",
        lua.create_function(|lua, opt: Option<String>| match opt.as_deref() {
            Some("count") => Ok(lua.used_memory() as f64 / 1024.0),
            _ => Ok(0.0),
        })?,
    )?;

    // debug: traceback only.
    let debug = lua.create_table()?;
    debug.set(
        "traceback",
        lua.create_function(|_, (msg, _level): (Option<Value>, Option<Value>)| {
            Ok(match msg {
                Some(Value::String(s)) => s.to_string_lossy(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            })
        })?,
    )?;
    g.set("debug", debug)?;

    install_compat(&lua)?;
    Ok(lua)
}

/// Lua 5.1 compatibility shims (docs/lua-api.md "Lua 5.1 compatibility"), shipped from the repo's `lua/` library.
fn install_compat(lua: &Lua) -> mlua::Result<()> {
    super::builtin::COMPAT.chunk(lua).exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_things_are_gone() {
        let lua = new_state().unwrap();
        let nil = |expr: &str| lua.load(format!("return {expr} == nil")).eval::<bool>().unwrap();
        for expr in [
            "io",
            "os.exit",
            "os.execute",
            "os.getenv",
            "os.remove",
            "debug.getinfo",
            "string.dump",
            "dofile",
            "loadfile",
            "package.loadlib",
            "package.cpath",
            "package.loaded.os.execute",
            "package.loaded.os.exit",
            "package.loaded.package.loadlib",
            "package.loaded.io",
            "package.loaded.debug",
        ] {
            assert!(nil(expr), "{expr} should be nil");
        }
        assert!(!nil("os.time"));
        // `package.loaded` is the real one: the opened libraries and what `require` caches.
        assert!(lua
            .load("return package.loaded.string == string and package.loaded.package == package")
            .eval::<bool>()
            .unwrap());
        assert!(nil("package.path") && nil("package.searchers") && nil("package.preload"));
        assert!(!nil("debug.traceback"));
    }

    #[test]
    fn finalizers_are_refused() {
        let lua = new_state().unwrap();
        let err = lua.load("setmetatable({}, {__gc = function() while true do end end})").exec().unwrap_err();
        assert!(err.to_string().contains("__gc finalizers are not allowed"), "{err}");
        assert!(lua.load("return setmetatable({}, {__index = {a = 1}}).a == 1").eval::<bool>().unwrap());
    }

    #[test]
    fn load_is_text_only() {
        let lua = new_state().unwrap();
        assert_eq!(lua.load("return load('return 1 + 1')()").eval::<i64>().unwrap(), 2);
        let (f, err): (Value, Option<String>) = lua.load("return load('\\27Lua')").eval().unwrap();
        assert!(f.is_nil());
        assert!(err.unwrap().contains("binary"));
    }

    #[test]
    fn compat_shims() {
        let lua = new_state().unwrap();
        let ok: bool = lua
            .load("return unpack({1,2})==1 and table.getn({1,2,3})==3 and math.pow(2,3)==8 and loadstring('return 5')()==5 and table.maxn({1,[7]=1})==7")
            .eval()
            .unwrap();
        assert!(ok);
        assert_eq!(lua.load("return collectgarbage('collect')").eval::<f64>().unwrap(), 0.0);
        assert!(lua.load("return collectgarbage('count')").eval::<f64>().unwrap() > 0.0);
    }
}
