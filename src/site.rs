//! The site a gateway serves: the built-in demo (compiled into the binary) or a directory given with
//! `--site` holding `html/`, `viewdefs/` and `lua/`.
//!
//! Lua sources and viewdefs are read at startup so no batch touches the filesystem; `html/` files are
//! read per request so edits show without a restart. With `--watch`, [`LiveSite::reload`] rereads them
//! and swaps in a new [`Site`] snapshot (docs/lua-api.md "Hot reload").

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::protocol::SiteProblem;

/// Lua sources keyed by their path below `lua/` (`a/b.lua`).
pub type LuaSources = Arc<HashMap<String, LuaFile>>;

/// One site Lua file: its text and, when the text compiles, its bytecode.
///
/// Every session runs `main.lua` and usually `require`s the same modules; parsing them from text in
/// every new session was about a fifth of the gateway's CPU under session creation (issue 19). The
/// files are compiled once per process (at site load, and again for a snapshot `--watch` swaps in) and
/// sessions load the dump. The dump keeps debug information, so errors still read
/// `lua/app.lua:12: …`. Only the gateway loads these dumps; the sandbox's `load` stays text-only.
/// A file that does not compile has no bytecode: sessions compile its text and get the usual syntax
/// error, as before.
#[derive(Clone)]
pub struct LuaFile {
    text: Arc<str>,
    bytecode: Option<Arc<[u8]>>,
}

impl LuaFile {
    /// Compiles `text` as the chunk `@lua/<rel>` (with `compiler`, a scratch state nothing runs in).
    pub fn compile(compiler: &mlua::Lua, rel: &str, text: Arc<str>) -> LuaFile {
        let function =
            compiler.load(&*text).set_name(format!("@lua/{rel}")).set_mode(mlua::ChunkMode::Text).into_function();
        let bytecode = function.ok().map(|f| Arc::from(f.dump(false)));
        LuaFile { text, bytecode }
    }

    /// The file's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// A file whose bytecode is not its text's (tests proving which of the two a session runs).
    #[cfg(test)]
    pub(crate) fn with_bytecode(text: &str, bytecode: Vec<u8>) -> LuaFile {
        LuaFile { text: Arc::from(text), bytecode: Some(Arc::from(bytecode)) }
    }

    /// The compiled chunk (with debug information), if the text compiles.
    pub fn bytecode(&self) -> Option<&[u8]> {
        self.bytecode.as_deref()
    }
}

impl Deref for LuaFile {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

/// Same text, same file: the bytecode follows from the text.
impl PartialEq for LuaFile {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl std::fmt::Debug for LuaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LuaFile")
            .field("text_len", &self.text.len())
            .field("bytecode_len", &self.bytecode.as_ref().map(|b| b.len()))
            .finish()
    }
}

/// A `main.lua` given as text (tests, tools), compiled on the spot.
impl From<&str> for LuaFile {
    fn from(text: &str) -> Self {
        LuaFile::compile(&mlua::Lua::new(), "main.lua", Arc::from(text))
    }
}

