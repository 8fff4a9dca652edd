//! The `/backend` link (PROTOCOL.md Part B): at most one external backend program per gateway process,
//! connected over a WebSocket, serving the sessions' remote variables in connected and hybrid modes.
//!
//! [`BackendHub`] is the shared switchboard: it knows the epoch, whether a backend is connected (and
//! which connection, by generation), and queues frames to it. Sessions talk to it directly; the socket
//! task in [`socket`] owns the connection, routes inbound batches to session mailboxes and, on connect,
//! walks the live sessions in ascending order so each sends its replay batch (PROTOCOL.md B10) before the next.
//!
//! `auth` decides who may connect (PROTOCOL.md B2).

pub mod auth;
pub mod socket;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::ids::VendedId;
use crate::protocol::backend::{encode_closed, BackendLimits};

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

/// The connected backend, as sessions see it.
#[derive(Debug, Clone)]
struct Slot {
    generation: u64,
    tx: mpsc::Sender<Outgoing>,
    /// Bytes of `Counted` frames not yet sent by the writer.
    queued: Arc<AtomicUsize>,
}

/// Whether the frame reached the backend's queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    Queued,
    /// No backend, or a different connection than the caller knew.
    NotConnected,
}

/// The gateway's side of the backend link, shared by the socket task and every session.
#[derive(Debug)]
pub struct BackendHub {
    /// 32 lowercase hex digits, drawn at startup.
    pub epoch: String,
    pub mode: &'static str,
    pub token: Option<String>,
    pub limits: BackendLimits,
    pub bytes: ByteLimits,
    current: Mutex<Option<Slot>>,
    next_generation: AtomicU64,
}

impl BackendHub {
    pub fn new(mode: &'static str, token: Option<String>, limits: BackendLimits, bytes: ByteLimits) -> Self {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).expect("the OS random source works");
        let epoch = random.iter().map(|b| format!("{b:02x}")).collect();
        BackendHub { epoch, mode, token, limits, bytes, current: Mutex::new(None), next_generation: AtomicU64::new(1) }
    }

    /// With an epoch from outside: a node restarted with the registry keeps its epoch, so backends
    /// keep the state of the sessions it restores (docs/deploy/cluster.md).
    pub fn with_epoch(mut self, epoch: String) -> Self {
        self.epoch = epoch;
        self
    }

    /// The generation of the connected backend, if one is connected.
    pub fn generation(&self) -> Option<u64> {
        self.current.lock().as_ref().map(|s| s.generation)
    }

    pub fn is_connected(&self) -> bool {
        self.current.lock().is_some()
    }

    /// Claims the link for a new connection; `None` if another backend holds it (4409). `queued` is the
    /// connection's count of unsent `Counted` bytes, which its writer decrements.
    pub(crate) fn claim(&self, tx: mpsc::Sender<Outgoing>, queued: Arc<AtomicUsize>) -> Option<u64> {
        let mut cur = self.current.lock();
        if cur.is_some() {
            return None;
        }
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        *cur = Some(Slot { generation, tx, queued });
        crate::metrics::metrics().backend_connected.set(1);
        Some(generation)
    }

    /// Releases the link if `generation` still holds it.
    pub(crate) fn release(&self, generation: u64) {
        let mut cur = self.current.lock();
        if cur.as_ref().is_some_and(|s| s.generation == generation) {
            *cur = None;
            crate::metrics::metrics().backend_connected.set(0);
        }
    }

    /// Queues a frame for connection `generation`. A full queue (`SEND_QUEUE` frames, or more than
    /// `--backend-queue-bytes` unsent) means the backend reads too slowly: the connection is closed with
    /// 1013 and the frame counts as not sent.
    pub fn send(&self, generation: u64, text: String) -> Sent {
        let (tx, queued) = match &*self.current.lock() {
            Some(slot) if slot.generation == generation => (slot.tx.clone(), slot.queued.clone()),
            _ => return Sent::NotConnected,
        };
        let len = text.len();
        let before = queued.fetch_add(len, Ordering::AcqRel);
        let result = if before + len > self.bytes.queue_bytes {
            crate::metrics::metrics().limit_hit(crate::metrics::Limit::BackendQueueBytes);
            Err(mpsc::error::TrySendError::Full(Outgoing::Counted(text)))
        } else {
            tx.try_send(Outgoing::Counted(text))
        };
        if result.is_err() {
            queued.fetch_sub(len, Ordering::AcqRel);
        }
        match result {
            Ok(()) => Sent::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!("backend reads too slowly; closing it with 1013");
                // The writer is behind; the close goes after what is queued, so force it through a task.
                tokio::spawn(async move {
                    let _ = tx.send(Outgoing::Close(crate::protocol::close::SLOW_READER, "slow reader")).await;
                });
                self.release(generation);
                Sent::NotConnected
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Sent::NotConnected,
        }
    }

    /// Closes the backend connection (shutdown: 1001, after every `closed` event already queued).
    pub fn close(&self, code: u16, reason: &'static str) {
        let slot = self.current.lock().take();
        if let Some(slot) = slot {
            tokio::spawn(async move {
                let _ = slot.tx.send(Outgoing::Close(code, reason)).await;
            });
        }
    }

    /// Tells the backend a session is gone (`closed` event), if one is connected. Not buffered.
    pub fn session_closed(&self, session: VendedId) {
        if let Some(generation) = self.generation() {
            let _ = self.send(generation, encode_closed(session));
        }
    }
}
