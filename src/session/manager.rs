//! `SessionManager`, as the seed card `crc-SessionManager.md` describes it: the session map, vended ids
//! with their bidirectional maps, URL-path registrations, the inactivity sweep, and admission (who may
//! create a session now; the policy is in [`admission`]).

// Declared here rather than in `session/mod.rs` (being rewritten concurrently); it lives next to this file.
#[path = "admission.rs"]
pub mod admission;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::{Activity, Clock, EndReason, Session, SessionConfig, SessionHandle, SessionMsg, Stop};
use crate::ids::{NodeId, SessionId, VendedId};
use crate::registry::{Registry, SessionRecord};
use crate::runtime::{RuntimeSize, SessionRuntime};
use crate::site::Site;
use admission::{Admission, AdmissionConfig, AdmitTicket, ClientKey};

/// Why a session could not be created. Each knows its HTTP answer ([`CreateError::status`],
/// [`CreateError::retry_after_secs`]) and its `reason` label on `ui_sessions_rejected_total`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CreateError {
    /// `--max-sessions` live sessions, none of them evictable (all have an open connection).
    #[error("session limit of {0} reached")]
    AtCapacity(usize),
    /// Building the session failed: `main.lua` panicked the host code, or did not finish within the
    /// watchdog (stuck where no limit reaches). The slot is released; the request gets 500.
    #[error("the session could not be built")]
    BuildFailed,
    /// The process's resident memory is over `--max-memory`.
    #[error("resident memory {rss} bytes is over the limit of {limit}")]
    MemoryHigh { rss: u64, limit: u64 },
    /// The client already has `--max-sessions-per-client` live sessions.
    #[error("this client has {0} live sessions, the limit")]
    ClientCap(usize),
    /// The client's `--session-rate` bucket is empty; a token is due after `retry_after`.
    #[error("session creation rate exceeded for this client")]
    RateLimited { retry_after: Duration },
}

impl CreateError {
    /// 503 for what concerns the whole gateway, 429 for what concerns this client.
    pub fn status(&self) -> u16 {
        match self {
            CreateError::AtCapacity(_) | CreateError::MemoryHigh { .. } => 503,
            CreateError::BuildFailed => 500,
            CreateError::ClientCap(_) | CreateError::RateLimited { .. } => 429,
        }
    }

    /// The `Retry-After` seconds: when the next token is due for the rate limit (at least 1), else 30.
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            CreateError::RateLimited { retry_after } => retry_after.as_millis().div_ceil(1000).max(1) as u64,
            _ => admission::RETRY_AFTER_SECS,
        }
    }

    /// The `reason` label of `ui_sessions_rejected_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            CreateError::AtCapacity(_) => "capacity",
            CreateError::MemoryHigh { .. } => "memory",
            CreateError::ClientCap(_) => "client-cap",
            CreateError::RateLimited { .. } => "rate",
            CreateError::BuildFailed => "failed",
        }
    }
}

/// Timeouts the sweep applies (from config).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// Idle lifetime; zero = never.
    pub session: Duration,
    /// Lifetime of a never-connected session; zero = use `session`.
    pub unclaimed: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { session: Duration::from_secs(24 * 3600), unclaimed: Duration::from_secs(300) }
    }
}

impl Timeouts {
    /// Sweep period: min(timeout / 10, 60 s) over the active timeouts; `None` when nothing expires.
    pub fn sweep_period(&self) -> Option<Duration> {
        [self.session, self.unclaimed]
            .into_iter()
            .filter(|t| !t.is_zero())
            .map(|t| (t / 10).clamp(Duration::from_millis(10), Duration::from_secs(60)))
            .min()
    }
}

struct Entry {
    handle: SessionHandle,
    stop: oneshot::Sender<Stop>,
    /// The session's place in its client's count: dropped with the entry, so destroying it frees it.
    _ticket: AdmitTicket,
}

#[derive(Default)]
struct State {
    /// sessions: internal id → session.
    sessions: HashMap<SessionId, Entry>,
    internal_to_vended: HashMap<SessionId, VendedId>,
    vended_to_internal: HashMap<VendedId, SessionId>,
    /// Sessions being built right now (counted against the cap, so concurrent creates cannot pass it).
    creating: usize,
}

