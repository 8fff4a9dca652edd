//! One `/backend` worker connection (PROTOCOL.md B2, B3, B4, B10, B14): checks in the protocol's order,
//! admission to the pool and the welcome, the replay walk over the sessions it starts with, routing of
//! its inbound batches to session mailboxes (only for sessions pinned to it), `hello` and `drain`,
//! keepalive, and the hand-over of its sessions when it goes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{rejection::WebSocketUpgradeRejection, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, Response, StatusCode};
use axum::response::IntoResponse;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

use super::pool::{Handover, Route};
use super::{auth, BackendHub, Claimed, Outgoing, WorkerInfo, SEND_QUEUE};
use crate::ids::VendedId;
use crate::protocol::backend::{encode_batch, BackendBatch, BackendFrame};
use crate::protocol::backend::{encode_closed, encode_frame_error, parse_worker_frame};
use crate::protocol::close;
use crate::protocol::message::{ErrorReport, Message as ProtocolMessage};
use crate::protocol::ErrorCode;
use crate::session::{BatchRefused, SessionHandle};
use crate::state::Gateway;
use crate::websocket::{self, close_now, CloseReason, Inbound};

/// JSON nesting accepted in backend frames (values nest at most 32 deep inside a few envelope levels).
const MAX_DEPTH: usize = 128;

/// Longest worker name accepted in `?worker=`.
const MAX_WORKER_NAME: usize = 64;

/// Reads `?worker=NAME&capacity=N` (both optional). Names are short and plain (letters, digits, `.`,
/// `_`, `-`): they appear in logs and metric labels.
fn worker_info(query: Option<&str>) -> Result<WorkerInfo, &'static str> {
    let mut info = WorkerInfo { name: None, capacity: 1 };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "worker" => {
                let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
                if value.is_empty() || value.len() > MAX_WORKER_NAME || !value.chars().all(plain) {
                    return Err("worker names are 1-64 letters, digits, '.', '_' or '-'");
                }
                info.name = Some(value.to_string());
            }
            "capacity" => match value.parse::<u32>() {
                Ok(n) if n >= 1 => info.capacity = n,
                _ => return Err("capacity is a whole number of at least 1"),
            },
            _ => {}
        }
    }
    Ok(info)
}

