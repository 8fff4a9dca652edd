//! # ui-gateway-client
//!
//! The Rust backend client library: write the state of a UI as plain
//! Rust structs, and a ui-gateway running in **connected** or **hybrid** mode shows it in browsers.
//!
//! The client connects to the gateway's `/backend` WebSocket, builds one app
//! state per browser session with your factory, runs one task per session, resolves the browsers'
//! variables against your objects, detects changes with the crate's [`tracker`](crate::tracker)
//! after every batch and every [`SessionHandle`] closure, and sends only what changed. It reconnects
//! by itself and rebuilds state as the protocol's epochs and replays require.
//!
//! # Example: a counter
//!
//! With `viewdefs/Counter.DEFAULT.html` =
//! `<template><span ui-value="count"></span><button ui-action="increment()">+</button></template>`
//! and `ui-gateway --mode connected --site <that site>`:
//!
//! ```no_run
//! use ui_gateway_client::{Client, ClientError, Obj, Session};
//! use ui_gateway_client::ui_object;
//!
//! struct Counter {
//!     count: i64,
//! }
//!
//! impl Counter {
//!     fn increment(&mut self) {
//!         self.count += 1;
//!     }
//! }
//!
//! ui_object!(Counter { fields { count } methods { increment() } });
//!
//! #[tokio::main]
//! async fn main() -> Result<(), ClientError> {
//!     // UI_BACKEND_URL (default ws://127.0.0.1:8000/backend), UI_BACKEND_TOKEN.
//!     Client::from_env()
//!         .connected(|session: &mut Session| {
//!             // A clock: the handle carries `Send` closures to the session's task.
//!             let handle = session.handle::<Obj<Counter>>();
//!             tokio::spawn(async move {
//!                 let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
//!                 loop {
//!                     tick.tick().await;
//!                     // Fails once the session is gone: the feed ends.
//!                     if handle.update(|c| c.borrow_mut().count += 1).is_err() {
//!                         break;
//!                     }
//!                 }
//!             });
//!             Obj::new(Counter { count: 0 })
//!         })
//!         .run()
//!         .await
//! }
//! ```
//!
//! # The object model
//!
//! - An [`Object`] has a type name (the `type` the browser picks viewdefs by), fields read and
//!   written as value JSON, and methods called by `m()` / `m(_)` paths. [`ui_object!`](crate::ui_object)
//!   implements it for a struct from a list of field and method names.
//! - Field types convert through [`UiValue`]: integers, floats, `bool`, `String`, `Option` (`None`
//!   = `null`), `Vec` (an array), `serde_json::Value`, and [`Obj`] handles.
//! - An [`Obj<T>`] is a shared `Rc` handle: its identity is the object's `{"obj":N}`, stable as long
//!   as the object lives; the object is released when nothing references it.
//!
//! # Modes
//!
//! - **Connected** ([`Client::connected`]): the factory's [`Root`] object becomes variable 1 on the
//!   session's first batch.
//! - **Hybrid** ([`Client::hybrid`]): Lua owns the UI; the factory (or a handle closure) creates
//!   *client variables* under Lua variables with [`Session::client_var`], writes them with
//!   [`Session::write`] and hears their values through [`Session::on_value`]. A root object, if the
//!   factory returns one, becomes variable 1 only when the gateway forwards a `watch` of it.
//!
//! # Threads
//!
//! Objects are `Rc`-based and never leave the client's own thread (a current-thread runtime with a
//! `LocalSet`, started by [`Backend::start`]). The factory runs there, so it may `tokio::spawn`
//! feeds; [`SessionHandle`]s are `Send` and work from any thread or runtime.

/// The change tracker the client detects changes with (its types appear in [`Object`]'s methods).
pub use ui_gateway_tracker as tracker;
/// Typed ids and the protocol messages.
pub use ui_gateway_wire::{ids, protocol};