/// Creates, finds and ends sessions. Shared by the HTTP layer, the WebSocket layer and the sweep task.
pub struct SessionManager {
    state: Mutex<State>,
    /// nextVendedID: starts at 1, never reused for the life of the process.
    next_vended_id: AtomicU64,
    /// sessionTimeout (and the unclaimed timeout).
    timeouts: Timeouts,
    /// luaSessionFactory: what every new session's Lua backend is built from.
    session_config: Arc<SessionConfig>,
    max_sessions: usize,
    clock: Clock,
    /// Where session actors (and all their Lua) run: never on the I/O threads.
    runtime: SessionRuntime,
    /// How long one mailbox item may run before the session is ended (`--lua-watchdog`; 0 = never).
    watchdog: Duration,
    admission: Arc<Admission>,
    /// `--redact-ids`: the `session destroyed` line shows 8 hex digits of the internal id.
    redact_ids: bool,
    /// `--node-id`: the first byte of every internal id this manager creates.
    node: Option<NodeId>,
    /// `--registry`: vended ids from Redis, and the session records restart survival needs.
    registry: Option<Arc<Registry>>,
}

/// A place counted in `State::creating` while a session is built. Dropping it without
/// [`CreatingSlot::commit`] (creation failed, panicked, or its future was dropped) gives the place back,
/// so a panic in `main.lua` cannot leak the session cap (security review M1).
struct CreatingSlot<'a> {
    manager: &'a SessionManager,
    committed: bool,
}

impl CreatingSlot<'_> {
    /// The session is in the table: the place is now counted there (call with the state locked).
    fn commit(mut self, st: &mut State) {
        st.creating -= 1;
        self.committed = true;
    }
}

impl Drop for CreatingSlot<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.manager.state.lock().creating -= 1;
        }
    }
}

impl SessionManager {
    /// A manager whose sessions run on a default-sized session runtime, without a watchdog (the
    /// gateway uses [`SessionManager::with_runtime`] with `--lua-watchdog`; tests that pause the clock
    /// need a build wait that no paused clock can cut short).
    pub fn new(session_config: Arc<SessionConfig>, timeouts: Timeouts, max_sessions: usize) -> Self {
        let runtime = SessionRuntime::new(RuntimeSize::default()).expect("the session runtime starts");
        Self::with_runtime(session_config, timeouts, max_sessions, runtime, Duration::ZERO)
    }

    pub fn with_runtime(
        session_config: Arc<SessionConfig>,
        timeouts: Timeouts,
        max_sessions: usize,
        runtime: SessionRuntime,
        watchdog: Duration,
    ) -> Self {
        SessionManager {
            state: Mutex::new(State::default()),
            next_vended_id: AtomicU64::new(1),
            timeouts,
            session_config,
            max_sessions,
            clock: Clock::new(),
            runtime,
            watchdog,
            admission: Admission::new(AdmissionConfig::unlimited()),
            redact_ids: false,
            node: None,
            registry: None,
        }
    }

    /// With per-client limits and the memory ceiling (without it nothing but `max_sessions` applies).
    pub fn with_admission(mut self, admission: Arc<Admission>) -> Self {
        self.admission = admission;
        self
    }

    /// With `--redact-ids` for the `session destroyed` line.
    pub fn with_redacted_ids(mut self, redact: bool) -> Self {
        self.redact_ids = redact;
        self
    }

    /// With `--node-id`: internal ids start with the node's byte, so a load balancer can route them.
    pub fn with_node(mut self, node: Option<NodeId>) -> Self {
        self.node = node;
        self
    }

    /// With `--registry`: vended ids come from Redis and every session is recorded there.
    pub fn with_registry(mut self, registry: Option<Arc<Registry>>) -> Self {
        self.registry = registry;
        self
    }

    pub fn node(&self) -> Option<NodeId> {
        self.node
    }