/// Errors found while loading a site; they stop the gateway at startup (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("site directory {0} does not exist or is not a directory")]
    Missing(PathBuf),
    #[error("site directory {0} has none of html/, viewdefs/, lua/main.lua")]
    Empty(PathBuf),
    #[error("{0} resolves outside the site directory")]
    Escapes(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

/// Built-in viewdefs (PROTOCOL.md A13), layered under the site's.
const BUILTIN_VIEWDEFS: &[(&str, &str)] = &[
    ("lua.ViewList.DEFAULT", "<template><div ui-viewlist=\"items\"></div></template>"),
    ("lua.ViewList.list-item", "<template><div ui-viewlist=\"items\"></div></template>"),
    ("lua.ViewListItem.DEFAULT", "<template><div ui-view=\"item\"></div></template>"),
    ("lua.ViewListItem.list-item", "<template><div ui-view=\"item\"></div></template>"),
];

// The built-in demo site's files (`DEMO_LUA`, `DEMO_VIEWDEFS`): the gallery and the examples it embeds.
include!("demo/files.rs");

/// Viewdefs grouped by type, so a connection meeting a new type gets all its namespaces at once.
#[derive(Debug, Default)]
pub struct Viewdefs {
    by_type: HashMap<String, BTreeMap<String, String>>,
}

impl Viewdefs {
    /// Adds or replaces one viewdef (`key` = `Type.namespace`).
    pub fn insert(&mut self, key: &str, template: String) {
        let Some((ty, _ns)) = key.rsplit_once('.') else { return };
        self.by_type.entry(ty.to_string()).or_default().insert(key.to_string(), template);
    }

    /// Every viewdef of a type, keyed `Type.namespace`.
    pub fn for_type(&self, ty: &str) -> Option<&BTreeMap<String, String>> {
        self.by_type.get(ty)
    }

    pub fn len(&self) -> usize {
        self.by_type.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_type.is_empty()
    }

    /// One viewdef by its `Type.namespace` key.
    pub fn get(&self, key: &str) -> Option<&String> {
        let (ty, _ns) = key.rsplit_once('.')?;
        self.for_type(ty)?.get(key)
    }

    /// Every viewdef, keyed `Type.namespace`.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.by_type.values().flat_map(|defs| defs.iter())
    }

    /// The viewdefs of `newer` that are new or different here (deletions are not changes: nothing is
    /// sent for them).
    pub fn changed_in(&self, newer: &Viewdefs) -> BTreeMap<String, String> {
        newer.iter().filter(|(key, html)| self.get(key) != Some(*html)).map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// A loaded site.
#[derive(Debug)]
pub struct Site {
    /// `None` for the built-in demo.
    pub root: Option<PathBuf>,
    /// `lua/main.lua`, if the site has one.
    pub main_lua: Option<LuaFile>,
    /// Every `.lua` file under `lua/`, keyed by its path relative to `lua/` (`a/b.lua`). `require`,
    /// `dofile` and `loadfile` read from here, so no batch touches the filesystem and nothing outside
    /// `lua/` can be loaded.
    pub lua_sources: LuaSources,
    pub viewdefs: Viewdefs,
    /// Site files that were refused or skipped: viewdef files not loaded (bad name, not one
    /// `<template>`, duplicate key) and, after a `--watch` reload, Lua files whose new text was refused
    /// (the last good code stays). Development pages list them (docs/attributes.md "Errors on the page").
    pub problems: Vec<SiteProblem>,
}

impl Site {
    /// The demo compiled into the binary.
    pub fn builtin() -> Site {
        let mut viewdefs = builtin_viewdefs();
        for (key, html) in DEMO_VIEWDEFS {
            viewdefs.insert(key, html.trim().to_string());
        }
        let compiler = mlua::Lua::new();
        let lua_sources: HashMap<String, LuaFile> = DEMO_LUA
            .iter()
            .map(|(path, src)| (path.to_string(), LuaFile::compile(&compiler, path, Arc::from(*src))))
            .collect();
        let main = lua_sources["main.lua"].clone();
        Site { root: None, main_lua: Some(main), lua_sources: Arc::new(lua_sources), viewdefs, problems: Vec::new() }
    }

    /// Loads a site directory.
    pub fn load(dir: &Path) -> Result<Site, SiteError> {
        if !dir.is_dir() {
            return Err(SiteError::Missing(dir.to_path_buf()));
        }
        let main_path = dir.join("lua").join("main.lua");
        let has_html = dir.join("html").is_dir();
        let has_viewdefs = dir.join("viewdefs").is_dir();
        let has_main = main_path.is_file();
        if !has_html && !has_viewdefs && !has_main {
            return Err(SiteError::Empty(dir.to_path_buf()));
        }
        let lua_sources = if dir.join("lua").is_dir() { load_lua_sources(dir)? } else { HashMap::new() };
        let main_lua = if has_main {
            match lua_sources.get("main.lua") {
                Some(text) => Some(text.clone()),
                None => return Err(SiteError::Escapes(main_path)),
            }
        } else {
            None
        };
        let mut viewdefs = builtin_viewdefs();
        let mut problems = Vec::new();
        if has_viewdefs {
            load_viewdefs(&dir.join("viewdefs"), &mut viewdefs, &mut problems)?;
        }
        Ok(Site { root: Some(dir.to_path_buf()), main_lua, lua_sources: Arc::new(lua_sources), viewdefs, problems })
    }

    /// The site's `html/` directory, if it has one.
    pub fn html_dir(&self) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.join("html")).filter(|d| d.is_dir())
    }

    /// The site's `lua/` directory (where `require` resolves), if it has one.
    pub fn lua_dir(&self) -> Option<PathBuf> {
        self.root.as_ref().map(|r| r.join("lua")).filter(|d| d.is_dir())
    }
}

