//! Sessions: one tokio task per session owning all of its state (the actor), fed by a bounded FIFO
//! mailbox, plus the [`SessionManager`] that creates, finds and ends them.
//!
//! Connections never touch session state: they send [`SessionMsg`]s and receive finished frames
//! through their [`ConnSink`]. Frames of all connections are processed one at a time, in arrival order.

pub mod clock;
pub mod connection;
pub mod manager;
pub mod sink;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::ids::{ConnId, SessionId, VarId, VendedId};
use crate::lua::{LuaBackend, LuaConfig};
use crate::protocol::{close, ClientFrame, ErrorCode, FrameError, Message, ServerMessage};
use crate::site::Site;
pub use clock::{Activity, Clock, EndReason};
use connection::Connection;
pub use manager::SessionManager;
pub use sink::{ConnSink, Outbound, SendOutcome};

/// What every session of a gateway shares.
#[derive(Debug)]
pub struct SessionConfig {
    pub site: Arc<Site>,
    /// `None` when Lua is disabled (connected mode).
    pub lua: Option<LuaConfig>,
    pub max_connections: usize,
    pub flush_delay: Duration,
    pub mailbox: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            site: Arc::new(Site::builtin()),
            lua: Some(LuaConfig::default()),
            max_connections: 32,
            flush_delay: Duration::from_millis(10),
            mailbox: 1024,
        }
    }
}

/// Messages a session's mailbox accepts.
#[derive(Debug)]
pub enum SessionMsg {
    /// A browser connection opened; the reply says whether it was accepted (connection limit).
    Connect { conn: ConnId, sink: ConnSink, reply: oneshot::Sender<bool> },
    /// An inbound browser frame, already parsed off the session task.
    Frame { conn: ConnId, frame: Result<ClientFrame, FrameError> },
    /// A browser connection closed, for any reason.
    Disconnect { conn: ConnId },
}

/// How connections and the manager reach a session. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    pub id: SessionId,
    pub vended: VendedId,
    pub activity: Arc<Activity>,
    tx: mpsc::Sender<SessionMsg>,
}

/// The session is gone (its task ended).
#[derive(Debug, thiserror::Error)]
#[error("session ended")]
pub struct SessionGone;

impl SessionHandle {
    /// Registers a connection; `Ok(false)` when the session is at its connection limit.
    pub async fn connect(&self, conn: ConnId, sink: ConnSink) -> Result<bool, SessionGone> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(SessionMsg::Connect { conn, sink, reply }).await.map_err(|_| SessionGone)?;
        rx.await.map_err(|_| SessionGone)
    }

    /// Delivers a frame. Waits while the mailbox is full: that wait is the TCP back-pressure.
    pub async fn frame(&self, conn: ConnId, frame: Result<ClientFrame, FrameError>) -> Result<(), SessionGone> {
        self.tx.send(SessionMsg::Frame { conn, frame }).await.map_err(|_| SessionGone)
    }

    pub async fn disconnect(&self, conn: ConnId) {
        let _ = self.tx.send(SessionMsg::Disconnect { conn }).await;
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// How a session's task is told to end: close code and reason for its sockets.
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    pub code: u16,
    pub reason: &'static str,
}

impl Stop {
    pub fn for_reason(reason: EndReason) -> Stop {
        match reason {
            EndReason::Shutdown => Stop { code: close::GOING_AWAY, reason: "shutdown" },
            _ => Stop { code: close::UNKNOWN_SESSION, reason: "session-ended" },
        }
    }
}

/// The session actor's state.
pub struct Session {
    pub id: SessionId,
    pub vended: VendedId,
    config: Arc<SessionConfig>,
    activity: Arc<Activity>,
    lua: Option<LuaBackend>,
    connections: BTreeMap<ConnId, Connection>,
}