/// `GET /backend`: mode (404) → method (405) → authentication (401/403) → upgrade and worker query
/// (400) → pool full (4409 after the upgrade).
pub async fn endpoint(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response<Body> {
    let Some(hub) = gw.backend.clone() else {
        return (StatusCode::NOT_FOUND, "no backend endpoint in embedded mode").into_response();
    };
    if method != Method::GET {
        return Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET")
            .body(Body::empty())
            .expect("valid response");
    }
    if let Err(refusal) = auth::check(hub.token.as_deref(), &peer, &headers) {
        tracing::warn!(peer = %peer, reason = refusal.as_str(), "backend refused");
        crate::metrics::metrics().connection_refused("backend", refusal.as_str());
        return match refusal {
            auth::Refusal::Token => Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(header::WWW_AUTHENTICATE, "Bearer")
                .body(Body::from("a valid bearer token is required"))
                .expect("valid response"),
            auth::Refusal::NotLocal => (StatusCode::FORBIDDEN, "backends must connect locally").into_response(),
        };
    }
    let Ok(upgrade) = upgrade else {
        return (StatusCode::BAD_REQUEST, "not a WebSocket upgrade").into_response();
    };
    let info = match worker_info(query.as_deref()) {
        Ok(info) => info,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    websocket::with_frame_limit(upgrade, hub.limits.max_frame_bytes)
        .on_upgrade(move |socket| run(gw, hub, socket, peer, info))
        .into_response()
}

/// Finds a live session's handle by its vended id.
fn session(gw: &Gateway, vended: VendedId) -> Option<SessionHandle> {
    gw.sessions.get_internal_id(vended).and_then(|id| gw.sessions.get_session(&id))
}

/// Tells the sessions of a departed worker (connection `from`) where they stand: moved sessions leave
/// quietly and replay to their new worker; kept ones wait quietly for the worker's return; waiting
/// ones are in an outage browsers hear about.
async fn hand_over(gw: &Gateway, from: u64, handover: Handover, reason: &'static str) {
    for vended in handover.kept {
        if let Some(h) = session(gw, vended) {
            h.backend_down(from, true).await;
        }
    }
    for (vended, to) in handover.moved {
        if let Some(h) = session(gw, vended) {
            h.backend_down(from, true).await;
            let _ = h.backend_up(to).await;
            crate::metrics::metrics().backend_handover(reason);
        }
    }
    for vended in handover.waiting {
        if let Some(h) = session(gw, vended) {
            h.backend_down(from, false).await;
            h.backend_lost().await;
        }
    }
}

async fn run(gw: Arc<Gateway>, hub: Arc<BackendHub>, socket: WebSocket, peer: SocketAddr, info: WorkerInfo) {
    let _open = gw.live_sockets.enter();
    let (tx, rx) = mpsc::channel::<Outgoing>(SEND_QUEUE);
    let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // The hub queues the welcome before it publishes the worker, so nothing can overtake it.
    let claimed = hub.claim(info, tx.clone(), queued.clone(), || gw.sessions.vended_ids());
    let Some(Claimed { generation, sessions }) = claimed else {
        tracing::warn!(peer = %peer, reason = "pool-full", "backend refused");
        crate::metrics::metrics().connection_refused("backend", "pool-full");
        return close_now(socket, CloseReason::BackendBusy).await;
    };
    let worker = hub.worker_label(generation);
    tracing::info!(peer = %peer, worker = %worker, epoch = %hub.epoch, sessions = sessions.len(), "backend connected");
    crate::metrics::metrics().connection_opened("backend");
    let (ws_tx, mut ws_rx) = socket.split();
    let (heard_tx, heard_rx) = tokio::sync::watch::channel(Instant::now());
    let sockets = gw.sockets.clone();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
        write_loop(ws_tx, rx, queued, sockets.ping_interval, sockets.idle_close, heard_rx).await;
        let _ = done_tx.send(());
    });

    // Replay: each session it starts with, ascending, queues its replay batch before the next is asked.
    let replay = {
        let gw = gw.clone();
        tokio::spawn(async move {
            for vended in sessions {
                if let Some(handle) = session(&gw, vended) {
                    let _ = handle.backend_up(generation).await;
                }
            }
        })
    };

    let router = Router::new(generation, tx.clone(), hub.bytes);
    let close_code = loop {
        let inbound = tokio::select! {
            inbound = websocket::read(&mut ws_rx) => inbound,
            _ = &mut done_rx => {
                // The writer sent a close (shutdown, 1013, 4408) or the socket failed: give the peer a
                // moment to answer, then end, so a silent backend cannot hold up shutdown.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(msg)) = ws_rx.next().await {
                        if matches!(msg, Message::Close(_)) { break; }
                    }
                })
                .await;
                break None;
            }
        };
        let _ = heard_tx.send(Instant::now());
        let bytes = match inbound {
            Inbound::Data(payload) => payload.as_bytes().to_vec(),
            Inbound::Ping(_) | Inbound::Pong => continue,
            Inbound::Closed => break None,
            Inbound::Failed(reason) => break Some(reason),
        };
        crate::metrics::metrics().frame_received("backend", bytes.len());
        match parse_worker_frame(&bytes, MAX_DEPTH) {
            Err(e) => {
                let _ = tx.send(Outgoing::Frame(encode_frame_error(e.code, &e.description))).await;
            }
            Ok(BackendFrame::Hello(hello)) => {
                if let Some(capacity) = hello.capacity {
                    hub.set_capacity(generation, capacity);
                }
            }
            Ok(BackendFrame::Drain) => {
                if hub.drain(generation) {
                    tracing::info!(worker = %worker, "backend worker draining: no new sessions for it");
                }
            }
            Ok(BackendFrame::Batch(batch)) => {
                for msg in batch.messages.iter().flatten() {
                    crate::metrics::metrics().message_received("backend", msg.type_name());
                }
                let vended = batch.session;
                let Some(handle) = session(&gw, vended) else {
                    let _ = tx.send(Outgoing::Frame(encode_closed(vended))).await;
                    continue;
                };
                match hub.route(vended, generation) {
                    Route::Own => router.route(handle, batch, bytes.len()),
                    Route::Other(_) => router.refuse(vended),
                }
            }
        }
    };
    if let Some((code, text)) = close_code.and_then(CloseReason::on_wire) {
        let _ = tx.send(Outgoing::Close(code, text)).await;
    }
    replay.abort();
    // The router holds a sender of the writer's queue: it goes before the writer is awaited, or the
    // writer would wait for more frames forever.
    router.stop();
    drop(router);
    let (handover, grace) = hub.release(generation);
    drop(tx);
    let _ = writer.await;
    let code = close_code.map_or(close::NORMAL, CloseReason::code);
    tracing::warn!(
        peer = %peer, worker = %worker, code, moved = handover.moved.len(), kept = handover.kept.len(),
        waiting = handover.waiting.len(), "backend gone"
    );
    crate::metrics::metrics().connection_closed("backend", code);
    hand_over(&gw, generation, handover, "worker-gone").await;
    if let Some((name, grace)) = grace {
        // The worker may come back under its name; if not, its sessions move when the grace ends.
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let handover = hub.expire(&name, generation);
            if !handover.moved.is_empty() || !handover.waiting.is_empty() {
                tracing::info!(worker = %name, moved = handover.moved.len(), waiting = handover.waiting.len(),
                    "backend worker did not return: its sessions move");
            }
            hand_over(&gw, generation, handover, "grace-over").await;
        });
    }
}