/// The site sessions start from now. Hot reload swaps in a whole new snapshot; each session keeps the
/// snapshot it was last told about, so a batch never sees a half-reloaded site.
#[derive(Debug)]
pub struct LiveSite {
    current: RwLock<Arc<Site>>,
}

/// What one reload found. Sessions get only the new snapshot and work out what changed for them by
/// comparing it with their own (a session that missed a reload still catches up).
#[derive(Debug)]
pub struct SiteReload {
    /// The new snapshot.
    pub site: Arc<Site>,
    /// Lua files (paths below `lua/`) that are new or changed and passed the compile check.
    pub lua_files: Vec<String>,
    /// Viewdefs that are new or changed, keyed `Type.namespace`.
    pub viewdefs: Vec<String>,
}

impl From<Site> for LiveSite {
    fn from(site: Site) -> Self {
        LiveSite { current: RwLock::new(Arc::new(site)) }
    }
}

impl LiveSite {
    pub fn current(&self) -> Arc<Site> {
        self.current.read().clone()
    }

    /// Rereads the site directory and swaps in the result; `Ok(None)` when nothing changed (or the site
    /// is the built-in demo).
    ///
    /// `compiles` checks a changed Lua file's text. A file that fails keeps its previous text, so new
    /// sessions and `require` go on with the old code; so does a `main.lua` that disappeared (the mode
    /// needs one). When Lua files changed and compiled, `loads` runs the resulting `main.lua` once as a
    /// new session would; if it fails, every Lua file stays as it was (the last good code). Each
    /// refusal is logged and becomes one of the snapshot's [`Site::problems`], so a change in the
    /// problems alone is a change: pages hear of a new one and of a fix.
    pub fn reload(
        &self,
        compiles: impl Fn(&str, &str) -> Result<(), String>,
        loads: impl Fn(&LuaFile, &LuaSources) -> Result<(), SiteProblem>,
    ) -> Result<Option<SiteReload>, SiteError> {
        let old = self.current();
        let Some(root) = &old.root else { return Ok(None) };
        let mut fresh = Site::load(root)?;
        let mut sources: HashMap<String, LuaFile> = (*fresh.lua_sources).clone();
        let mut lua_files = Vec::new();
        let mut problems = Vec::new();
        for (rel, text) in fresh.lua_sources.iter() {
            if old.lua_sources.get(rel) == Some(text) {
                continue;
            }
            match compiles(rel, text) {
                Ok(()) => lua_files.push(rel.clone()),
                Err(message) => {
                    tracing::error!(file = %format!("lua/{rel}"), %message, "reload: Lua file does not compile; the old code stays");
                    problems.push(SiteProblem {
                        file: format!("lua/{rel}"),
                        message: format!(
                            "lua/{rel} does not compile: {message}; the page runs the last good code until you fix it"
                        ),
                    });
                    match old.lua_sources.get(rel) {
                        Some(previous) => sources.insert(rel.clone(), previous.clone()),
                        None => sources.remove(rel),
                    };
                }
            }
        }
        if old.main_lua.is_some() && !sources.contains_key("main.lua") {
            tracing::warn!("reload: lua/main.lua is gone; sessions keep starting from the old one");
            sources.insert("main.lua".into(), old.lua_sources["main.lua"].clone());
        }
        let mut sources = Arc::new(sources);
        let lua_changed = !lua_files.is_empty() || old.lua_sources.keys().any(|k| !sources.contains_key(k));
        if let (true, Some(main)) = (lua_changed, sources.get("main.lua")) {
            if let Err(problem) = loads(main, &sources) {
                tracing::error!(file = %problem.file, message = %problem.message, "reload: main.lua fails at load with the new code; the old code stays");
                problems.push(problem);
                sources = old.lua_sources.clone();
                lua_files.clear();
            }
        }
        let removed = old.lua_sources.keys().any(|k| !sources.contains_key(k));
        fresh.main_lua = sources.get("main.lua").cloned();
        fresh.lua_sources = sources;
        problems.sort_by(|a, b| a.file.cmp(&b.file));
        // Viewdef files skipped by this read come after the Lua refusals.
        problems.append(&mut fresh.problems);
        fresh.problems = problems;
        lua_files.sort();
        let viewdefs: Vec<String> = old.viewdefs.changed_in(&fresh.viewdefs).into_keys().collect();
        let viewdefs_removed = old.viewdefs.iter().any(|(key, _)| fresh.viewdefs.get(key).is_none());
        let problems_changed = old.problems != fresh.problems;
        if lua_files.is_empty() && viewdefs.is_empty() && !removed && !viewdefs_removed && !problems_changed {
            return Ok(None);
        }
        let site = Arc::new(fresh);
        *self.current.write() = site.clone();
        Ok(Some(SiteReload { site, lua_files, viewdefs }))
    }
}