impl Session {
    /// Builds a session: its Lua backend (with its own tracker) and, in embedded mode, runs `main.lua`,
    /// which creates variable 1. A failing `main.lua` is logged and kept; the session still exists.
    pub fn new(id: SessionId, vended: VendedId, config: Arc<SessionConfig>, activity: Arc<Activity>) -> Session {
        let mut lua = match &config.lua {
            Some(lua_config) => match LuaBackend::new(vended, lua_config) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::error!(vended = %vended, detail = %e, "internal error: cannot create Lua state");
                    None
                }
            },
            None => None,
        };
        if let (Some(backend), Some(source)) = (lua.as_mut(), config.site.main_lua.as_deref()) {
            if let Err(e) = backend.load_main(source) {
                tracing::warn!(vended = %vended, var = 1, code = %e.code, message = %e.description, "main.lua failed");
            }
        }
        Session { id, vended, config, activity, lua, connections: BTreeMap::new() }
    }

    pub fn lua(&self) -> Option<&LuaBackend> {
        self.lua.as_ref()
    }

    /// Starts the actor; returns the handle and the sender that stops it.
    pub fn spawn(self) -> (SessionHandle, oneshot::Sender<Stop>) {
        let (tx, rx) = mpsc::channel(self.config.mailbox.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        let handle = SessionHandle { id: self.id, vended: self.vended, activity: self.activity.clone(), tx };
        tokio::spawn(self.run(rx, stop_rx));
        (handle, stop_tx)
    }

    /// The actor loop: mailbox messages in order, flush timers, and the stop signal.
    async fn run(mut self, mut rx: mpsc::Receiver<SessionMsg>, mut stop_rx: oneshot::Receiver<Stop>) {
        let stop = loop {
            let deadline = self.next_flush();
            tokio::select! {
                biased;
                stop = &mut stop_rx => break stop.unwrap_or(Stop::for_reason(EndReason::Destroyed)),
                msg = rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => break Stop::for_reason(EndReason::Destroyed),
                },
                _ = sleep_until(deadline), if deadline.is_some() => self.flush_due(),
            }
        };
        for conn in self.connections.values() {
            conn.close(stop.code, stop.reason);
        }
        // Dropping `self` frees the Lua state and the tracker.
    }

    fn handle(&mut self, msg: SessionMsg) {
        match msg {
            SessionMsg::Connect { conn, sink, reply } => {
                let accepted = self.connections.len() < self.config.max_connections;
                if accepted {
                    self.connections.insert(conn, Connection::new(conn, sink));
                }
                let _ = reply.send(accepted);
            }
            SessionMsg::Frame { conn, frame } => self.process_frame(conn, frame),
            SessionMsg::Disconnect { conn } => self.disconnect(conn),
        }
    }

    fn disconnect(&mut self, conn: ConnId) {
        // Its watches, id table, viewdef set and queue go with it; app state stays.
        self.connections.remove(&conn);
    }

    fn process_frame(&mut self, conn: ConnId, frame: Result<ClientFrame, FrameError>) {
        let delay = self.config.flush_delay;
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                if let Some(c) = self.connections.get_mut(&conn) {
                    c.push_notice(e.to_message(), delay);
                }
                return;
            }
        };
        for msg in frame.messages {
            match msg {
                Ok(msg) => self.apply_message(conn, msg),
                Err(e) => self.notice(conn, ServerMessage::from_message_error(&e)),
            }
        }
        if frame.user_event {
            self.flush_connection(conn);
        }
    }

    fn notice(&mut self, conn: ConnId, msg: ServerMessage) {
        let delay = self.config.flush_delay;
        if let Some(c) = self.connections.get_mut(&conn) {
            c.push_notice(msg, delay);
        }
    }

    fn error(&mut self, conn: ConnId, var: VarId, code: ErrorCode, description: impl Into<String>) {
        self.notice(conn, ServerMessage::error(var, code, description));
    }

    fn apply_message(&mut self, conn: ConnId, msg: Message) {
        let Some(c) = self.connections.get(&conn) else { return };
        match msg {
            Message::Watch(id) => {
                let Some(global) = c.to_global(id) else {
                    return self.error(conn, id, ErrorCode::NotFound, format!("variable {id} not found"));
                };
                self.watch(conn, global);
            }
            Message::Unwatch(id) => {
                if let Some(global) = c.to_global(id) {
                    if let Some(c) = self.connections.get_mut(&conn) {
                        c.watches.remove(&global);
                    }
                }
            }
            Message::Destroy(id) => {
                if id.is_shared() {
                    self.error(conn, id, ErrorCode::AccessDenied, "browsers may destroy only their own variables");
                }
                // Unknown ids are ignored silently so repeated destroys are harmless.
            }
            Message::Create(create) => {
                let known_parent = create.parent_id.and_then(|p| c.to_global(p)).filter(|g| self.var_exists(*g));
                if known_parent.is_none() {
                    return self.error(conn, create.id, ErrorCode::NotFound, "parent variable not found");
                }
                self.error(conn, create.id, ErrorCode::Internal, "child variables are not available in this build");
            }
            Message::Update(update) => {
                let Some(global) = c.to_global(update.var_id).filter(|g| self.var_exists(*g)) else {
                    return self.error(
                        conn,
                        update.var_id,
                        ErrorCode::NotFound,
                        format!("variable {} not found", update.var_id),
                    );
                };
                if update.value.is_some() && global == VarId::APP {
                    self.error(conn, update.var_id, ErrorCode::AccessDenied, "variable 1 has no path to write");
                }
                if update.properties.is_some() {
                    self.error(
                        conn,
                        update.var_id,
                        ErrorCode::Internal,
                        "property updates are not available in this build",
                    );
                }
            }
            Message::Error(_) => {
                // Parsing refuses `error` from browsers; nothing to do if one slipped through.
            }
        }
    }

    fn var_exists(&self, id: VarId) -> bool {
        self.lua.as_ref().is_some_and(|l| l.tracker().exists(id))
    }

    /// `watch`: always answered with the full state in the next flush.
    fn watch(&mut self, conn: ConnId, global: VarId) {
        let delay = self.config.flush_delay;
        let reply = match &self.lua {
            Some(lua) if lua.tracker().exists(global) => lua.tracker().full_state(global),
            Some(lua) if global == VarId::APP => {
                let e = lua.missing_app_error();
                vec![ServerMessage::error(global, e.code, e.description)]
            }
            None if global == VarId::APP => {
                vec![ServerMessage::error(global, ErrorCode::BackendUnavailable, "no backend is connected")]
            }
            _ => vec![ServerMessage::error(global, ErrorCode::NotFound, format!("variable {global} not found"))],
        };
        let Some(c) = self.connections.get_mut(&conn) else { return };
        if reply.iter().any(|m| matches!(m, ServerMessage::Update(_))) {
            c.watches.insert(global);
        }
        for msg in reply {
            c.push_update(msg, delay);
        }
    }

    fn next_flush(&self) -> Option<Instant> {
        self.connections.values().filter_map(Connection::flush_at).min()
    }

    fn flush_due(&mut self) {
        let now = Instant::now();
        let due: Vec<ConnId> =
            self.connections.values().filter(|c| c.flush_at().is_some_and(|t| t <= now)).map(|c| c.id).collect();
        for conn in due {
            self.flush_connection(conn);
        }
    }

    fn flush_connection(&mut self, conn: ConnId) {
        let Some(c) = self.connections.get_mut(&conn) else { return };
        match c.flush(&self.config.site.viewdefs) {
            SendOutcome::Queued => {}
            SendOutcome::TooSlow => {
                tracing::warn!(vended = %self.vended, conn = %conn, "slow browser closed");
                self.disconnect(conn);
            }
            SendOutcome::Gone => self.disconnect(conn),
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
