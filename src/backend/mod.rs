//! The `/backend` link (PROTOCOL.md Part B): a pool of external backend workers, each connected over a
//! WebSocket, serving the sessions' remote variables in connected and hybrid modes.
//!
//! [`BackendHub`] is the shared switchboard: the epoch, the connected workers (by connection
//! generation) with their send queues, and the [`pool::Pool`] that pins each session to one worker.
//! Sessions send through it by generation; the socket task in [`socket`] owns one worker connection,
//! routes its inbound batches to session mailboxes, walks the sessions it starts with in ascending order
//! so each sends its replay batch (PROTOCOL.md B10) before the next, and hands its sessions over when it
//! goes (PROTOCOL.md B14).
//!
//! `auth` decides who may connect (PROTOCOL.md B2).

pub mod auth;
pub mod pool;
pub mod socket;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::ids::VendedId;
use crate::protocol::backend::{encode_closed, encode_welcome, BackendLimits};
use pool::{Handover, Pool, Route};

/// Frames waiting for the backend's writer; past this the backend reads too slowly (close 1013).
pub const SEND_QUEUE: usize = 4096;

/// What the writer task of the backend socket is told to do.
#[derive(Debug)]
pub enum Outgoing {
    /// A frame of the socket task itself (welcome, frame errors, `closed`): small, not counted.
    Frame(String),
    /// A frame queued through [`BackendHub::send`]: its bytes are in the connection's queued count
    /// until the writer has sent it.
    Counted(String),
    Close(u16, &'static str),
}

/// Byte bounds of the backend link (review H5): the gateway→backend send queue, and each session's
/// outage buffer (which the session keeps; the bound lives here with the message bound's siblings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteLimits {
    /// `--backend-queue-bytes`: past it the backend reads too slowly (close 1013).
    pub queue_bytes: usize,
    /// `--backend-buffer-bytes`: per session during an outage; the oldest messages go first.
    pub buffer_bytes: usize,
    /// `--backend-overflow`: inbound batches parked for a session whose mailbox is full (review M2).
    pub overflow_batches: usize,
    /// `--backend-overflow-bytes`: the same, in frame bytes.
    pub overflow_bytes: usize,
    /// `--max-properties` and `--max-property-bytes` for what browsers set on remote variables (the
    /// mirror lives outside the tracker; connected mode has no tracker at all).
    pub mirror: crate::tracker::TrackerLimits,
}

impl Default for ByteLimits {
    fn default() -> Self {
        ByteLimits {
            queue_bytes: 64 << 20,
            buffer_bytes: 16 << 20,
            overflow_batches: 256,
            overflow_bytes: 4 << 20,
            mirror: crate::tracker::TrackerLimits::default(),
        }
    }
}

/// How many workers may connect and how long a named worker's sessions wait for its return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    /// `--max-backends`: past it a connecting worker is closed with 4409 ("pool full").
    pub max_workers: usize,
    /// `--backend-grace`: how long a named worker that dropped (without draining) keeps its sessions.
    pub grace: Duration,
}

impl Default for PoolLimits {
    fn default() -> Self {
        PoolLimits { max_workers: 16, grace: Duration::from_secs(2) }
    }
}

/// One connected worker's send side.
#[derive(Debug, Clone)]
struct Slot {
    tx: mpsc::Sender<Outgoing>,
    /// Bytes of `Counted` frames not yet sent by the writer.
    queued: Arc<AtomicUsize>,
}

/// Whether the frame reached the backend's queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// No such worker (any more).
    NotConnected,
}

/// Who a connecting worker says it is (from its upgrade URL).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerInfo {
    pub name: Option<String>,
    pub capacity: u32,
}

/// A worker admitted to the pool.
#[derive(Debug)]
pub struct Claimed {
    pub generation: u64,
    /// Sessions it starts with (its own from before, and every waiting one), ascending: each is sent
    /// `BackendUp` in this order so it queues its replay batch.
    pub sessions: Vec<VendedId>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    slots: HashMap<u64, Slot>,
}

