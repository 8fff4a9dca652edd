//! Sessions: one tokio task per session owning all of its state (the actor), fed by a bounded FIFO
//! mailbox, plus the [`SessionManager`] that creates, finds and ends them.
//!
//! Connections never touch session state: they send [`SessionMsg`]s and receive finished frames
//! through their [`ConnSink`]. Frames of all connections are processed one at a time, in arrival order.

mod backend_link;
pub mod clock;
pub mod connection;
mod connections;
mod from_backend;
mod handle;
mod inspect;
pub mod manager;
pub mod remote;
pub mod sink;
mod to_remote;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::backend::BackendHub;
use crate::ids::{ConnId, SessionId, VarId, VendedId};
use crate::lua::{LuaBackend, LuaConfig};
use crate::protocol::{ClientFrame, Create, ErrorCode, FrameError, Message, ServerMessage, Update};
use crate::site::{LiveSite, Site};
use crate::tracker::{Owner, VarError, Writer};
use backend_link::BackendLink;
pub use clock::{Activity, Clock, EndReason, EndSignal};
use connections::Connections;
pub use handle::{BatchRefused, SessionGone, SessionHandle, SessionMsg, Stop};
pub use manager::SessionManager;
pub use sink::{ConnSink, Outbound, SendOutcome};

/// What every session of a gateway shares.
#[derive(Debug)]
pub struct SessionConfig {
    /// New sessions start from its current snapshot; hot reload tells live ones of a new one.
    pub site: Arc<LiveSite>,
    /// `None` when Lua is disabled (connected mode).
    pub lua: Option<LuaConfig>,
    pub max_connections: usize,
    pub flush_delay: Duration,
    pub mailbox: usize,
    /// Variables per session, all owners.
    pub max_variables: usize,
    /// The backend link, in connected and hybrid modes.
    pub backend: Option<Arc<BackendHub>>,
    /// Development mode (`--dev` or `--watch`): pages show app errors to the author in an overlay.
    pub dev: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            site: Arc::new(Site::builtin().into()),
            lua: Some(LuaConfig::default()),
            max_connections: 32,
            flush_delay: Duration::from_millis(10),
            mailbox: 1024,
            max_variables: 100_000,
            backend: None,
            dev: false,
        }
    }
}

/// The session actor's state.
pub struct Session {
    pub id: SessionId,
    pub vended: VendedId,
    config: Arc<SessionConfig>,
    /// The site snapshot this session uses (viewdefs, Lua sources); hot reload replaces it.
    site: Arc<Site>,
    activity: Arc<Activity>,
    lua: Option<LuaBackend>,
    connections: Connections,
    /// Next session-wide id for a browser-created variable: ascending from 2, never reused.
    next_global: i64,
    /// Watch tally per variable: how many connections (and the backend, for Lua variables) watch it.
    tallies: HashMap<VarId, usize>,
    /// Backend-owned variables as the gateway knows them.
    remote: remote::RemoteVars,
    /// Where the session stands with the backend, and what it owes it.
    link: BackendLink,
    /// Whether a browser frame arrived (the backend hears of a session with its first one).
    engaged: bool,
    /// Remote variables whose forwarded watch is not answered yet, with the connections that get the
    /// full state when the answer arrives (see `watch_remote`).
    awaiting_answer: HashMap<VarId, Vec<ConnId>>,
    /// Lua-owned variables the backend watches (client variables, variable 1 in hybrid mode).
    backend_watches: HashSet<VarId>,
    /// Lua-owned variables whose full state the backend gets after the pass.
    backend_full: Vec<VarId>,
    /// Client variables the backend created under Lua parents (they go when it does), with the
    /// properties it set itself (never echoed back to it).
    backend_vars: HashMap<VarId, crate::protocol::Properties>,
    /// Value changes delivered, in all (debug pages' `X-Change-Count`) and per variable.
    change_count: u64,
    changes_of: HashMap<VarId, u64>,
    /// What this session last added to the process-wide gauges (variables by owner, Lua heap, buffered
    /// backend messages), so it can report deltas and take it all back when it ends.
    reported: [i64; 4],
}

