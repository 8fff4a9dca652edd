//! # ui-gateway
//!
//! A server that gives programs a web UI without frontend code. A browser opens the site, gets its own
//! session URL and a WebSocket; the session's UI state is a tree of *variables* whose values live in a
//! per-session Lua program (and, later, in an external backend). The gateway tracks changes and pushes
//! updates; the browser renders HTML templates (*viewdefs*) bound with `ui-*` attributes.
//!
//! ## Layout
//!
//! The gateway is this crate (`src/`, the `ui-gateway` binary). The libraries it is built from are
//! workspace members under `crates/`, re-exported here under the names the gateway's code uses:
//!
//! | crate | re-exported as | concept |
//! |---|---|---|
//! | `ui-gateway-wire` (`crates/wire`) | [`protocol`], [`ids`] | wire types for the browser and backend protocols, parsing, error codes; typed ids |
//! | `ui-gateway-tracker` (`crates/tracker`) | [`tracker`] | variables, paths, value snapshots, object registry, change detection |
//! | `ui-gateway-client` (`crates/client`) | — | the Rust backend client library (a separate dependency for backend authors) |
//!
//! | module | concept |
//! |---|---|
//! | [`config`] | command line and `UI_*` environment |
//! | [`units`] | the DUR, BYTES and boolean formats of flags, shared by `config` and `loadtest` |
//! | [`site`] | the served site: built-in demo or `--site DIR`, viewdefs |
//! | [`state`] | the shared state of a running gateway (mode decision and configuration resolved into it) |
//! | [`gateway`] | startup and shutdown: the running server |
//! | [`http`] | routes: `GET /` creates sessions, the shell, static files, `/healthz` |
//! | [`backend`] | the `/backend` link: auth, welcome, routing batches to sessions, replay on reconnect |
//! | [`browser`] | one browser WebSocket: reader and writer tasks |
//! | [`websocket`] | what the browser and backend sockets share: frame reads, typed close reasons, sending a close |
//! | [`session`] | the session actor, its per-connection state, [`session::SessionManager`] |
//! | [`metrics`] | Prometheus metrics at `/metrics` |
//! | [`runtime`] | the session runtime: the `ui-lua` threads session actors (and all session Lua) run on |
//! | [`lua`] | the per-session sandboxed Lua state and the `session` API |
//! | [`scaffold`] | `ui-gateway new DIR`: the files of a new site |
//! | [`loadtest`] | `ui-gateway loadtest`: the load generator (browser protocol client, scenarios, report) |
//!
//! A frame's path: socket → [`browser`] reader (parse) → session mailbox → [`session::Session`]
//! (apply messages, Lua via [`lua::LuaBackend`] and its [`tracker::Tracker`]) → per-connection queue →
//! flush (timer or user event) → writer → socket. See `ARCHITECTURE.md`.

pub use ui_gateway_tracker as tracker;
#[doc(hidden)]
pub use ui_gateway_tracker::fuzzing;
pub use ui_gateway_wire::{ids, protocol};

pub mod backend;
pub mod browser;
pub mod config;
#[cfg(test)]
mod docs_check;
pub mod gateway;
pub mod http;
pub mod loadtest;
pub mod logging;
pub mod lua;
pub mod metrics;
pub mod registry;
pub mod runtime;
pub mod scaffold;
pub mod session;
pub mod site;
pub mod state;
pub mod units;
pub mod watch;
pub mod websocket;