/// Reads and compiles every `.lua` file under `DIR/lua/` whose real path (symlinks followed) lies inside
/// the site.
fn load_lua_sources(dir: &Path) -> Result<HashMap<String, LuaFile>, SiteError> {
    fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> SiteError + '_ {
        move |source| SiteError::Read { path: path.to_path_buf(), source }
    }
    let site_root = dir.canonicalize().map_err(read_err(dir))?;
    let lua_dir = dir.join("lua");
    let mut files = Vec::new();
    collect_files(&lua_dir, "lua", &mut files)?;
    let mut sources = HashMap::new();
    let compiler = mlua::Lua::new();
    for path in files {
        let Ok(real) = path.canonicalize() else { continue };
        if !real.starts_with(&site_root) {
            tracing::warn!(file = %path.display(), "Lua file resolves outside the site; not loadable");
            continue;
        }
        let Ok(rel) = path.strip_prefix(&lua_dir) else { continue };
        let key = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        let text = std::fs::read_to_string(&path).map_err(read_err(&path))?;
        let file = LuaFile::compile(&compiler, &key, Arc::from(text));
        sources.insert(key, file);
    }
    Ok(sources)
}

fn builtin_viewdefs() -> Viewdefs {
    let mut v = Viewdefs::default();
    for (key, html) in BUILTIN_VIEWDEFS {
        v.insert(key, html.to_string());
    }
    v
}

/// Reads `viewdefs/` recursively; among duplicate keys the lexicographically first path wins. Each
/// file skipped is logged and noted in `skipped` (development pages show them).
fn load_viewdefs(dir: &Path, into: &mut Viewdefs, skipped: &mut Vec<SiteProblem>) -> Result<(), SiteError> {
    // `dir` is the site's `viewdefs/`: name files as the author sees them, from the site directory.
    let shown = |path: &Path| {
        let rel = path.strip_prefix(dir).unwrap_or(path);
        let parts: Vec<_> = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect();
        format!("viewdefs/{}", parts.join("/"))
    };
    let mut skip = |path: &Path, why: String| {
        let file = shown(path);
        skipped.push(SiteProblem { message: format!("{file}: {why}; skipped"), file });
    };
    let mut files = Vec::new();
    collect_files(dir, "html", &mut files)?;
    files.sort();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for path in files {
        let Some(key) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".html")) else {
            continue;
        };
        if !key.contains('.') {
            tracing::warn!(file = %path.display(), "viewdef file name is not Type.namespace.html; skipped");
            skip(&path, "name is not Type.namespace.html".into());
            continue;
        }
        if let Some(first) = seen.get(key) {
            tracing::warn!(file = %path.display(), kept = %first.display(), "duplicate viewdef key; skipped");
            skip(&path, format!("another file has the key {key}: {}", shown(first)));
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| SiteError::Read { path: path.clone(), source })?;
        match single_template(&text) {
            Some(t) => {
                into.insert(key, t.to_string());
                seen.insert(key.to_string(), path);
            }
            None => {
                tracing::warn!(file = %path.display(), "viewdef is not exactly one <template> element; skipped");
                skip(&path, "not exactly one <template> element".into());
            }
        }
    }
    Ok(())
}

/// Files with extension `ext` below `dir`, recursively.
fn collect_files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> Result<(), SiteError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SiteError::Read { path: dir.to_path_buf(), source })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, ext, out)?;
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    Ok(())
}

