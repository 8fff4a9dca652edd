//! One browser WebSocket: the task pair that moves frames between the socket and the session.
//!
//! The reader parses frames here, off the session task, and hands them to the session's bounded mailbox
//! (a full mailbox pauses reading: TCP back-pressure). The writer drains the connection's outbound
//! channel, pings on schedule and sends close frames.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::Response;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::protocol::{close, parse_client_frame};
use crate::session::{ConnSink, Outbound, SessionHandle};
use crate::state::Gateway;
use crate::websocket::{self, close_message, close_now, CloseReason, Inbound};

/// Completes the upgrade; unknown sessions and full sessions are closed right after it (browsers cannot
/// read a refused upgrade's status).
pub fn upgrade(
    gw: Arc<Gateway>,
    upgrade: WebSocketUpgrade,
    session: Option<SessionHandle>,
    peer: SocketAddr,
) -> Response<Body> {
    let cfg = &gw.sockets;
    websocket::with_frame_limit(upgrade, cfg.max_frame)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        // A hard cap on what tungstenite itself buffers for a peer that does not read: auto-replies
        // (pongs) are otherwise unbounded there (review H5). The soft limit is `--max-outbound`, which
        // counts pongs too (see `Outbound::Pong`) and closes with 1013 long before this is reached;
        // room for one frame of that size plus the pongs queued meanwhile.
        .max_write_buffer_size(write_buffer_cap(cfg.max_outbound))
        .on_upgrade(move |socket| async move {
            let _open = gw.live_sockets.enter();
            match session {
                Some(session) => run(gw, socket, session, peer).await,
                None => {
                    crate::metrics::metrics().connection_refused("browser", "unknown-session");
                    close_now(socket, CloseReason::UnknownSession).await
                }
            }
        })
}

/// The most tungstenite may buffer for one browser socket (see [`upgrade`]).
fn write_buffer_cap(max_outbound: usize) -> usize {
    max_outbound.saturating_mul(2).saturating_add(64 << 10)
}

/// Wire size of a pong answering a ping with `payload` bytes (≤ 125, so a 2-byte header).
fn pong_cost(payload: usize) -> usize {
    payload + 2
}