/// Routes inbound batches to session mailboxes without ever waiting on one (review M2). A full mailbox
/// parks the session's batches in a small overflow (bounded by `--backend-overflow` batches and
/// `--backend-overflow-bytes`) that a forwarder task of that session drains in order; while it exists,
/// later batches for the session queue behind it, so per-session order is kept. When the overflow is
/// full too, the batch is dropped and the backend gets a `limit-exceeded` error batch for that session.
struct Router {
    generation: u64,
    tx: mpsc::Sender<Outgoing>,
    limits: super::ByteLimits,
    parked: Arc<Mutex<HashMap<VendedId, Parked>>>,
}

/// One session's overflow: batches with their frame sizes, and the forwarder draining them.
struct Parked {
    batches: VecDeque<(BackendBatch, usize)>,
    bytes: usize,
    forwarder: Option<tokio::task::AbortHandle>,
}

impl Router {
    fn new(generation: u64, tx: mpsc::Sender<Outgoing>, limits: super::ByteLimits) -> Router {
        Router { generation, tx, limits, parked: Arc::default() }
    }

    /// Delivers `batch` (its frame was `size` bytes) to the session, parks it, or drops it.
    fn route(&self, handle: SessionHandle, batch: BackendBatch, size: usize) {
        let vended = batch.session;
        let mut parked = self.parked.lock();
        if let Some(p) = parked.get_mut(&vended) {
            if p.batches.len() >= self.limits.overflow_batches || p.bytes + size > self.limits.overflow_bytes {
                drop(parked);
                self.drop_batch(vended);
            } else {
                p.bytes += size;
                p.batches.push_back((batch, size));
            }
            return;
        }
        match handle.try_backend_batch(self.generation, batch) {
            Ok(()) => {}
            Err(BatchRefused::Gone) => {
                drop(parked);
                let _ = self.tx.try_send(Outgoing::Frame(encode_closed(vended)));
            }
            Err(BatchRefused::Full(batch)) => {
                if self.limits.overflow_batches == 0 || size > self.limits.overflow_bytes {
                    drop(parked);
                    return self.drop_batch(vended);
                }
                let mut p = Parked { batches: VecDeque::new(), bytes: size, forwarder: None };
                p.batches.push_back((batch, size));
                let task = tokio::spawn(forward(self.generation, handle, vended, self.parked.clone(), self.tx.clone()));
                p.forwarder = Some(task.abort_handle());
                parked.insert(vended, p);
            }
        }
    }

    /// A batch for a session another worker serves: refused with a typed error in the session's name;
    /// nothing else changes (the session never sees it).
    fn refuse(&self, vended: VendedId) {
        tracing::warn!(vended = %vended, "a backend worker sent a batch for a session pinned to another worker");
        let error = ProtocolMessage::Error(ErrorReport {
            var_id: crate::ids::VarId::NONE,
            code: ErrorCode::AccessDenied,
            description: format!("session {vended} is served by another worker"),
        });
        let _ = self.tx.try_send(Outgoing::Frame(encode_batch(vended, false, &[error])));
    }

    /// The session's overflow is full: the batch is lost; the backend is told in the session's name.
    fn drop_batch(&self, vended: VendedId) {
        crate::metrics::metrics().limit_hit(crate::metrics::Limit::BackendOverflow);
        tracing::warn!(vended = %vended, "session mailbox and overflow full: dropping a backend batch");
        let error = ProtocolMessage::Error(ErrorReport {
            var_id: crate::ids::VarId::NONE,
            code: ErrorCode::LimitExceeded,
            description: "session busy: batch dropped".into(),
        });
        // A backend that does not read its own errors fills its queue; that is its back-pressure.
        let _ = self.tx.try_send(Outgoing::Frame(encode_batch(vended, false, &[error])));
    }

    /// The connection ended: forwarders stop (their batches belong to a dead generation).
    fn stop(&self) {
        for (_, p) in self.parked.lock().drain() {
            if let Some(f) = p.forwarder {
                f.abort();
            }
        }
    }
}

