//! The Lua shipped in the binary (the repo's `lua/`), compiled once per process.
//!
//! Every session loads the prelude, the compatibility shims, the sandbox's Lua and the URL paths. Parsing them per session cost about
//! 100 µs; loading precompiled bytecode costs about a tenth of that. Stripping debug information from
//! code whose errors always point at the caller (`error(msg, 2)`) also saves about 4 KiB of Lua heap
//! per session (P6). Only this module loads binary chunks; app code stays text-only (sandbox).

use std::sync::OnceLock;

use mlua::{ChunkMode, Lua};

/// One built-in Lua file and its bytecode, compiled on first use.
pub struct Builtin {
    name: &'static str,
    source: &'static str,
    /// Keep line numbers and local names (code whose errors users read).
    debug_info: bool,
    bytecode: OnceLock<Vec<u8>>,
}

impl Builtin {
    const fn new(name: &'static str, source: &'static str, debug_info: bool) -> Self {
        Builtin { name, source, debug_info, bytecode: OnceLock::new() }
    }

    /// The chunk, ready to call in `lua`.
    pub fn chunk<'a>(&'static self, lua: &'a Lua) -> mlua::Chunk<'a> {
        let bytecode = self.bytecode.get_or_init(|| {
            let scratch = Lua::new();
            let function = scratch.load(self.source).set_name(self.name).into_function();
            function.expect("built-in Lua compiles (checked by the unit tests)").dump(!self.debug_info)
        });
        lua.load(&bytecode[..]).set_name(self.name).set_mode(ChunkMode::Binary)
    }
}

/// The Lua half of the session API (`lua/prelude.lua`).
pub static PRELUDE: Builtin = Builtin::new("=prelude", include_str!("../../lua/prelude.lua"), false);
/// Lua 5.1 compatibility shims (`lua/compat.lua`).
pub static COMPAT: Builtin = Builtin::new("=compat", include_str!("../../lua/compat.lua"), false);
/// The sandbox's Lua half (`lua/sandbox.lua`).
pub static SANDBOX: Builtin = Builtin::new("=sandbox", include_str!("../../lua/sandbox.lua"), false);
/// URL paths (`src/lua/url_paths.lua`), loaded on a session's first URL-path call. Its errors are raised at
/// level 0 (no location), so it needs no debug information.
pub static URL_PATHS: Builtin = Builtin::new("=url_paths", include_str!("url_paths.lua"), false);
/// `lua.ViewList` / `lua.ViewListItem` (`lua/viewlist.lua`), loaded on first use; it runs app callbacks
/// (`itemWrapper`), so its errors keep their line numbers.
pub static VIEWLIST: Builtin = Builtin::new("=lua/viewlist.lua", include_str!("../../lua/viewlist.lua"), true);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_compiles_and_loads_as_bytecode() {
        let lua = Lua::new();
        for b in [&PRELUDE, &COMPAT, &SANDBOX, &URL_PATHS, &VIEWLIST] {
            assert!(b.chunk(&lua).into_function().is_ok(), "{}", b.name);
        }
    }

    /// Every Lua file the session code ships goes through a `Builtin`: one that is loaded from its
    /// text instead is parsed again by every session (URL paths were, and cost a quarter of a
    /// Contacts creation's CPU; BENCHMARKS.md §13c).
    #[test]
    fn the_session_code_loads_no_built_in_lua_from_text() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lua");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("builtin.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (n, line) in text.lines().enumerate() {
                let embeds_lua = line.contains("include_str!(") && line.contains(".lua\"");
                assert!(!embeds_lua, "{}:{}: embed built-in Lua as a `Builtin` (builtin.rs)", path.display(), n + 1);
            }
        }
    }

    #[test]
    fn viewlist_errors_keep_their_line_numbers() {
        let lua = Lua::new();
        let f = VIEWLIST.chunk(&lua).into_function().unwrap();
        let info = f.info();
        assert!(info.line_defined.is_some() || info.source.is_some());
        // Stripped chunks report `?` for lines; the ViewList keeps them.
        let bytecode = VIEWLIST.bytecode.get().unwrap();
        let stripped = lua.load(VIEWLIST.source).into_function().unwrap().dump(true);
        assert!(bytecode.len() > stripped.len());
    }
}