/// The Rust examples of the documentation pages, compiled as doc tests of this crate (`cargo test -p
/// ui-gateway-client --doc`) so that a page cannot drift from the API it shows. Each page is one doc
/// comment: its ```` ```rust ```` blocks are doc tests (`rust no_run` where they would connect; GitHub
/// reads only the first word of the fence), its `sh`, `html` and `lua` blocks are not Rust and are skipped.
/// `docs_pages_are_all_included` below keeps this list complete.
#[cfg(doctest)]
mod docs_pages {
    #[doc = include_str!("../../../docs/connected-mode.md")]
    struct ConnectedMode;
    #[doc = include_str!("../../../docs/hybrid-mode.md")]
    struct HybridMode;
}

mod backoff;
mod config;
mod connection;
mod error;
mod handle;
mod object;
mod resolver;
mod session;
mod task;
mod url_paths;
mod value;

use std::marker::PhantomData;
use std::rc::Rc;
use std::thread::JoinHandle;

use tokio::sync::{oneshot, watch};

pub use backoff::delay as backoff_delay;
pub use config::{ClientConfig, DEFAULT_URL};
pub use error::ClientError;
pub use handle::SessionHandle;
pub use object::{Obj, Object};
pub use resolver::ObjectResolver;
pub use session::{Mode, Root, Session};
pub use value::{IntoReturn, MethodError, UiValue};

pub use crate::ids::VarId;
pub use crate::tracker::{Access, JValue, VarError};

/// Entry point: where to connect. Pick the mode with [`Client::connected`] or [`Client::hybrid`].
#[derive(Clone, Debug, Default)]
pub struct Client {
    config: ClientConfig,
}

impl Client {
    pub fn new(config: ClientConfig) -> Self {
        Client { config }
    }

    /// [`ClientConfig::from_env`]: `UI_BACKEND_URL`, `UI_BACKEND_TOKEN`.
    pub fn from_env() -> Self {
        Client::new(ClientConfig::from_env())
    }

    /// A connected-mode backend: `factory` builds each session's app, whose root is variable 1.
    pub fn connected<A, F>(self, factory: F) -> Backend<A, F>
    where
        A: Root,
        F: Fn(&mut Session) -> A + Send + 'static,
    {
        Backend { config: self.config, mode: Mode::Connected, factory, _app: PhantomData }
    }

    /// A hybrid-mode backend: `factory` builds each session's state and creates its client variables.
    pub fn hybrid<A, F>(self, factory: F) -> Backend<A, F>
    where
        A: Root,
        F: Fn(&mut Session) -> A + Send + 'static,
    {
        Backend { config: self.config, mode: Mode::Hybrid, factory, _app: PhantomData }
    }
}

/// A configured backend, ready to start.
pub struct Backend<A, F> {
    config: ClientConfig,
    mode: Mode,
    factory: F,
    _app: PhantomData<fn() -> A>,
}

impl<A, F> Backend<A, F>
where
    A: Root,
    F: Fn(&mut Session) -> A + Send + 'static,
{
    /// Starts the client on its own thread and returns at once.
    pub fn start(self) -> Result<RunningClient, ClientError> {
        let (stop_tx, stop_rx) = watch::channel(connection::Control::Run);
        let (done_tx, done_rx) = oneshot::channel();
        let Backend { config, mode, factory, .. } = self;
        let thread = std::thread::Builder::new()
            .name("ui-backend-client".into())
            .spawn(move || {
                let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => {
                        let local = tokio::task::LocalSet::new();
                        let factory: task::Factory<A> = Rc::new(factory);
                        // One link per gateway, each with its own sessions.
                        let links = config
                            .endpoints()
                            .into_iter()
                            .map(|url| connection::run(url, config.clone(), mode, factory.clone(), stop_rx.clone()));
                        let results = local.block_on(&rt, futures::future::join_all(links));
                        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
                    }
                    Err(e) => Err(ClientError::Runtime(e.to_string())),
                };
                let _ = done_tx.send(result);
            })
            .map_err(|e| ClientError::Runtime(e.to_string()))?;
        Ok(RunningClient { stop: stop_tx, done: Some(done_rx), thread: Some(thread) })
    }

    /// Runs until stopped or refused (401/403): [`Backend::start`], then [`RunningClient::wait`]. On
    /// SIGTERM (Unix) it drains: the gateways give it no new sessions, it keeps serving the ones it has,
    /// and it returns once it holds none or after [`ClientConfig::drain_timeout`] — the step of a
    /// rolling deploy (docs/connected-mode.md "Rolling deploys").
    pub async fn run(self) -> Result<(), ClientError> {
        let client = self.start()?;
        #[cfg(unix)]
        {
            let drain = client.stop.clone();
            if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                tokio::spawn(async move {
                    if term.recv().await.is_some() {
                        tracing::info!("SIGTERM: draining");
                        let _ = drain.send(connection::Control::Drain);
                    }
                });
            }
        }
        client.wait().await
    }
}