impl Drop for Session {
    fn drop(&mut self) {
        self.report_gauges_to([0; 4]);
    }
}

impl Session {
    /// Builds a session: its Lua backend (with its own tracker) and, in embedded mode, runs `main.lua`,
    /// which creates variable 1. A failing `main.lua` is logged and kept; the session still exists.
    pub fn new(id: SessionId, vended: VendedId, config: Arc<SessionConfig>, activity: Arc<Activity>) -> Session {
        Self::build(id, vended, config, activity, false)
    }

    /// Re-creates a session the registry kept across a gateway restart (docs/deploy/cluster.md
    /// "Restart survival"): same ids; `main.lua` reruns with `session.restored = true` (the Lua heap
    /// itself is not persisted). When the backend owns variable 1 (connected mode, or hybrid with a
    /// `main.lua` that leaves it to the backend), an empty placeholder stands for it, so the backend's
    /// full answer to the reconnecting tab's `watch` reaches the tab as the variable's whole state.
    pub fn restore(id: SessionId, vended: VendedId, config: Arc<SessionConfig>, activity: Arc<Activity>) -> Session {
        let mut session = Self::build(id, vended, config, activity, true);
        if session.config.backend.is_some() && session.owner(VarId::APP).is_none() {
            session.remote.insert(VarId::APP, None, remote::Creator::Backend, None, Default::default());
        }
        session
    }