/// The trimmed text if it is exactly one `<template>…</template>` element.
pub fn single_template(text: &str) -> Option<&str> {
    let t = text.trim();
    let opens_right = t.starts_with("<template>") || t.starts_with("<template ");
    if !opens_right || !t.ends_with("</template>") {
        return None;
    }
    // The outer element must close only at the very end: track nesting of template tags.
    let mut depth = 0i32;
    let mut rest = t;
    while let Some(pos) = rest.find("<template").into_iter().chain(rest.find("</template>")).min() {
        if rest[pos..].starts_with("</template>") {
            depth -= 1;
            rest = &rest[pos + "</template>".len()..];
            if depth == 0 && !rest.is_empty() {
                return None;
            }
        } else {
            depth += 1;
            rest = &rest[pos + "<template".len()..];
        }
    }
    (depth == 0).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_check() {
        assert!(single_template("  <template><div></div></template>\n").is_some());
        assert!(single_template("<template class=x><template></template></template>").is_some());
        assert!(single_template("<div></div>").is_none());
        assert!(single_template("<template></template><template></template>").is_none());
        assert!(single_template("<template><div>").is_none());
        assert!(single_template("<templatex></template>").is_none());
    }

    #[test]
    fn builtin_site_has_demo_and_viewlist_defaults() {
        let site = Site::builtin();
        assert!(site.main_lua.as_deref().unwrap().contains("createAppVariable"));
        assert!(site.viewdefs.for_type("Demo").unwrap().contains_key("Demo.DEFAULT"));
        let vl = site.viewdefs.for_type("lua.ViewList").unwrap();
        assert!(vl.contains_key("lua.ViewList.DEFAULT"));
        assert!(vl.contains_key("lua.ViewList.list-item"));
    }

    #[test]
    fn site_directory_rules() {
        let dir = std::env::temp_dir().join(format!("uigw-site-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(Site::load(&dir), Err(SiteError::Missing(_))));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(Site::load(&dir), Err(SiteError::Empty(_))));
        std::fs::create_dir_all(dir.join("viewdefs/sub")).unwrap();
        std::fs::write(dir.join("viewdefs/A.DEFAULT.html"), "<template><b>a</b></template>").unwrap();
        std::fs::write(dir.join("viewdefs/sub/lua.ViewList.DEFAULT.html"), "<template><i></i></template>").unwrap();
        std::fs::write(dir.join("viewdefs/Bad.DEFAULT.html"), "<div></div>").unwrap();
        std::fs::write(dir.join("viewdefs/sub/option.html"), "<template></template>").unwrap();
        std::fs::create_dir_all(dir.join("lua/ui")).unwrap();
        std::fs::write(dir.join("lua/ui/widgets.lua"), "return 1").unwrap();
        std::fs::write(dir.join("outside.lua"), "return 2").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.join("outside.lua"), dir.join("lua/inside.lua")).unwrap();
        let site = Site::load(&dir).unwrap();
        assert!(site.main_lua.is_none());
        assert_eq!(&*site.lua_sources["ui/widgets.lua"], "return 1");
        #[cfg(unix)]
        assert_eq!(&*site.lua_sources["inside.lua"], "return 2", "a symlink inside the site is fine");
        assert_eq!(site.viewdefs.for_type("A").unwrap()["A.DEFAULT"], "<template><b>a</b></template>");
        assert_eq!(
            site.viewdefs.for_type("lua.ViewList").unwrap()["lua.ViewList.DEFAULT"],
            "<template><i></i></template>"
        );
        assert!(site.viewdefs.for_type("Bad").is_none());
        let skipped: Vec<&str> = site.problems.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            skipped,
            [
                "viewdefs/Bad.DEFAULT.html: not exactly one <template> element; skipped",
                "viewdefs/sub/option.html: name is not Type.namespace.html; skipped",
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lua_files_are_compiled_at_load_and_broken_ones_keep_only_their_text() {
        let dir = std::env::temp_dir().join(format!("uigw-compile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("lua/util")).unwrap();
        std::fs::write(dir.join("lua/main.lua"), "x = require('util.m')").unwrap();
        std::fs::write(dir.join("lua/util/m.lua"), "return 1").unwrap();
        std::fs::write(dir.join("lua/bad.lua"), "local = 1").unwrap();
        let site = Site::load(&dir).unwrap();
        for rel in ["main.lua", "util/m.lua"] {
            let bytecode = site.lua_sources[rel].bytecode().unwrap_or_else(|| panic!("{rel} compiled"));
            assert!(bytecode.starts_with(b"\x1bLua"), "{rel}: a Lua dump");
        }
        assert!(site.main_lua.as_ref().unwrap().bytecode().is_some());
        assert!(site.lua_sources["bad.lua"].bytecode().is_none());
        assert_eq!(&*site.lua_sources["bad.lua"], "local = 1");
        // The built-in demo is compiled too.
        assert!(Site::builtin().lua_sources.values().all(|f| f.bytecode().is_some()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reload_reports_changes_and_keeps_code_that_does_not_compile() {
        let dir = std::env::temp_dir().join(format!("uigw-reload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("lua")).unwrap();
        std::fs::create_dir_all(dir.join("viewdefs")).unwrap();
        std::fs::write(dir.join("lua/main.lua"), "x = 1").unwrap();
        std::fs::write(dir.join("lua/util.lua"), "return 1").unwrap();
        std::fs::write(dir.join("viewdefs/A.DEFAULT.html"), "<template>a</template>").unwrap();
        std::fs::write(dir.join("viewdefs/B.DEFAULT.html"), "<template>b</template>").unwrap();
        let live = LiveSite::from(Site::load(&dir).unwrap());
        let ok = |_: &str, text: &str| if text.contains("syntax!") { Err("bad".to_string()) } else { Ok(()) };
        // The trial load fails when main.lua says so.
        let loads = |main: &LuaFile, _: &LuaSources| match main.contains("error(") {
            true => Err(SiteProblem { file: "lua/main.lua".into(), message: "fails".into() }),
            false => Ok(()),
        };
        assert!(live.reload(ok, loads).unwrap().is_none(), "nothing changed");

        std::fs::write(dir.join("lua/util.lua"), "return 2").unwrap();
        std::fs::write(dir.join("lua/new.lua"), "return 3").unwrap();
        std::fs::write(dir.join("viewdefs/A.DEFAULT.html"), "<template>a2</template>").unwrap();
        std::fs::write(dir.join("viewdefs/C.list-item.html"), "<template>c</template>").unwrap();
        std::fs::remove_file(dir.join("viewdefs/B.DEFAULT.html")).unwrap();
        let r = live.reload(ok, loads).unwrap().expect("changes");
        assert_eq!(r.lua_files, ["new.lua", "util.lua"]);
        assert_eq!(r.viewdefs, ["A.DEFAULT", "C.list-item"], "deletions are not sent");
        assert!(r.site.viewdefs.get("B.DEFAULT").is_none());
        assert!(Arc::ptr_eq(&r.site, &live.current()));

        std::fs::write(dir.join("lua/util.lua"), "syntax!").unwrap();
        std::fs::remove_file(dir.join("lua/main.lua")).unwrap();
        let r = live.reload(ok, loads).unwrap().expect("a refused file is news for the pages");
        assert!(r.lua_files.is_empty() && r.viewdefs.is_empty(), "but no code or viewdef changed");
        let site = live.current();
        assert_eq!(&*site.lua_sources["util.lua"], "return 2");
        assert_eq!(r.site.lua_sources["new.lua"].bytecode(), site.lua_sources["new.lua"].bytecode());
        assert!(site.lua_sources["util.lua"].bytecode().is_some(), "the reloaded snapshot is compiled");
        assert_eq!(site.main_lua.as_deref(), Some("x = 1"));
        assert_eq!(site.problems.len(), 1);
        assert_eq!(site.problems[0].file, "lua/util.lua");
        assert_eq!(
            site.problems[0].message,
            "lua/util.lua does not compile: bad; the page runs the last good code until you fix it"
        );
        assert!(live.reload(ok, loads).unwrap().is_none(), "the same refusal again is not news");

        // New code whose main.lua fails at load: all of it is refused, the old code stays.
        std::fs::write(dir.join("lua/main.lua"), "error('at load')").unwrap();
        std::fs::write(dir.join("lua/new.lua"), "return 4").unwrap();
        let r = live.reload(ok, loads).unwrap().expect("news");
        assert!(r.lua_files.is_empty());
        assert_eq!(r.site.main_lua.as_deref(), Some("x = 1"));
        assert_eq!(&*r.site.lua_sources["new.lua"], "return 3");
        let files: Vec<&str> = r.site.problems.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(files, ["lua/main.lua", "lua/util.lua"]);

        // A viewdef a save made invalid is skipped and named; fixing everything clears the list.
        std::fs::write(dir.join("viewdefs/A.DEFAULT.html"), "<div>no template</div>").unwrap();
        let r = live.reload(ok, loads).unwrap().expect("news");
        assert_eq!(r.site.problems.last().unwrap().file, "viewdefs/A.DEFAULT.html");
        assert!(r.site.problems.last().unwrap().message.contains("not exactly one <template>"));
        std::fs::write(dir.join("viewdefs/A.DEFAULT.html"), "<template>a3</template>").unwrap();
        std::fs::write(dir.join("lua/main.lua"), "x = 2").unwrap();
        std::fs::write(dir.join("lua/util.lua"), "return 5").unwrap();
        let r = live.reload(ok, loads).unwrap().expect("fixed");
        assert!(r.site.problems.is_empty(), "{:?}", r.site.problems);
        assert_eq!(r.lua_files, ["main.lua", "new.lua", "util.lua"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