/// A started client. Dropping it stops the client.
pub struct RunningClient {
    stop: watch::Sender<connection::Control>,
    done: Option<oneshot::Receiver<Result<(), ClientError>>>,
    thread: Option<JoinHandle<()>>,
}

impl RunningClient {
    /// Asks the client to close its connection and drop all sessions.
    pub fn stop(&self) {
        let _ = self.stop.send(connection::Control::Stop);
    }

    /// Starts draining: each gateway is told, gives this client no new sessions, and the client ends
    /// once it holds no session (or after [`ClientConfig::drain_timeout`]); [`RunningClient::wait`]
    /// then returns `Ok`.
    pub fn drain(&self) {
        self.stop.send_if_modified(|c| {
            let run = *c == connection::Control::Run;
            if run {
                *c = connection::Control::Drain;
            }
            run
        });
    }

    /// Waits until the client ends: `Ok` after [`RunningClient::stop`], `Err` when the gateway
    /// refused the connection (401/403).
    pub async fn wait(mut self) -> Result<(), ClientError> {
        let done = self.done.take().expect("wait is called once");
        let result = done.await.unwrap_or_else(|_| Err(ClientError::Runtime("client thread panicked".into())));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        result
    }

    /// [`RunningClient::stop`], then [`RunningClient::wait`].
    pub async fn shutdown(self) -> Result<(), ClientError> {
        self.stop();
        self.wait().await
    }
}

impl Drop for RunningClient {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod docs_pages_tests {
    /// Every page of `docs/` with a Rust block is included in `docs_pages` above, and no included page
    /// has a fence without a language (rustdoc would compile it as Rust).
    #[test]
    fn docs_pages_are_all_included() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs");
        let this = include_str!("lib.rs");
        let mut pages = Vec::new();
        let mut stack = vec![std::path::PathBuf::from(root)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("docs/ is readable") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "md") {
                    pages.push(path);
                }
            }
        }
        let mut with_rust = 0;
        for page in pages {
            let text = std::fs::read_to_string(&page).expect("a readable page");
            let fences: Vec<&str> =
                text.lines().map(str::trim_start).filter(|l| l.starts_with("```")).step_by(2).collect();
            if !fences.iter().any(|f| f.starts_with("```rust")) {
                continue;
            }
            with_rust += 1;
            let rel = page.strip_prefix(root).expect("under docs/").to_string_lossy().replace('\\', "/");
            let include = format!("include_str!(\"../../../docs/{rel}\")");
            assert!(this.contains(&include), "docs/{rel} has Rust blocks: add `#[doc = {include}]` to docs_pages");
            for fence in fences {
                assert!(fence.len() > 3, "docs/{rel}: a fence without a language would be compiled as Rust");
            }
        }
        assert!(with_rust >= 2, "connected-mode.md and hybrid-mode.md have Rust blocks");
    }
}
