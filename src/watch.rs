//! `--watch`: hot reload of the site's `lua/` and `viewdefs/` (docs/lua-api.md "Hot reload", PROTOCOL.md
//! A13).
//!
//! A file watcher wakes one task, which waits for 100 ms of quiet and then rereads the site
//! ([`LiveSite::reload`]), refusing Lua files that do not compile, and new code whose `main.lua` fails
//! at load, so the old code keeps running, and hands the new snapshot to every session. The refusals
//! travel in the snapshot ([`Site::problems`](crate::site::Site::problems)); each session tells its
//! pages, so the author sees them in the dev panel, not only in this terminal. Each session then works out for itself what changed: the
//! Lua files it loaded rerun with `session.reloading = true`, changed viewdefs go to the connections
//! that have their type. Nothing here touches session state.

use std::sync::Arc;
use std::time::Duration;

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::ids::VendedId;
use crate::lua::{LuaBackend, LuaConfig};
use crate::protocol::SiteProblem;
use crate::session::SessionManager;
use crate::site::{LiveSite, LuaFile, LuaSources};

/// Quiet time before a burst of file events counts as one change.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// The running watcher; dropping it stops watching (the reload task then ends).
pub struct SiteWatcher {
    _watcher: RecommendedWatcher,
}

/// Why `--watch` could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("--watch needs --site (the built-in demo cannot change)")]
    NoSite,
    #[error("cannot watch {path}: {source}")]
    Watch { path: String, source: notify::Error },
}

/// Starts watching `site`'s `lua/` and `viewdefs/` directories; reloads go to every session of
/// `sessions`.
pub fn spawn(site: Arc<LiveSite>, sessions: Arc<SessionManager>) -> Result<SiteWatcher, WatchError> {
    let root = site.current().root.clone().ok_or(WatchError::NoSite)?;
    // Capacity 1: a change noticed while a reload is pending is covered by that reload's fresh read.
    let (wake, mut woken) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| match event {
        // Opening and reading files (the reload itself does) is not a change.
        Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
        Ok(_) => {
            let _ = wake.try_send(());
        }
        Err(e) => tracing::warn!(error = %e, "site watcher error"),
    })
    .map_err(|source| WatchError::Watch { path: root.display().to_string(), source })?;
    for dir in ["lua", "viewdefs"].map(|d| root.join(d)).into_iter().filter(|d| d.is_dir()) {
        watcher
            .watch(&dir, RecursiveMode::Recursive)
            .map_err(|source| WatchError::Watch { path: dir.display().to_string(), source })?;
    }
    tokio::spawn(async move {
        while woken.recv().await.is_some() {
            // An editor's save is several events (truncate, write, rename…): wait until they stop.
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, woken.recv()).await {}
            let live = site.clone();
            let lua = sessions.session_config().lua.clone();
            let reload = tokio::task::spawn_blocking(move || {
                live.reload(compiles, |main, sources| match &lua {
                    Some(config) => loads(config, main, sources),
                    None => Ok(()), // connected mode: no session runs main.lua
                })
            })
            .await;
            match reload {
                Ok(Ok(Some(reload))) => {
                    tracing::info!(
                        lua_files = ?reload.lua_files,
                        viewdefs = ?reload.viewdefs,
                        problems = reload.site.problems.len(),
                        sessions = sessions.count(),
                        "site reloaded"
                    );
                    sessions.reload_all(reload.site).await;
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "site reload failed; nothing changed"),
                Err(e) => tracing::error!(error = %e, "site reload task failed"),
            }
        }
    });
    tracing::info!(site = %root.display(), "watching lua/ and viewdefs/ for changes");
    Ok(SiteWatcher { _watcher: watcher })
}

/// Whether a Lua file compiles (syntax only; nothing runs). `Err` holds Lua's message with `file:line`.
pub fn compiles(rel: &str, text: &str) -> Result<(), String> {
    let lua = mlua::Lua::new();
    lua.load(text)
        .set_name(format!("@lua/{rel}"))
        .set_mode(mlua::ChunkMode::Text)
        .into_function()
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Runs `main` once in a throwaway Lua state with the reloaded `sources`, as a new session would
/// (the startup check does the same for the first snapshot). `Err` names `lua/main.lua`; Lua's message
/// inside names the file and line that failed, which may be a module `main.lua` requires.
pub fn loads(config: &LuaConfig, main: &LuaFile, sources: &LuaSources) -> Result<(), SiteProblem> {
    // A state that cannot be created is not the new code's fault: sessions report that themselves.
    let Ok(mut trial) = LuaBackend::new(VendedId(0), config, sources.clone()) else { return Ok(()) };
    trial.load_main_file(main).map_err(|e| SiteProblem {
        file: "lua/main.lua".into(),
        message: format!(
            "lua/main.lua fails at load: {}; the page runs the last good code until you fix it",
            e.description
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_check_reports_file_and_line() {
        assert!(compiles("ok.lua", "local x = 1 return x").is_ok());
        let e = compiles("app/bad.lua", "local x =\n\n").unwrap_err();
        assert!(e.contains("lua/app/bad.lua:3"), "{e}");
    }
}