async fn run(gw: Arc<Gateway>, socket: WebSocket, session: SessionHandle, peer: SocketAddr) {
    let conn = gw.next_conn_id();
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let unsent = Arc::new(AtomicUsize::new(0));
    let sink = ConnSink::new(out_tx.clone(), unsent.clone(), gw.sockets.max_outbound);
    match session.connect(conn, sink).await {
        Ok(true) => {}
        Ok(false) => {
            crate::metrics::metrics().connection_refused("browser", "connection-limit");
            return close_now(socket, CloseReason::ConnectionLimit).await;
        }
        Err(_) => {
            crate::metrics::metrics().connection_refused("browser", "unknown-session");
            return close_now(socket, CloseReason::SessionEnded).await;
        }
    }
    crate::metrics::metrics().connection_opened("browser");
    session.activity.connection_opened();
    tracing::debug!(vended = %session.vended, conn = %conn, peer = %peer, "browser connected");

    let (ws_tx, mut ws_rx) = socket.split();
    let (heard_tx, heard_rx) = tokio::sync::watch::channel(Instant::now());
    let (done_tx, mut done_rx) = oneshot::channel::<()>();
    let writer = tokio::spawn(write_loop(ws_tx, out_rx, unsent.clone(), gw.sockets.clone(), heard_rx, done_tx));

    let limits = gw.sockets.frame_limits;
    let max_outbound = gw.sockets.max_outbound;
    // Set once the pongs owed pass `--max-outbound`: the close is asked for once.
    let mut slow = false;
    // A session ended from outside its task (watchdog, failure) closes its connections itself: the
    // task may be stuck and never send the close.
    let ended = session.activity.ended();
    tokio::pin!(ended);
    let mut ended_by = None;
    let close_code = loop {
        tokio::select! {
            _ = &mut done_rx => {
                // We sent a close: give the peer a moment to answer it so the code reaches it intact.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                    while let Some(Ok(msg)) = ws_rx.next().await {
                        if matches!(msg, Message::Close(_)) { break; }
                    }
                })
                .await;
                break None;
            }
            signal = &mut ended => {
                ended_by = Some(signal);
                break None;
            }
            // Once the close for a slow reader is asked for, stop reading: every ping read would make
            // tungstenite try to flush another pong, racing the writer for a socket the peer does not
            // drain. The writer sends the close (or gives up after the grace) and `done_rx` ends this.
            inbound = websocket::read(&mut ws_rx), if !slow => {
                let _ = heard_tx.send(Instant::now());
                let (bytes, frame) = match inbound {
                    Inbound::Data(payload) => {
                        let bytes = payload.as_bytes();
                        (bytes.len(), parse_client_frame(bytes, &limits))
                    }
                    Inbound::Ping(payload) => {
                        // tungstenite has queued the pong; it counts as unsent until the writer's flush.
                        let cost = pong_cost(payload);
                        let before = unsent.fetch_add(cost, Ordering::AcqRel);
                        if before + cost > max_outbound {
                            if !slow {
                                slow = true;
                                crate::metrics::metrics().limit_hit(crate::metrics::Limit::OutboundPongs);
                                let reason = CloseReason::SlowReader;
                                let _ = out_tx.send(Outbound::Close(reason.code(), reason.text()));
                            }
                        } else {
                            let _ = out_tx.send(Outbound::Pong(cost));
                        }
                        continue;
                    }
                    Inbound::Pong => continue,
                    Inbound::Closed => break None,
                    Inbound::Failed(reason) => break Some(reason),
                };
                session.activity.touch();
                claim_on_success(&session, &frame);
                count_received(bytes, &frame);
                // A full mailbox makes this wait (TCP back-pressure), but never past the session's end.
                tokio::select! {
                    sent = session.frame(conn, frame) => if sent.is_err() { break None },
                    signal = &mut ended => {
                        ended_by = Some(signal);
                        break None;
                    }
                }
            }
        }
    };
    if let Some(failure) = close_code {
        if let Some((code, text)) = failure.on_wire() {
            let _ = out_tx.send(Outbound::Close(code, text));
        }
    }
    if let Some(signal) = ended_by {
        let _ = out_tx.send(Outbound::Close(signal.code, signal.reason));
    }
    // A stuck session's mailbox may never have room again: its end stops the wait.
    tokio::select! {
        () = session.disconnect(conn) => {}
        _ = session.activity.ended() => {}
    }
    session.activity.connection_closed();
    drop(out_tx);
    // The code the server sent (1013, 4404, 1001, 4408, 1009), else a normal close by the peer.
    let sent = writer.await.unwrap_or(close::NORMAL);
    let code = close_code.map_or(sent, CloseReason::code);
    crate::metrics::metrics().connection_closed("browser", code);
    tracing::debug!(vended = %session.vended, conn = %conn, code, "browser disconnected");
}

/// A frame that parsed claims the session: from now on it lives for `--session-timeout`. Opening a
/// socket alone, or sending garbage, leaves it on `--unclaimed-timeout` (security review H6).
fn claim_on_success(
    session: &SessionHandle,
    frame: &Result<crate::protocol::ClientFrame, crate::protocol::FrameError>,
) {
    if frame.is_ok() {
        session.activity.claim();
    }
}

/// Counts one received browser frame and its messages by type.
fn count_received(bytes: usize, frame: &Result<crate::protocol::ClientFrame, crate::protocol::FrameError>) {
    let m = crate::metrics::metrics();
    m.frame_received("browser", bytes);
    if let Ok(f) = frame {
        for msg in f.messages.iter().flatten() {
            m.message_received("browser", msg.type_name());
        }
    }
}

