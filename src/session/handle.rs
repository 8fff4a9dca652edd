//! How the rest of the gateway reaches a session: the [`SessionHandle`] (cheap to clone) and the
//! messages its bounded mailbox accepts, in arrival order. Also [`Stop`], how the task is told to end.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::clock::{Activity, EndReason, EndSignal};
use super::sink::ConnSink;
use crate::ids::{ConnId, SessionId, VendedId};
use crate::protocol::backend::BackendBatch;
use crate::protocol::{close, ClientFrame, FrameError};
use crate::site::Site;

/// Messages a session's mailbox accepts.
#[derive(Debug)]
pub enum SessionMsg {
    /// A browser connection opened; the reply says whether it was accepted (connection limit).
    Connect { conn: ConnId, sink: ConnSink, reply: oneshot::Sender<bool> },
    /// An inbound browser frame, already parsed off the session task.
    Frame { conn: ConnId, frame: Result<ClientFrame, FrameError> },
    /// A browser connection closed, for any reason.
    Disconnect { conn: ConnId },
    /// A batch from backend connection `generation`.
    Backend { generation: u64, batch: BackendBatch },
    /// Backend connection `generation` is up: send the replay batch, then reply.
    BackendUp { generation: u64, done: oneshot::Sender<()> },
    /// Backend worker connection `generation` is gone; `quiet`: another worker takes the session (now
    /// or after the worker's grace), so browsers are not told.
    BackendDown { generation: u64, quiet: bool },
    /// The session was kept quietly for a worker that did not come back, and no other worker took it:
    /// browsers are told now.
    BackendLost,
    /// The debug view: every variable and the session's change count.
    Inspect { reply: oneshot::Sender<(Vec<serde_json::Value>, u64)> },
    /// `--watch` found changed site files: the new snapshot.
    Reload(Arc<Site>),
}

/// How connections and the manager reach a session. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    pub id: SessionId,
    pub vended: VendedId,
    pub activity: Arc<Activity>,
    tx: mpsc::Sender<SessionMsg>,
}

impl SessionHandle {
    /// A handle on the task reading `tx`'s mailbox.
    pub(super) fn new(id: SessionId, vended: VendedId, activity: Arc<Activity>, tx: mpsc::Sender<SessionMsg>) -> Self {
        SessionHandle { id, vended, activity, tx }
    }
}

/// The session is gone (its task ended).
#[derive(Debug, thiserror::Error)]
#[error("session ended")]
pub struct SessionGone;

/// Why [`SessionHandle::try_backend_batch`] did not deliver.
#[derive(Debug)]
pub enum BatchRefused {
    /// The mailbox is full: the batch, back.
    Full(BackendBatch),
    Gone,
}

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

    /// Hands over a backend batch. Waits while the mailbox is full (back-pressure on the backend).
    pub async fn backend_batch(&self, generation: u64, batch: BackendBatch) -> Result<(), SessionGone> {
        self.tx.send(SessionMsg::Backend { generation, batch }).await.map_err(|_| SessionGone)
    }

    /// Hands over a backend batch without waiting: a full mailbox gives the batch back, so the backend
    /// reader can park it instead of stalling every other session (review M2).
    pub fn try_backend_batch(&self, generation: u64, batch: BackendBatch) -> Result<(), BatchRefused> {
        self.tx.try_send(SessionMsg::Backend { generation, batch }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(SessionMsg::Backend { batch, .. }) => BatchRefused::Full(batch),
            _ => BatchRefused::Gone,
        })
    }

    /// Tells the session backend connection `generation` is up; returns once its replay batch is queued.
    pub async fn backend_up(&self, generation: u64) -> Result<(), SessionGone> {
        let (done, rx) = oneshot::channel();
        self.tx.send(SessionMsg::BackendUp { generation, done }).await.map_err(|_| SessionGone)?;
        rx.await.map_err(|_| SessionGone)
    }

    pub async fn backend_down(&self, generation: u64, quiet: bool) {
        let _ = self.tx.send(SessionMsg::BackendDown { generation, quiet }).await;
    }

    pub async fn backend_lost(&self) {
        let _ = self.tx.send(SessionMsg::BackendLost).await;
    }

    /// The session's variables for the debug pages (`None` if the session ended).
    pub async fn inspect(&self) -> Option<(Vec<serde_json::Value>, u64)> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(SessionMsg::Inspect { reply }).await.ok()?;
        rx.await.ok()
    }

    /// Hands over a reloaded site (waits while the mailbox is full).
    pub async fn reload(&self, site: Arc<Site>) -> Result<(), SessionGone> {
        self.tx.send(SessionMsg::Reload(site)).await.map_err(|_| SessionGone)
    }

    /// Delivers a message only if the mailbox has room now (for a session just built, whose mailbox
    /// is empty). Returns whether it was delivered.
    pub(super) fn try_send(&self, msg: SessionMsg) -> bool {
        self.tx.try_send(msg).is_ok()
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
            EndReason::Watchdog | EndReason::Failed => Stop::FAILED,
            _ => Stop { code: close::UNKNOWN_SESSION, reason: "session-ended" },
        }
    }

    /// The session failed (a panic, or an event that overran the watchdog): 1011.
    pub const FAILED: Stop = Stop { code: close::INTERNAL, reason: "session-failed" };

    pub fn signal(self) -> EndSignal {
        EndSignal { code: self.code, reason: self.reason }
    }
}
