//! # ui-gateway
//!
//! A server that gives programs a web UI without frontend code. A browser opens the site, gets its own
//! session URL and a WebSocket; the session's UI state is a tree of *variables* whose values live in a
//! per-session Lua program (and, later, in an external backend). The gateway tracks changes and pushes
//! updates; the browser renders HTML templates (*viewdefs*) bound with `ui-*` attributes.
//!
//! ## Layout
//!
//! | module | concept |
//! |---|---|
//! | [`protocol`] | wire types for the browser and backend protocols, parsing, error codes |
//! | [`ids`] | typed ids: [`ids::SessionId`], [`ids::VendedId`], [`ids::VarId`], [`ids::ConnId`] |
//! | [`config`] | command line and `UI_*` environment |
//! | [`site`] | the served site: built-in demo or `--site DIR`, viewdefs |
//! | [`gateway`] | startup: mode decision, shared state, the running server |
//! | [`http`] | routes: `GET /` creates sessions, the shell, static files, `/healthz` |
//! | [`backend`] | the `/backend` link: auth, welcome, routing batches to sessions, replay on reconnect |
//! | [`browser`] | one browser WebSocket: reader and writer tasks |
//! | [`session`] | the session actor, its per-connection state, [`session::SessionManager`] |
//! | [`metrics`] | Prometheus metrics at `/metrics` |
//! | [`runtime`] | the session runtime: the `ui-lua` threads session actors (and all session Lua) run on |
//! | [`lua`] | the per-session sandboxed Lua state and the `session` API |
//! | [`tracker`] | variables, paths, value snapshots, object registry, change detection |
//! | `client` | the Rust backend client library (cargo feature `backend-client`) |
//! | [`loadtest`] | `ui-gateway loadtest`: the load generator (browser protocol client, scenarios, report) |
//!
//! A frame's path: socket → [`browser`] reader (parse) → session mailbox → [`session::Session`]
//! (apply messages, Lua via [`lua::LuaBackend`] and its [`tracker::Tracker`]) → per-connection queue →
//! flush (timer or user event) → writer → socket. See `ARCHITECTURE.md`.

#[cfg(feature = "server")]
pub mod backend;
#[cfg(feature = "server")]
pub mod browser;
#[cfg(feature = "backend-client")]
pub mod client;
#[cfg(feature = "server")]
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "server")]
pub mod gateway;
#[cfg(feature = "server")]
pub mod http;
pub mod ids;
#[cfg(feature = "server")]
pub mod loadtest;
#[cfg(feature = "server")]
pub mod logging;
#[cfg(feature = "server")]
pub mod lua;
#[cfg(feature = "server")]
pub mod metrics;
pub mod protocol;
#[cfg(feature = "server")]
pub mod runtime;
#[cfg(feature = "server")]
pub mod session;
#[cfg(feature = "server")]
pub mod site;
pub mod tracker;
#[cfg(feature = "server")]
pub mod watch;