    pub fn registry(&self) -> Option<&Arc<Registry>> {
        self.registry.as_ref()
    }

    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    pub fn runtime(&self) -> &SessionRuntime {
        &self.runtime
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    pub fn session_config(&self) -> &Arc<SessionConfig> {
        &self.session_config
    }

    /// generateSessionId: a fresh internal id (128 random bits, or the node's byte and 120 random bits).
    pub fn generate_session_id(&self) -> SessionId {
        SessionId::generate_on(self.node)
    }

    /// The next vended id: the registry's shared counter when there is one, else this process's.
    async fn next_vended(&self) -> VendedId {
        match &self.registry {
            Some(registry) => registry.next_vended().await,
            None => VendedId(self.next_vended_id.fetch_add(1, Ordering::Relaxed)),
        }
    }

    /// What the registry keeps of a session (its last activity converted to the wall clock).
    fn record(&self, handle: &SessionHandle) -> Option<SessionRecord> {
        let registry = self.registry.as_ref()?;
        let idle_ms = self.clock.now_ms().saturating_sub(handle.activity.last_active_ms());
        Some(SessionRecord {
            id: handle.id,
            vended: handle.vended,
            node: registry.node,
            last_active_ms: crate::registry::unix_ms().saturating_sub(idle_ms),
            epoch: self.session_config.backend.as_ref().map(|hub| hub.epoch.clone()),
            claimed: handle.activity.is_claimed(),
        })
    }

    /// createSession for `client`: admission (memory ceiling, the client's cap and rate), a place in the
    /// table (evicting the least recently active session without a connection when it is full), new
    /// internal id, next vended id, `Session::new` (which builds the Lua backend and runs `main.lua`),
    /// on the session runtime, then the session task starts there.
    pub async fn create_session(&self, client: ClientKey) -> Result<SessionHandle, CreateError> {
        let refused = |e: CreateError| {
            crate::metrics::metrics().session_rejected(e.reason());
            e
        };
        let ticket = self.admission.admit(client, self.clock.now_ms()).map_err(refused)?;
        let slot = self.reserve_slot().map_err(refused)?;
        let id = self.generate_session_id();
        let vended = self.next_vended().await;
        let handle = self.build_and_insert(id, vended, ticket, slot, false).await?;
        if let (Some(registry), Some(record)) = (&self.registry, self.record(&handle)) {
            registry.put(record);
        }
        Ok(handle)
    }

    /// Restart survival (docs/deploy/cluster.md): re-creates the sessions the registry kept for this
    /// node, under their old internal and vended ids, before the listener opens. They count against
    /// no client (their creators are not known) but against `--max-sessions`; past it the newest
    /// records are dropped. Returns how many were restored.
    pub async fn restore_sessions(&self, records: Vec<SessionRecord>) -> usize {
        let mut restored = 0;
        for record in records {
            if self.session_exists(&record.id) {
                continue;
            }
            let Ok(slot) = self.reserve_slot() else {
                tracing::warn!(vended = %record.vended, "session cap reached: not restoring the rest");
                break;
            };
            let ticket = self.admission.restored_ticket();
            match self.build_and_insert(record.id, record.vended, ticket, slot, true).await {
                Ok(handle) => {
                    if record.claimed {
                        handle.activity.claim();
                    }
                    crate::metrics::metrics().sessions_restored.inc();
                    restored += 1;
                }
                Err(e) => tracing::warn!(vended = %record.vended, error = %e, "a session could not be restored"),
            }
        }
        // Local vended ids (a registry that was down at creation) must not be handed out twice.
        let max = self.state.lock().vended_to_internal.keys().map(|v| v.0).max().unwrap_or(0);
        self.next_vended_id.fetch_max(max + 1, Ordering::Relaxed);
        restored
    }

    /// Builds a session on the session runtime (new, or restored from the registry) and puts it in
    /// the table.
    async fn build_and_insert(
        &self,
        id: SessionId,
        vended: VendedId,
        ticket: AdmitTicket,
        slot: CreatingSlot<'_>,
        restored: bool,
    ) -> Result<SessionHandle, CreateError> {
        let activity = Arc::new(Activity::new(self.clock));
        let config = self.session_config.clone();
        let build = self.runtime.spawn(async move {
            let session = match restored {
                true => Session::restore(id, vended, config, activity),
                false => Session::new(id, vended, config, activity),
            };
            let site = session.site().clone();
            let (handle, stop) = session.spawn();
            (handle, stop, site)
        });
        let built = match self.watchdog.is_zero() {
            true => build.await.ok(),
            false => tokio::time::timeout(self.watchdog, build).await.ok().and_then(Result::ok),
        };
        let Some((handle, stop, site)) = built else {
            tracing::error!(vended = %vended, "internal error: session could not be built (main.lua failed the host or overran the watchdog)");
            return Err(CreateError::BuildFailed);
        };
        crate::metrics::metrics().sessions_created.inc();
        {
            let mut st = self.state.lock();
            slot.commit(&mut st);
            st.internal_to_vended.insert(id, vended);
            st.vended_to_internal.insert(vended, id);
            st.sessions.insert(id, Entry { handle: handle.clone(), stop, _ticket: ticket });
        }
        // A hot reload that swapped the site while this session was being built did not see it; catch up
        // (its mailbox is empty, so this cannot wait).
        let current = self.session_config.site.current();
        if !Arc::ptr_eq(&site, &current) {
            let _ = handle.try_send(SessionMsg::Reload(current));
        }
        Ok(handle)
    }

    /// Writes back the records of sessions active since the last call (all of them when `all`), as
    /// one batch: activity refreshes the records' TTL without a Redis write per frame.
    pub fn refresh_registry(&self, since_ms: u64, all: bool) {
        let Some(registry) = &self.registry else { return };
        let handles: Vec<SessionHandle> = {
            let st = self.state.lock();
            st.sessions
                .values()
                .filter(|e| all || e.handle.activity.last_active_ms() >= since_ms)
                .map(|e| e.handle.clone())
                .collect()
        };
        for handle in handles {
            if let Some(record) = self.record(&handle) {
                registry.put(record);
            }
        }
    }

    /// The periodic task behind [`SessionManager::refresh_registry`]: every
    /// [`PROBE_PERIOD`](crate::registry::PROBE_PERIOD) the active sessions, and everything once Redis
    /// is back after an outage; sessions idle for a while are rewritten every quarter TTL anyway, so a
    /// record never expires while its session lives.
    pub fn spawn_registry_refresh(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let registry = self.registry.clone()?;
        let weak = Arc::downgrade(self);
        let period = crate::registry::PROBE_PERIOD;
        let full_every = (registry.ttl.as_millis() / 4 / period.as_millis()).max(1) as u64;
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = 0;
            let mut since = 0;
            loop {
                tick.tick().await;
                let Some(manager) = weak.upgrade() else { break };
                n += 1;
                let now = manager.clock.now_ms();
                let all = registry.take_resync() || n.is_multiple_of(full_every);
                manager.refresh_registry(since, all);
                since = now;
            }
        }))
    }

    /// Restart (shutdown with a registry, without `--decommission`): every session's task stops and
    /// its sockets close with 1001 so browsers reconnect to the next process, but the backend hears
    /// no `closed` and the records stay, so the next start with the same `--node-id` restores them.
    /// Their activity is written once more first. Returns how many there were.
    pub fn suspend_all(&self) -> usize {
        self.refresh_registry(0, true);
        let entries: Vec<(SessionId, Entry)> = {
            let mut st = self.state.lock();
            let ids: Vec<SessionId> = st.sessions.keys().copied().collect();
            ids.into_iter().filter_map(|id| Self::remove_locked(&mut st, &id).map(|e| (id, e))).collect()
        };
        let n = entries.len();
        for (_, entry) in entries {
            crate::metrics::metrics().session_destroyed("suspended");
            let _ = entry.stop.send(Stop::for_reason(EndReason::Shutdown));
        }
        tracing::info!(sessions = n, "sessions kept in the registry for the restart");
        n
    }

    /// A place in the table for a session about to be built. When the table is full, the least
    /// recently active session with no open connection is evicted (decided from its `Activity` atomics,
    /// never by asking the session, and only then is the table scanned); when every session has a
    /// connection, `AtCapacity`.
    fn reserve_slot(&self) -> Result<CreatingSlot<'_>, CreateError> {
        let mut st = self.state.lock();
        let mut evicted = None;
        if self.max_sessions != 0 && st.sessions.len() + st.creating >= self.max_sessions {
            let victim = st
                .sessions
                .iter()
                .filter(|(_, e)| e.handle.activity.open_connections() == 0)
                .min_by_key(|(_, e)| e.handle.activity.last_active_ms())
                .map(|(id, _)| *id);
            let Some(victim) = victim else { return Err(CreateError::AtCapacity(self.max_sessions)) };
            evicted = Self::remove_locked(&mut st, &victim).map(|entry| (victim, entry));
        }
        st.creating += 1;
        drop(st);
        if let Some((id, entry)) = evicted {
            self.finish_destroy(&id, entry, EndReason::Evicted);
        }
        Ok(CreatingSlot { manager: self, committed: false })
    }

    /// Hot reload: hands the new site snapshot to every live session (each reruns what changed for it).
    pub async fn reload_all(&self, site: Arc<Site>) {
        let handles: Vec<SessionHandle> = self.state.lock().sessions.values().map(|e| e.handle.clone()).collect();
        for handle in handles {
            let _ = handle.reload(site.clone()).await;
        }
    }

    /// getSession.
    pub fn get_session(&self, id: &SessionId) -> Option<SessionHandle> {
        self.state.lock().sessions.get(id).map(|e| e.handle.clone())
    }

    /// sessionExists.
    pub fn session_exists(&self, id: &SessionId) -> bool {
        self.state.lock().sessions.contains_key(id)
    }

    /// getVendedID.
    pub fn get_vended_id(&self, id: &SessionId) -> Option<VendedId> {
        self.state.lock().internal_to_vended.get(id).copied()
    }

    /// getInternalID.
    pub fn get_internal_id(&self, vended: VendedId) -> Option<SessionId> {
        self.state.lock().vended_to_internal.get(&vended).copied()
    }

    /// Live sessions.
    pub fn count(&self) -> usize {
        self.state.lock().sessions.len()
    }

    /// Vended ids of every live session, ascending.
    pub fn vended_ids(&self) -> Vec<VendedId> {
        let mut ids: Vec<VendedId> = self.state.lock().vended_to_internal.keys().copied().collect();
        ids.sort();
        ids
    }

    /// destroySession: removes the session and its vended id mappings, stops its task
    /// (which closes its sockets with 4404, or 1001 at shutdown) and so frees its Lua state.
    pub fn destroy_session(&self, id: &SessionId, reason: EndReason) -> bool {
        let Some(entry) = Self::remove_locked(&mut self.state.lock(), id) else { return false };
        self.finish_destroy(id, entry, reason);
        true
    }

    /// Takes a session out of the table (its client's place is freed when the entry is dropped).
    fn remove_locked(st: &mut State, id: &SessionId) -> Option<Entry> {
        let entry = st.sessions.remove(id)?;
        if let Some(vended) = st.internal_to_vended.remove(id) {
            st.vended_to_internal.remove(&vended);
        }
        Some(entry)
    }

    /// The rest of a destroy, outside the lock: the log line, the backend's `closed`, the metric, and
    /// the stop signal to the session's task.
    fn finish_destroy(&self, id: &SessionId, entry: Entry, reason: EndReason) {
        let internal = if self.redact_ids { id.redacted() } else { id.to_string() };
        tracing::info!(
            internal = %internal,
            vended = %entry.handle.vended,
            reason = reason.as_str(),
            age_s = entry.handle.activity.age().as_secs(),
            connections = entry.handle.activity.open_connections(),
            "session destroyed"
        );
        if let Some(hub) = &self.session_config.backend {
            hub.session_closed(entry.handle.vended);
        }
        if let Some(registry) = &self.registry {
            registry.forget(*id);
        }
        crate::metrics::metrics().session_destroyed(reason.as_str());
        let stop = Stop::for_reason(reason);
        if matches!(reason, EndReason::Watchdog | EndReason::Failed) {
            // The task may be stuck and never read its stop: the connections close themselves.
            entry.handle.activity.signal_end(stop.signal());
        }
        let _ = entry.stop.send(stop);
    }

    /// Ends every session (shutdown) in ascending vended order, so a backend hears `closed` in that
    /// order; returns how many there were.
    pub fn destroy_all(&self, reason: EndReason) -> usize {
        let mut ids: Vec<(VendedId, SessionId)> =
            self.state.lock().sessions.iter().map(|(id, e)| (e.handle.vended, *id)).collect();
        ids.sort();
        ids.iter().filter(|(_, id)| self.destroy_session(id, reason)).count()
    }

    /// cleanupInactiveSessions: ends sessions idle past their timeout. A session with an open connection
    /// never expires. Returns the ids ended.
    pub fn cleanup_inactive_sessions(&self) -> Vec<SessionId> {
        let expired: Vec<(SessionId, EndReason)> = {
            let st = self.state.lock();
            st.sessions
                .iter()
                .filter_map(|(id, e)| {
                    e.handle.activity.expired(self.timeouts.session, self.timeouts.unclaimed).map(|r| (*id, r))
                })
                .collect()
        };
        expired.into_iter().filter(|(id, reason)| self.destroy_session(id, *reason)).map(|(id, _)| id).collect()
    }

    /// The watchdog's check: ends sessions whose current item has run past `--lua-watchdog` (stuck in
    /// something no budget reaches) and sessions whose task failed. Decided from atomics alone, like
    /// expiry. Returns the ids ended.
    pub fn end_stuck_and_failed_sessions(&self) -> Vec<SessionId> {
        let ended: Vec<(SessionId, EndReason)> = {
            let st = self.state.lock();
            st.sessions
                .iter()
                .filter_map(|(id, e)| {
                    let a = &e.handle.activity;
                    if a.failed() || e.handle.is_closed() {
                        Some((*id, EndReason::Failed))
                    } else if !self.watchdog.is_zero() && a.busy_for().is_some_and(|t| t >= self.watchdog) {
                        Some((*id, EndReason::Watchdog))
                    } else {
                        None
                    }
                })
                .collect()
        };
        for (id, reason) in &ended {
            if *reason == EndReason::Watchdog {
                crate::metrics::metrics().lua_watchdog.inc();
                tracing::warn!(
                    watchdog_s = self.watchdog.as_secs_f64(),
                    "session event overran the watchdog; ending the session"
                );
            }
            self.destroy_session(id, *reason);
        }
        ended.into_iter().map(|(id, _)| id).collect()
    }

    /// The periodic task that runs [`SessionManager::end_stuck_and_failed_sessions`], four times per
    /// watchdog period (at least every second, so failed sessions go quickly).
    pub fn spawn_watchdog(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let period = (self.watchdog / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        self.spawn_periodic(period, |m| {
            m.end_stuck_and_failed_sessions();
        })
    }

    /// The periodic task that runs [`SessionManager::cleanup_inactive_sessions`].
    pub fn spawn_sweeper(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let period = self.timeouts.sweep_period()?;
        Some(self.spawn_periodic(period, |m| {
            m.cleanup_inactive_sessions();
        }))
    }

    /// Runs `f` every `period` (a late tick is not made up) until the manager is dropped.
    fn spawn_periodic(self: &Arc<Self>, period: Duration, f: fn(&SessionManager)) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(manager) = weak.upgrade() else { break };
                f(&manager);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::LuaConfig;
    use crate::site::Site;

    fn manager(timeouts: Timeouts, max: usize) -> SessionManager {
        SessionManager::new(Arc::new(SessionConfig::default()), timeouts, max)
    }

    fn client() -> ClientKey {
        ClientKey::from_ip([192, 0, 2, 1].into())
    }

    #[tokio::test]
    async fn create_get_exists_and_id_maps() {
        let m = manager(Timeouts::default(), 0);
        let a = m.create_session(client()).await.unwrap();
        let b = m.create_session(client()).await.unwrap();
        assert_eq!((a.vended, b.vended), (VendedId(1), VendedId(2)));
        assert!(m.session_exists(&a.id));
        assert_eq!(m.get_session(&b.id).unwrap().vended, VendedId(2));
        assert_eq!(m.get_vended_id(&a.id), Some(VendedId(1)));
        assert_eq!(m.get_internal_id(VendedId(2)), Some(b.id));
        assert_eq!(m.get_internal_id(VendedId(3)), None);
        assert_eq!(m.vended_ids(), vec![VendedId(1), VendedId(2)]);
        assert_eq!(m.count(), 2);
        assert_ne!(m.generate_session_id(), m.generate_session_id());
    }

    /// `--node-id`: every internal id starts with the node's byte (the load balancer routes by it).
    #[tokio::test]
    async fn a_node_id_prefixes_every_session_id() {
        let node: NodeId = "c3".parse().unwrap();
        let m = manager(Timeouts::default(), 0).with_node(Some(node));
        for _ in 0..5 {
            let s = m.create_session(client()).await.unwrap();
            assert!(s.id.to_string().starts_with("c3"), "{}", s.id);
            assert_eq!(s.id.node(), node);
        }
        assert!(m.generate_session_id().to_string().starts_with("c3"));
    }

    /// A restart without a registry record store is covered in tests/cluster.rs; here: restored
    /// sessions keep their ids, count against no client, and new local vended ids stay above them.
    #[tokio::test]
    async fn restored_sessions_keep_their_ids_and_vended_ids_continue_above_them() {
        let node = NodeId(7);
        let m = manager(Timeouts::default(), 0).with_node(Some(node));
        let id = SessionId::generate_on(Some(node));
        let record = SessionRecord { id, vended: VendedId(40), node, last_active_ms: 0, epoch: None, claimed: true };
        assert_eq!(m.restore_sessions(vec![record.clone(), record]).await, 1);
        let restored = m.get_session(&id).unwrap();
        assert_eq!(restored.vended, VendedId(40));
        assert!(restored.activity.is_claimed());
        assert_eq!(m.get_internal_id(VendedId(40)), Some(id));
        assert_eq!(m.admission().live(client()), 0);
        assert_eq!(m.create_session(client()).await.unwrap().vended, VendedId(41));
    }

    #[tokio::test]
    async fn vended_ids_are_never_reused_even_after_destroying_everything() {
        let m = manager(Timeouts::default(), 0);
        let a = m.create_session(client()).await.unwrap();
        let b = m.create_session(client()).await.unwrap();
        assert_eq!(m.destroy_all(EndReason::Destroyed), 2);
        assert_eq!(m.count(), 0);
        assert!(!m.session_exists(&a.id));
        assert_eq!(m.get_vended_id(&b.id), None);
        assert_eq!(m.get_internal_id(VendedId(1)), None);
        let c = m.create_session(client()).await.unwrap();
        assert_eq!(c.vended, VendedId(3));
    }

    #[tokio::test]
    async fn destroy_stops_the_task_and_is_idempotent() {
        let m = manager(Timeouts::default(), 0);
        let a = m.create_session(client()).await.unwrap();
        assert!(m.destroy_session(&a.id, EndReason::Destroyed));
        assert!(!m.destroy_session(&a.id, EndReason::Destroyed));
        // The task ends and drops its mailbox.
        for _ in 0..100 {
            if a.is_closed() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(a.is_closed());
    }

    #[tokio::test]
    async fn session_cap() {
        let m = manager(Timeouts::default(), 2);
        let a = m.create_session(client()).await.unwrap();
        let b = m.create_session(client()).await.unwrap();
        // Sessions with an open connection are never evicted: a full table of them refuses.
        a.activity.connection_opened();
        b.activity.connection_opened();
        assert_eq!(m.create_session(client()).await.unwrap_err(), CreateError::AtCapacity(2));
        m.destroy_session(&b.id, EndReason::Destroyed);
        assert!(m.create_session(client()).await.is_ok());
    }

    /// A full table evicts the least recently active session without a connection (H6).
    #[tokio::test(start_paused = true)]
    async fn a_full_table_evicts_the_least_recently_active_unconnected_session() {
        let m = manager(Timeouts::default(), 3);
        let connected = m.create_session(client()).await.unwrap();
        connected.activity.connection_opened();
        tokio::time::advance(Duration::from_secs(1)).await;
        let older = m.create_session(client()).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let newer = m.create_session(client()).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        // `older` was active last, so `newer` is now the least recently active.
        older.activity.touch();
        let fourth = m.create_session(client()).await.unwrap();
        assert!(!m.session_exists(&newer.id), "evicted");
        assert!(m.session_exists(&older.id) && m.session_exists(&connected.id) && m.session_exists(&fourth.id));
        assert_eq!(m.count(), 3);
        assert_eq!(m.admission().live(client()), 3, "the evicted session's place was given back");
        // The evicted session's task ends. Its teardown waits on the Lua worker, a real
        // thread, so wait in real time: with the clock paused, tokio's sleeps alone
        // pass instantly and could give up before the worker has run.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !newer.is_closed() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(newer.is_closed());
        older.activity.connection_opened();
        fourth.activity.connection_opened();
        assert_eq!(m.create_session(client()).await.unwrap_err(), CreateError::AtCapacity(3));
    }

    /// Per-client limits reach the manager, and a destroyed session frees its client's place.
    #[tokio::test]
    async fn admission_limits_apply_per_client() {
        let admission = Admission::new(AdmissionConfig { max_per_client: 1, rate: None, max_memory: 0 });
        let m = manager(Timeouts::default(), 0).with_admission(admission);
        let a = m.create_session(client()).await.unwrap();
        assert_eq!(m.create_session(client()).await.unwrap_err(), CreateError::ClientCap(1));
        let other = ClientKey::from_ip([192, 0, 2, 2].into());
        assert!(m.create_session(other).await.is_ok());
        m.destroy_session(&a.id, EndReason::Destroyed);
        assert!(m.create_session(client()).await.is_ok());
    }

    /// Security review M1: a panic while a session is being built gives its place in the cap back.
    #[test]
    fn a_panicking_creation_does_not_leak_its_slot() {
        let m = manager(Timeouts::default(), 1);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _slot = m.reserve_slot().unwrap();
            panic!("main.lua took the gateway down");
        }));
        assert!(caught.is_err());
        assert_eq!(m.state.lock().creating, 0);
        let slot = m.reserve_slot().unwrap();
        assert_eq!(m.state.lock().creating, 1);
        drop(slot);
        assert_eq!(m.state.lock().creating, 0);
    }

    #[test]
    fn create_errors_know_their_answer() {
        assert_eq!(CreateError::AtCapacity(1).status(), 503);
        assert_eq!(CreateError::MemoryHigh { rss: 2, limit: 1 }.status(), 503);
        assert_eq!(CreateError::ClientCap(1).status(), 429);
        let rate = CreateError::RateLimited { retry_after: Duration::from_millis(1200) };
        assert_eq!((rate.status(), rate.retry_after_secs(), rate.reason()), (429, 2, "rate"));
        let soon = CreateError::RateLimited { retry_after: Duration::from_millis(1) };
        assert_eq!(soon.retry_after_secs(), 1);
        assert_eq!(CreateError::AtCapacity(1).retry_after_secs(), 30);
    }

    #[tokio::test(start_paused = true)]
    async fn cleanup_expires_idle_and_unclaimed_sessions_but_never_connected_ones() {
        let timeouts = Timeouts { session: Duration::from_secs(3600), unclaimed: Duration::from_secs(60) };
        let m = manager(timeouts, 0);
        let unclaimed = m.create_session(client()).await.unwrap();
        let connected = m.create_session(client()).await.unwrap();
        let idle = m.create_session(client()).await.unwrap();
        connected.activity.connection_opened();
        idle.activity.connection_opened();
        idle.activity.claim();
        idle.activity.connection_closed();
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(m.cleanup_inactive_sessions().is_empty());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(m.cleanup_inactive_sessions(), vec![unclaimed.id]);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(m.cleanup_inactive_sessions(), vec![idle.id]);
        tokio::time::advance(Duration::from_secs(100 * 3600)).await;
        assert!(m.cleanup_inactive_sessions().is_empty());
        assert!(m.session_exists(&connected.id));
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweeper_runs_periodically() {
        let timeouts = Timeouts { session: Duration::from_secs(10), unclaimed: Duration::ZERO };
        assert_eq!(timeouts.sweep_period(), Some(Duration::from_secs(1)));
        let m = Arc::new(manager(timeouts, 0));
        let a = m.create_session(client()).await.unwrap();
        let task = m.spawn_sweeper().unwrap();
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert!(!m.session_exists(&a.id));
        task.abort();
    }

    #[test]
    fn zero_timeouts_never_sweep() {
        assert_eq!(Timeouts { session: Duration::ZERO, unclaimed: Duration::ZERO }.sweep_period(), None);
        let t = Timeouts::default();
        assert_eq!(t.sweep_period(), Some(Duration::from_secs(30)));
    }

    /// Embedded and hybrid restart survival: `main.lua` reruns and can tell a restored session by
    /// `session.restored`; a new session does not have it.
    #[tokio::test]
    async fn restored_sessions_rerun_main_lua_with_session_restored() {
        let site = Site {
            root: None,
            main_lua: Some("seen = session.restored == true session:createAppVariable({})".into()),
            lua_sources: Default::default(),
            viewdefs: Default::default(),
            problems: Vec::new(),
        };
        let config = Arc::new(SessionConfig {
            site: Arc::new(site.into()),
            lua: Some(LuaConfig::default()),
            ..Default::default()
        });
        let activity = || Arc::new(Activity::new(Clock::new()));
        let fresh = Session::new(SessionId::generate(), VendedId(1), config.clone(), activity());
        let restored = Session::restore(SessionId::generate(), VendedId(2), config, activity());
        assert!(!fresh.lua().unwrap().eval::<bool>("return seen").unwrap());
        assert!(restored.lua().unwrap().eval::<bool>("return seen").unwrap());
        assert!(restored.lua().unwrap().eval::<bool>("return session:getApp() ~= nil").unwrap());
    }

    #[tokio::test]
    async fn each_session_has_its_own_lua_state() {
        let site = Site {
            root: None,
            main_lua: Some("counter = (counter or 0) + 1 session:createAppVariable({n = counter})".into()),
            lua_sources: Default::default(),
            viewdefs: Default::default(),
            problems: Vec::new(),
        };
        let config =
            SessionConfig { site: Arc::new(site.into()), lua: Some(LuaConfig::default()), ..Default::default() };
        let id = SessionId::generate();
        let a = Session::new(id, VendedId(1), Arc::new(config), Arc::new(Activity::new(Clock::new())));
        let config = a.config.clone();
        let b = Session::new(SessionId::generate(), VendedId(2), config, Arc::new(Activity::new(Clock::new())));
        for s in [&a, &b] {
            assert_eq!(s.lua().unwrap().eval::<i64>("return counter").unwrap(), 1);
            assert_eq!(s.lua().unwrap().eval::<String>("return session._sessionID").unwrap(), s.vended.to_string());
        }
    }
}