/// How long a close may wait for a frame the peer is not reading (at most; `--idle-close` if shorter).
/// A peer that reads nothing for this long while its connection is being closed (1013 for a slow
/// reader, 4404, 1001 at shutdown) is gone: the socket is dropped without a close frame.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Drains the connection's outbound channel into the socket, pings, sends the close frame. Returns the
/// close code it sent (or meant to send), [`close::NORMAL`] when the channel simply ended.
///
/// While a frame is blocked on a full socket (the peer does not read) the channel is still drained, so
/// a close request is seen at once: the frames queued behind it are dropped, and the close waits at
/// most [`CLOSE_GRACE`] for the blocked frame, so a peer that never reads cannot pin the connection.
async fn write_loop(
    mut ws_tx: futures::stream::SplitSink<WebSocket, Message>,
    mut out_rx: mpsc::UnboundedReceiver<Outbound>,
    unsent: Arc<AtomicUsize>,
    cfg: crate::state::SocketConfig,
    heard: tokio::sync::watch::Receiver<Instant>,
    done: oneshot::Sender<()>,
) -> u16 {
    let mut ping = tokio::time::interval_at(
        Instant::now() + cfg.ping_interval,
        cfg.ping_interval.max(std::time::Duration::from_millis(10)),
    );
    let grace = if cfg.idle_close.is_zero() { CLOSE_GRACE } else { cfg.idle_close.min(CLOSE_GRACE) };
    // Frames that arrived while a send was blocked, in order.
    let mut queued: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let code = 'serve: loop {
        // The next thing to write: a queued or new frame (with its unsent bytes), a flush for pongs, a
        // ping, or a close. `None` = flush only.
        let (message, len) = match queued.pop_front() {
            Some(text) => {
                let len = text.len();
                (Some(Message::Text(text.into())), len)
            }
            None => tokio::select! {
                out = out_rx.recv() => match out {
                    Some(Outbound::Frame(text)) => {
                        let len = text.len();
                        (Some(Message::Text(text.into())), len)
                    }
                    Some(Outbound::Pong(cost)) => (None, cost),
                    Some(Outbound::Close(code, reason)) => {
                        let _ = tokio::time::timeout(grace, ws_tx.send(close_message(code, reason))).await;
                        break code;
                    }
                    None => break close::NORMAL,
                },
                _ = ping.tick(), if !cfg.ping_interval.is_zero() => {
                    if !cfg.idle_close.is_zero() && heard.borrow().elapsed() >= cfg.idle_close {
                        let idle = CloseReason::Idle;
                        let _ = tokio::time::timeout(grace, ws_tx.send(close_message(idle.code(), idle.text()))).await;
                        break idle.code();
                    }
                    (Some(Message::Ping(Default::default())), 0)
                }
            },
        };
        // Pongs tungstenite queued while this write is pending: any completed send or flush also wrote
        // them, so their bytes come off together with this write's.
        let mut pongs = 0usize;
        // A close requested while the send is blocked, and when to stop waiting for it.
        let mut closing: Option<(u16, &'static str, Instant)> = None;
        let mut channel_open = true;
        // In its own block: the pending write borrows the socket until it is dropped.
        let sent = {
            let mut send = std::pin::pin!(async {
                match message {
                    Some(message) => ws_tx.send(message).await,
                    None => ws_tx.flush().await,
                }
            });
            loop {
                let give_up = closing.map(|(_, _, at)| at);
                tokio::select! {
                    sent = &mut send => break sent.is_ok(),
                    out = out_rx.recv(), if channel_open && closing.is_none() => match out {
                        Some(Outbound::Frame(text)) => queued.push_back(text),
                        Some(Outbound::Pong(cost)) => pongs += cost,
                        Some(Outbound::Close(code, reason)) => {
                            let dropped: usize = queued.drain(..).map(|t| t.len()).sum();
                            unsent.fetch_sub(dropped, Ordering::AcqRel);
                            closing = Some((code, reason, Instant::now() + grace));
                        }
                        None => {
                            channel_open = false;
                            closing = Some((close::NORMAL, "", Instant::now() + grace));
                        }
                    },
                    // A peer silent past --idle-close while we wait on it is closed too (no ping can go out).
                    _ = ping.tick(), if closing.is_none() && !cfg.ping_interval.is_zero() && !cfg.idle_close.is_zero() => {
                        if heard.borrow().elapsed() >= cfg.idle_close {
                            closing = Some((CloseReason::Idle.code(), CloseReason::Idle.text(), Instant::now() + grace));
                        }
                    }
                    _ = tokio::time::sleep_until(give_up.unwrap_or_else(Instant::now)), if give_up.is_some() => {
                        // The peer has read nothing for the whole grace: drop the socket.
                        unsent.fetch_sub(len + pongs, Ordering::AcqRel);
                        break 'serve closing.map_or(close::NORMAL, |(code, _, _)| code);
                    }
                }
            }
        };
        unsent.fetch_sub(len + pongs, Ordering::AcqRel);
        if !sent {
            break close::NORMAL;
        }
        if let Some((code, reason, at)) = closing {
            if channel_open {
                let _ = tokio::time::timeout_at(at, ws_tx.send(close_message(code, reason))).await;
            }
            break code;
        }
    };
    let _ = done.send(());
    code
}