/// Drains one session's overflow into its mailbox, in order, waiting for space; ends when it is empty.
async fn forward(
    generation: u64,
    handle: SessionHandle,
    vended: VendedId,
    parked: Arc<Mutex<HashMap<VendedId, Parked>>>,
    tx: mpsc::Sender<Outgoing>,
) {
    loop {
        let next = {
            let mut map = parked.lock();
            let Some(p) = map.get_mut(&vended) else { return };
            match p.batches.pop_front() {
                Some((batch, size)) => {
                    p.bytes -= size;
                    batch
                }
                None => {
                    // Under the lock: the reader sees no overflow from now on and delivers directly.
                    map.remove(&vended);
                    return;
                }
            }
        };
        if handle.backend_batch(generation, next).await.is_err() {
            parked.lock().remove(&vended);
            let _ = tx.try_send(Outgoing::Frame(encode_closed(vended)));
            return;
        }
    }
}

/// Most frames one write of the backend socket gathers (see [`write_loop`]).
const COALESCE_FRAMES: usize = 64;

/// Feeds one queued frame into the socket's write buffer (no write yet); a counted frame's bytes add
/// to `counted`, to leave the connection's queued count once the write is done.
async fn feed(
    ws_tx: &mut futures::stream::SplitSink<WebSocket, Message>,
    text: String,
    is_counted: bool,
    counted: &mut usize,
) -> Result<(), axum::Error> {
    if is_counted {
        *counted += text.len();
    }
    crate::metrics::metrics().frame_sent("backend", text.len());
    ws_tx.feed(Message::Text(text.into())).await
}

/// Writes what the sessions queue for the worker. The link carries every session of the worker, so
/// frames queue up while a write is under way: whatever is queued when the writer wakes (up to
/// [`COALESCE_FRAMES`]) goes out in one socket write and one flush, instead of one write, TCP segment
/// and wake-up of the worker per frame.
async fn write_loop(
    mut ws_tx: futures::stream::SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Outgoing>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    ping_interval: Duration,
    idle_close: Duration,
    heard: tokio::sync::watch::Receiver<Instant>,
) {
    let mut ping =
        tokio::time::interval_at(Instant::now() + ping_interval, ping_interval.max(Duration::from_millis(10)));
    loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(Outgoing::Close(code, reason)) => {
                    websocket::send_close(&mut ws_tx, code, reason).await;
                    break;
                }
                Some(first) => {
                    let mut counted = 0;
                    let mut frames = 0;
                    let mut next = Some(first);
                    let mut close = None;
                    let mut fed = Ok(());
                    while let Some(out) = next.take() {
                        fed = match out {
                            Outgoing::Frame(text) => feed(&mut ws_tx, text, false, &mut counted).await,
                            Outgoing::Counted(text) => feed(&mut ws_tx, text, true, &mut counted).await,
                            Outgoing::Close(code, reason) => {
                                close = Some((code, reason));
                                break;
                            }
                        };
                        frames += 1;
                        if fed.is_err() || frames == COALESCE_FRAMES {
                            break;
                        }
                        next = rx.try_recv().ok();
                    }
                    let sent = match fed {
                        Ok(()) => ws_tx.flush().await,
                        Err(e) => Err(e),
                    };
                    queued.fetch_sub(counted, std::sync::atomic::Ordering::AcqRel);
                    if sent.is_err() {
                        break;
                    }
                    if let Some((code, reason)) = close {
                        websocket::send_close(&mut ws_tx, code, reason).await;
                        break;
                    }
                }
                None => {
                    websocket::send_close(&mut ws_tx, close::GOING_AWAY, "").await;
                    break;
                }
            },
            _ = ping.tick(), if !ping_interval.is_zero() => {
                if !idle_close.is_zero() && heard.borrow().elapsed() >= idle_close {
                    let idle = CloseReason::Idle;
                    websocket::send_close(&mut ws_tx, idle.code(), idle.text()).await;
                    break;
                }
                if ws_tx.send(Message::Ping(Default::default())).await.is_err() { break; }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_queries() {
        assert_eq!(worker_info(None).unwrap(), WorkerInfo { name: None, capacity: 1 });
        assert_eq!(
            worker_info(Some("worker=api-2.eu&capacity=4&x=y")).unwrap(),
            WorkerInfo { name: Some("api-2.eu".into()), capacity: 4 }
        );
        for bad in ["worker=", "worker=a%20b", "capacity=0", "capacity=x", &format!("worker={}", "w".repeat(65))] {
            assert!(worker_info(Some(bad)).is_err(), "{bad}");
        }
    }
}