/// The gateway's side of the backend link, shared by the socket tasks and every session: the epoch,
/// the pool of connected workers and which worker serves which session.
#[derive(Debug)]
pub struct BackendHub {
    /// 32 lowercase hex digits, drawn at startup.
    pub epoch: String,
    pub mode: &'static str,
    pub token: Option<String>,
    pub limits: BackendLimits,
    pub bytes: ByteLimits,
    pub pool_limits: PoolLimits,
    inner: Mutex<Inner>,
    next_generation: AtomicU64,
}

impl BackendHub {
    pub fn new(
        mode: &'static str,
        token: Option<String>,
        limits: BackendLimits,
        bytes: ByteLimits,
        pool_limits: PoolLimits,
    ) -> Self {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).expect("the OS random source works");
        let epoch = random.iter().map(|b| format!("{b:02x}")).collect();
        let inner = Inner { pool: Pool::new(pool_limits.max_workers, pool_limits.grace), slots: HashMap::new() };
        BackendHub {
            epoch,
            mode,
            token,
            limits,
            bytes,
            pool_limits,
            inner: Mutex::new(inner),
            next_generation: AtomicU64::new(1),
        }
    }

    /// With an epoch from outside: a node restarted with the registry keeps its epoch, so backends
    /// keep the state of the sessions it restores (docs/deploy/cluster.md).
    pub fn with_epoch(mut self, epoch: String) -> Self {
        self.epoch = epoch;
        self
    }

    /// Whether any worker is connected.
    pub fn is_connected(&self) -> bool {
        !self.inner.lock().slots.is_empty()
    }

    /// Connected workers.
    pub fn worker_count(&self) -> usize {
        self.inner.lock().slots.len()
    }

    /// Whether connection `generation` is still in the pool.
    pub fn is_live(&self, generation: u64) -> bool {
        self.inner.lock().slots.contains_key(&generation)
    }

    /// Admits a worker unless the pool is full (`None`: close it with 4409). Its welcome is queued on
    /// `tx` before the worker is published, so nothing can overtake it: it lists every live session
    /// (`live`) when the worker is the only one, else the sessions it starts with.
    pub(crate) fn claim(
        &self,
        info: WorkerInfo,
        tx: mpsc::Sender<Outgoing>,
        queued: Arc<AtomicUsize>,
        live: impl FnOnce() -> Vec<VendedId>,
    ) -> Option<Claimed> {
        let mut inner = self.inner.lock();
        if inner.pool.is_full() {
            return None;
        }
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let alone = inner.slots.is_empty();
        let sessions = inner.pool.join(generation, info.name, info.capacity);
        let mut listed = if alone { live() } else { sessions.clone() };
        listed.sort();
        let welcome = encode_welcome(&self.epoch, self.mode, &listed, &self.limits);
        let _ = tx.try_send(Outgoing::Frame(welcome));
        inner.slots.insert(generation, Slot { tx, queued });
        self.report(&inner);
        Some(Claimed { generation, sessions })
    }

    /// Removes worker `generation` from the pool; says where its sessions go (and, for a named worker,
    /// how long they wait for it).
    pub(crate) fn release(&self, generation: u64) -> (Handover, Option<(String, Duration)>) {
        let mut inner = self.inner.lock();
        if inner.slots.remove(&generation).is_none() {
            return (Handover::default(), None);
        }
        if let Some(w) = inner.pool.worker(generation) {
            crate::metrics::metrics().backend_worker_sessions(&w.label(), None);
        }
        let out = inner.pool.leave(generation);
        self.report(&inner);
        out
    }

    /// A named worker's grace is over: its sessions that it did not reclaim move.
    pub(crate) fn expire(&self, name: &str, from: u64) -> Handover {
        let mut inner = self.inner.lock();
        let handover = inner.pool.expire(name, from);
        self.report(&inner);
        handover
    }

    /// The worker for a session that needs one now (pinning it), or `None`: it waits for one.
    pub fn assign(&self, vended: VendedId) -> Option<u64> {
        let mut inner = self.inner.lock();
        let g = inner.pool.assign(vended);
        self.report(&inner);
        g
    }

    /// May worker `generation` send a batch for `vended`? (Pins an unserved session to it.)
    pub(crate) fn route(&self, vended: VendedId, generation: u64) -> Route {
        self.inner.lock().pool.route(vended, generation)
    }

    /// The worker says it is draining: no new sessions for it. Returns false if it already was.
    pub(crate) fn drain(&self, generation: u64) -> bool {
        let mut inner = self.inner.lock();
        let changed = inner.pool.set_draining(generation);
        self.report(&inner);
        changed
    }

    pub(crate) fn set_capacity(&self, generation: u64, capacity: u32) {
        self.inner.lock().pool.set_capacity(generation, capacity);
    }

    /// The label of worker `generation` for logs (`name` or `#generation`).
    pub fn worker_label(&self, generation: u64) -> String {
        self.inner.lock().pool.worker(generation).map_or_else(|| format!("#{generation}"), |w| w.label())
    }

    /// Publishes the pool's figures (workers, draining, sessions per worker).
    fn report(&self, inner: &Inner) {
        let m = crate::metrics::metrics();
        let workers = inner.pool.workers();
        m.backend_connected.set(i64::from(!workers.is_empty()));
        m.backend_workers.set(workers.len() as i64);
        m.backend_draining.set(workers.iter().filter(|w| w.draining).count() as i64);
        m.backend_pinned.set(workers.iter().map(|w| w.sessions as i64).sum());
        for w in workers {
            m.backend_worker_sessions(&w.label(), Some(w.sessions));
        }
    }

    /// Sessions per worker label, for `/healthz`.
    pub fn load(&self) -> Vec<(String, usize, bool)> {
        self.inner.lock().pool.workers().iter().map(|w| (w.label(), w.sessions, w.draining)).collect()
    }

    /// Queues a frame for worker `generation`. A full queue (`SEND_QUEUE` frames, or more than
    /// `--backend-queue-bytes` unsent) means the worker reads too slowly: it is closed with 1013 (its
    /// socket task then hands its sessions over) and the frame counts as not sent.
    pub fn send(&self, generation: u64, text: String) -> Sent {
        let Some(slot) = self.inner.lock().slots.get(&generation).cloned() else {
            return Sent::NotConnected;
        };
        let len = text.len();
        let before = slot.queued.fetch_add(len, Ordering::AcqRel);
        let result = if before + len > self.bytes.queue_bytes {
            crate::metrics::metrics().limit_hit(crate::metrics::Limit::BackendQueueBytes);
            Err(mpsc::error::TrySendError::Full(Outgoing::Counted(text)))
        } else {
            slot.tx.try_send(Outgoing::Counted(text))
        };
        if result.is_err() {
            slot.queued.fetch_sub(len, Ordering::AcqRel);
        }
        match result {
            Ok(()) => Sent::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(worker = %self.worker_label(generation), "backend reads too slowly; closing it with 1013");
                // The writer is behind; the close goes after what is queued, so force it through a task.
                let tx = slot.tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(Outgoing::Close(crate::protocol::close::SLOW_READER, "slow reader")).await;
                });
                Sent::NotConnected
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Sent::NotConnected,
        }
    }

    /// Closes every worker connection (shutdown: 1001, after every `closed` event already queued).
    pub fn close(&self, code: u16, reason: &'static str) {
        let slots: Vec<Slot> = self.inner.lock().slots.values().cloned().collect();
        for slot in slots {
            tokio::spawn(async move {
                let _ = slot.tx.send(Outgoing::Close(code, reason)).await;
            });
        }
    }

    /// Tells the backend a session is gone (`closed` event): its worker, or every worker when no worker
    /// served it yet (any of them may have listed it in a welcome). Not buffered.
    pub fn session_closed(&self, session: VendedId) {
        let targets: Vec<u64> = {
            let mut inner = self.inner.lock();
            let pinned = inner.pool.forget(session);
            self.report(&inner);
            match pinned {
                Some(g) => vec![g],
                None => inner.slots.keys().copied().collect(),
            }
        };
        for g in targets {
            let _ = self.send(g, encode_closed(session));
        }
    }
}