    fn build(
        id: SessionId,
        vended: VendedId,
        config: Arc<SessionConfig>,
        activity: Arc<Activity>,
        restored: bool,
    ) -> Session {
        let site = config.site.current();
        let mut lua = match &config.lua {
            Some(lua_config) => match LuaBackend::new(vended, lua_config, site.lua_sources.clone()) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::error!(vended = %vended, detail = %e, "internal error: cannot create Lua state");
                    None
                }
            },
            None => None,
        };
        if let (Some(backend), Some(main)) = (lua.as_mut(), site.main_lua.as_ref()) {
            if restored {
                if let Err(e) = backend.eval::<()>("session.restored = true") {
                    tracing::warn!(vended = %vended, message = %e.description, "cannot mark a restored session");
                }
            }
            if let Err(e) = backend.load_main_file(main) {
                tracing::warn!(vended = %vended, var = 1, code = %e.code, message = %e.description, "main.lua failed");
            }
            backend.run_pending_lua();
            // The pass after main.lua settles every variable's first state; nobody is connected yet.
            backend.begin_phase();
            backend.tracker_mut().detect_changes();
        }
        Session {
            id,
            vended,
            activity,
            lua,
            link: BackendLink::new(config.backend.clone()),
            connections: Connections::new(config.flush_delay, config.max_connections),
            config,
            site,
            next_global: 2,
            tallies: HashMap::new(),
            remote: Default::default(),
            engaged: false,
            awaiting_answer: HashMap::new(),
            backend_watches: HashSet::new(),
            backend_full: Vec::new(),
            backend_vars: HashMap::new(),
            change_count: 0,
            changes_of: HashMap::new(),
            reported: [0; 4],
        }
    }

    /// Reports this session's share of the summed gauges after a batch.
    fn report_gauges(&mut self) {
        let lua_vars = self.lua.as_ref().map_or(0, |l| l.tracker().len()) as i64;
        let memory = self.lua.as_ref().map_or(0, LuaBackend::used_memory) as i64;
        let buffered = self.link.buffered() as i64;
        self.report_gauges_to([lua_vars, self.remote.len() as i64, memory, buffered]);
    }

    fn report_gauges_to(&mut self, now: [i64; 4]) {
        let m = crate::metrics::metrics();
        let d: Vec<i64> = now.iter().zip(self.reported).map(|(n, r)| n - r).collect();
        m.variables_delta("lua", d[0]);
        m.variables_delta("remote", d[1]);
        m.lua_memory.inc_by(d[2]);
        m.backend_buffered.inc_by(d[3]);
        self.reported = now;
    }

    pub fn lua(&self) -> Option<&LuaBackend> {
        self.lua.as_ref()
    }

    /// The site snapshot the session uses.
    pub fn site(&self) -> &Arc<Site> {
        &self.site
    }

    /// Starts the actor; returns the handle and the sender that stops it.
    pub fn spawn(self) -> (SessionHandle, oneshot::Sender<Stop>) {
        let (tx, rx) = mpsc::channel(self.config.mailbox.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        let handle = SessionHandle::new(self.id, self.vended, self.activity.clone(), tx);
        tokio::spawn(self.run(rx, stop_rx));
        (handle, stop_tx)
    }

    /// The actor loop: mailbox messages in order, flush timers, and the stop signal. Each item runs
    /// through [`Session::run_item`], which bounds and watches it.
    async fn run(mut self, mut rx: mpsc::Receiver<SessionMsg>, mut stop_rx: oneshot::Receiver<Stop>) {
        // What main.lua built counts from the start, before any frame.
        self.report_gauges();
        let stop = loop {
            let flush = self.next_flush();
            let timer = self.lua.as_ref().and_then(LuaBackend::next_timer_due);
            let done = tokio::select! {
                biased;
                stop = &mut stop_rx => break stop.unwrap_or(Stop::for_reason(EndReason::Destroyed)),
                msg = rx.recv() => match msg {
                    Some(msg) => self.run_item(|s| s.handle(msg)),
                    None => break Stop::for_reason(EndReason::Destroyed),
                },
                _ = sleep_until(timer), if timer.is_some() => self.run_item(|s| {
                    let started = std::time::Instant::now();
                    s.run_timers();
                    crate::metrics::metrics().batch_done("timer", started.elapsed().as_secs_f64());
                }),
                _ = sleep_until(flush), if flush.is_some() => self.run_item(Session::flush_due),
            };
            if let Err(failed) = done {
                break failed;
            }
        };
        self.connections.close_all(stop.code, stop.reason);
        // Dropping `self` frees the Lua state and the tracker.
    }

    /// Handles one mailbox item: stamps it for the watchdog, starts the Lua item clock (the cap on all
    /// its phases together), and contains a panic. A panic is a bug, but it must not leave a zombie:
    /// the session's connections close with 1011, the session is marked failed (the manager's watchdog
    /// takes it out of the table and logs it once), and the task ends.
    fn run_item(&mut self, f: impl FnOnce(&mut Session)) -> Result<(), Stop> {
        let metrics = crate::metrics::metrics();
        self.activity.item_started();
        metrics.lua_running.inc();
        if let Some(lua) = &self.lua {
            lua.begin_item();
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            f(self);
            // After every item, whatever it was (a tab closing takes its variables too), so the summed
            // gauges are current.
            self.report_gauges();
        }));
        if let Some(lua) = &self.lua {
            lua.end_item();
        }
        metrics.lua_running.dec();
        self.activity.item_done();
        match outcome {
            Ok(()) => Ok(()),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(vended = %self.vended, panic = %what, "internal error: session failed");
                self.activity.mark_failed();
                self.activity.signal_end(Stop::FAILED.signal());
                Err(Stop::FAILED)
            }
        }
    }

    fn handle(&mut self, msg: SessionMsg) {
        match msg {
            SessionMsg::Connect { conn, sink, reply } => {
                let _ = reply.send(self.connections.admit(conn, sink));
            }
            SessionMsg::Frame { conn, frame } => {
                let started = std::time::Instant::now();
                self.process_frame(conn, frame);
                crate::metrics::metrics().batch_done("browser", started.elapsed().as_secs_f64());
            }
            SessionMsg::Disconnect { conn } => self.disconnect(conn),
            SessionMsg::Backend { generation, batch } => {
                let started = std::time::Instant::now();
                self.backend_batch(generation, batch);
                crate::metrics::metrics().batch_done("backend", started.elapsed().as_secs_f64());
            }
            SessionMsg::BackendUp { generation, done } => {
                self.backend_up(generation);
                let _ = done.send(());
            }
            SessionMsg::BackendDown { generation, quiet } => self.backend_down(generation, quiet),
            SessionMsg::BackendLost => self.backend_lost(),
            SessionMsg::Inspect { reply } => {
                let _ = reply.send(self.inspect());
            }
            SessionMsg::Reload(site) => {
                let started = std::time::Instant::now();
                self.reload(site);
                crate::metrics::metrics().batch_done("reload", started.elapsed().as_secs_f64());
            }
        }
    }

    /// Hot reload (docs/lua-api.md "Hot reload"): adopt the new snapshot, rerun the files this session
    /// loaded whose text changed (in the order it first loaded them, each its own phase), then one pass;
    /// changed viewdefs go to the connections that have their type. A failing file is logged and the
    /// session goes on with what it has. In development every page gets the site's problems when
    /// they changed (a refused save, or the fix that clears it).
    fn reload(&mut self, site: Arc<Site>) {
        if Arc::ptr_eq(&site, &self.site) {
            return;
        }
        let old = std::mem::replace(&mut self.site, site);
        let viewdefs = old.viewdefs.changed_in(&self.site.viewdefs);
        if let Some(lua) = self.lua.as_mut() {
            lua.set_sources(self.site.lua_sources.clone());
            let rerun: Vec<String> = lua
                .loaded_files()
                .into_iter()
                .filter(|f| self.site.lua_sources.get(f).is_some_and(|new| old.lua_sources.get(f) != Some(new)))
                .collect();
            for file in &rerun {
                match lua.reload_file(file) {
                    Ok(()) => tracing::info!(vended = %self.vended, file = %format!("lua/{file}"), "reloaded"),
                    Err(e) => tracing::warn!(
                        vended = %self.vended, file = %format!("lua/{file}"), code = %e.code,
                        message = %e.description, "reload failed; the old definitions stay"
                    ),
                }
            }
            if !rerun.is_empty() {
                self.settle_lua();
                self.deliver_changes();
                self.emit_backend(false);
            }
        }
        self.connections.push_reloaded_viewdefs(&viewdefs);
        if self.config.dev && old.problems != self.site.problems {
            self.connections.push_notice_to_all(&ServerMessage::site_problems(&self.site.problems));
        }
    }

    /// Development: a page bootstrapping (its `watch` of variable 1) hears of the site's current
    /// problems, so a tab opened after a bad save shows them too. The page starts each connection with
    /// an empty list, so nothing is sent when there are none.
    fn tell_site_problems(&mut self, conn: ConnId) {
        if self.config.dev && !self.site.problems.is_empty() {
            self.connections.push_notice(conn, ServerMessage::site_problems(&self.site.problems));
        }
    }

    /// A connection closed: the variables it created go (other watchers are told), its watches leave
    /// their tallies; its id table, viewdef set and queue are discarded. App state stays.
    fn disconnect(&mut self, conn: ConnId) {
        self.disconnect_remote(conn);
        let Some(c) = self.connections.get(conn) else { return };
        let created = c.created();
        let watches: Vec<VarId> = c.watches.iter().copied().collect();
        for global in created {
            self.destroy_variable(global);
        }
        for global in watches {
            self.untally(global);
        }
        self.connections.remove(conn);
        self.deliver_changes();
        self.emit_backend(false);
    }

    /// Runs due Lua timers, each its own batch, then a pass.
    fn run_timers(&mut self) {
        let Some(lua) = self.lua.as_mut() else { return };
        lua.run_due_timers(Instant::now());
        self.settle_lua();
        self.deliver_changes();
        self.emit_backend(false);
    }

    fn process_frame(&mut self, conn: ConnId, frame: Result<ClientFrame, FrameError>) {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return self.connections.push_notice(conn, e.to_message()),
        };
        self.engaged = true;
        self.link.engage(self.vended);
        if let Some(lua) = &self.lua {
            lua.begin_phase();
        }
        for msg in frame.messages {
            match msg {
                Ok(msg) => self.apply_message(conn, msg),
                Err(e) => self.connections.push_notice(conn, ServerMessage::from_message_error(&e)),
            }
        }
        self.settle_lua();
        self.deliver_changes();
        self.emit_backend(frame.user_event);
        if frame.user_event {
            self.flush_connection(conn);
        }
    }

    fn error(&mut self, conn: ConnId, var: VarId, code: ErrorCode, description: impl Into<String>) {
        self.connections.push_notice(conn, ServerMessage::error(var, code, description));
    }

    fn apply_message(&mut self, conn: ConnId, msg: Message) {
        let Some(c) = self.connections.get(conn) else { return };
        match msg {
            Message::Watch(id) => match c.to_global(id) {
                Some(global) => {
                    if global == VarId::APP {
                        self.tell_site_problems(conn);
                    }
                    self.watch(conn, id, global)
                }
                None => self.error(conn, id, ErrorCode::NotFound, format!("variable {id} not found")),
            },
            Message::Unwatch(id) => {
                if let Some(global) = c.to_global(id) {
                    if self.connections.get_mut(conn).is_some_and(|c| c.watches.remove(&global)) {
                        if self.owner(global) == Some(Owner::Lua) {
                            self.untally(global);
                        } else {
                            self.unwatch_remote(global);
                        }
                    }
                }
            }
            Message::Destroy(id) => {
                if id.is_shared() {
                    return self.error(
                        conn,
                        id,
                        ErrorCode::AccessDenied,
                        "browsers may destroy only their own variables",
                    );
                }
                // Unknown ids are ignored silently so repeated destroys are harmless.
                if let Some(global) = c.to_global(id) {
                    match self.owner(global) {
                        Some(Owner::Lua) => self.destroy_variable(global),
                        Some(Owner::Remote) => self.destroy_remote(global),
                        None => {}
                    }
                }
            }
            Message::Create(create) => self.create(conn, create),
            Message::Update(update) => self.update(conn, update),
            Message::Error(_) => {
                // Parsing refuses `error` from browsers; nothing to do if one slipped through.
            }
        }
    }

    /// A browser `create` (PROTOCOL.md A4.1): owned like its parent.
    fn create(&mut self, conn: ConnId, create: Create) {
        let Some(c) = self.connections.get(conn) else { return };
        if c.owns_client_id(create.id) {
            return self.error(conn, create.id, ErrorCode::IdInUse, format!("id {} is in use", create.id));
        }
        let parent = create.parent_id.and_then(|p| c.to_global(p)).filter(|g| self.var_exists(*g));
        let Some(parent) = parent else {
            return self.error(conn, create.id, ErrorCode::NotFound, "parent variable not found");
        };
        if self.variable_count() >= self.config.max_variables {
            return self.error(conn, create.id, ErrorCode::LimitExceeded, "session variable limit reached");
        }
        let global = VarId(self.next_global);
        if self.owner(parent) == Some(Owner::Remote) {
            return self.create_remote(conn, create, parent, global);
        }
        let Some(lua) = self.lua.as_mut() else { return };
        match lua.tracker_mut().create(global, parent, &create.properties, Writer::Browser) {
            Ok(created) => {
                self.next_global += 1;
                if let Some(c) = self.connections.get_mut(conn) {
                    c.map_id(create.id, global);
                }
                if let Some(denied) = created.denied {
                    self.var_error(conn, create.id, denied);
                }
                if !create.nowatch {
                    self.watch(conn, create.id, global);
                    // Auto-watched `w`/`action` variables get no reply (only an explicit watch does).
                    let readable = self
                        .lua
                        .as_ref()
                        .and_then(|l| l.tracker().shared().access(global))
                        .is_some_and(|a| a.readable());
                    if !readable {
                        if let Some(c) = self.connections.get_mut(conn) {
                            c.full_requests.retain(|v| *v != global);
                        }
                    }
                }
            }
            Err(e) => self.var_error(conn, create.id, e),
        }
    }

    /// A browser `update`: properties, then the value; errors to the sender only.
    fn update(&mut self, conn: ConnId, update: Update) {
        let Some(c) = self.connections.get(conn) else { return };
        let Some(global) = c.to_global(update.var_id).filter(|g| self.var_exists(*g)) else {
            return self.error(
                conn,
                update.var_id,
                ErrorCode::NotFound,
                format!("variable {} not found", update.var_id),
            );
        };
        if self.owner(global) == Some(Owner::Remote) {
            return self.update_remote(conn, update, global);
        }
        let Some(lua) = self.lua.as_mut() else { return };
        let props = update.properties.as_deref().unwrap_or(&[]);
        let errors = lua.tracker_mut().update(global, props, update.value.as_ref(), Writer::Browser, Some(conn.0));
        for e in errors {
            self.var_error(conn, update.var_id, e);
        }
    }

    fn var_error(&mut self, conn: ConnId, client: VarId, e: VarError) {
        self.error(conn, client, e.code, e.description);
    }

    /// Destroys a Lua-owned variable's subtree and tells every connection that created or watches a
    /// destroyed variable, children first, in its own id space.
    fn destroy_variable(&mut self, global: VarId) {
        let Some(lua) = self.lua.as_mut() else { return };
        let destroyed = lua.tracker_mut().destroy(global);
        self.forget_variables(&destroyed);
    }

    /// Variables (of any owner) are gone: drop their tallies, counts and backend watches, and queue a
    /// `destroy` for every connection that created or watched one.
    fn forget_variables(&mut self, destroyed: &[VarId]) {
        for id in destroyed {
            self.tallies.remove(id);
            self.awaiting_answer.remove(id);
            self.changes_of.remove(id);
            self.backend_watches.remove(id);
            self.backend_vars.remove(id);
            self.connections.forget_variable(*id);
        }
    }

    /// Ends a Lua phase: runs the `lua` property values Lua queued (docs/lua-api.md "The lua property"), then tells connections about
    /// variables Lua destroyed with `destroyVariable`.
    fn settle_lua(&mut self) {
        let Some(lua) = self.lua.as_mut() else { return };
        lua.run_pending_lua();
        let destroyed = lua.take_destroyed();
        self.forget_variables(&destroyed);
    }

    /// One watcher more; returns whether it is the first. A Lua variable starts being computed.
    fn tally(&mut self, global: VarId) -> bool {
        let n = self.tallies.entry(global).or_insert(0);
        *n += 1;
        let first = *n == 1;
        if first {
            if let Some(lua) = self.lua.as_mut() {
                lua.tracker_mut().set_active(global, true);
            }
        }
        first
    }

    /// One watcher fewer; returns whether it was the last. At zero a Lua variable and its subtree stop
    /// being computed.
    fn untally(&mut self, global: VarId) -> bool {
        let Some(n) = self.tallies.get_mut(&global) else { return false };
        *n -= 1;
        if *n > 0 {
            return false;
        }
        self.tallies.remove(&global);
        if let Some(lua) = self.lua.as_mut() {
            lua.tracker_mut().set_active(global, false);
        }
        true
    }

    fn var_exists(&self, id: VarId) -> bool {
        self.owner(id).is_some()
    }

    /// `watch`: the connection watches the variable (idempotent) and gets its full state after this
    /// batch's pass, even if it already watched. Remote variables (and a variable 1 the backend is to
    /// create) go through the backend link.
    fn watch(&mut self, conn: ConnId, client: VarId, global: VarId) {
        match self.owner(global) {
            Some(Owner::Lua) => {}
            Some(Owner::Remote) => return self.watch_remote(conn, global, true),
            None if global == VarId::APP && self.backend_mode() => return self.watch_remote(conn, global, true),
            None => {
                let e = match &self.lua {
                    Some(lua) if global == VarId::APP => lua.missing_app_error(),
                    _ => return self.error(conn, client, ErrorCode::NotFound, format!("variable {client} not found")),
                };
                return self.connections.push_update(conn, ServerMessage::error(global, e.code, e.description));
            }
        }
        let newly = self.connections.get_mut(conn).map(|c| c.watches.insert(global)).unwrap_or(false);
        if newly {
            self.tally(global);
        }
        if let Some(c) = self.connections.get_mut(conn) {
            if !c.full_requests.contains(&global) {
                c.full_requests.push(global);
            }
        }
    }

    /// The pass after a batch: detected changes go to each watcher (minus what it wrote itself), then
    /// the full states that watches asked for; the backend's share goes to its outbox.
    fn deliver_changes(&mut self) {
        let Some(lua) = self.lua.as_mut() else { return };
        lua.begin_phase();
        let changes = lua.tracker_mut().detect_changes();
        for item in changes.items.iter().filter(|i| i.value.is_some()) {
            self.change_count += 1;
            *self.changes_of.entry(item.var_id).or_insert(0) += 1;
        }
        self.connections.deliver_pass(&changes, |global| lua.tracker().full_state(global));
        self.deliver_to_backend(&changes);
    }

    fn next_flush(&self) -> Option<Instant> {
        self.connections.next_flush()
    }

    fn flush_due(&mut self) {
        for conn in self.connections.due(Instant::now()) {
            self.flush_connection(conn);
        }
    }

    fn flush_connection(&mut self, conn: ConnId) {
        match self.connections.flush(conn, &self.site.viewdefs) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic while handling an item fails the session: the run loop stops with 1011 for its
    /// connections, it is marked failed for the manager, and the connections' end signal fires.
    #[tokio::test]
    async fn a_panicking_item_fails_the_session_and_closes_its_connections() {
        let activity = Arc::new(Activity::new(Clock::new()));
        let mut session =
            Session::new(SessionId::generate(), VendedId(1), Arc::new(SessionConfig::default()), activity.clone());
        let outcome = session.run_item(|_| panic!("a bug"));
        assert_eq!(outcome.unwrap_err().code, crate::protocol::close::INTERNAL);
        assert!(activity.failed());
        assert_eq!(activity.ended().await, Stop::FAILED.signal());
        assert_eq!(activity.busy_for(), None, "the item is over");
        assert!(session.run_item(|_| {}).is_ok(), "items after it run normally until the task ends");
    }

    /// Review L6: every item reports the session's share of the summed gauges, whatever the item was
    /// (a tab closing changes the variable count without any frame).
    #[tokio::test]
    async fn every_item_reports_the_gauges() {
        let activity = Arc::new(Activity::new(Clock::new()));
        let mut session =
            Session::new(SessionId::generate(), VendedId(1), Arc::new(SessionConfig::default()), activity);
        assert_eq!(session.reported, [0; 4]);
        session.run_item(|_| {}).unwrap();
        let lua = session.lua().unwrap();
        assert_eq!(session.reported[0], lua.tracker().len() as i64);
        assert_eq!(session.reported[2], lua.used_memory() as i64);
        assert!(session.reported[2] > 0);
        let vars_before = session.reported[0];
        session.run_item(|s| s.lua().unwrap().eval::<()>("session:createVariable(1, {x = 1})").unwrap()).unwrap();
        assert_eq!(session.reported[0], vars_before + 1);
    }
}
