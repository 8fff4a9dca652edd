//! One browser WebSocket: the task pair that moves frames between the socket and the session.
//!
//! The reader parses frames here, off the session task, and hands them to the session's bounded mailbox
//! (a full mailbox pauses reading: TCP back-pressure). The writer drains the connection's outbound
//! channel, pings on schedule and sends close frames.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::Response;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::gateway::Gateway;
use crate::protocol::{close, parse_client_frame};
use crate::session::{ConnSink, Outbound, SessionHandle};

/// Completes the upgrade; unknown sessions and full sessions are closed right after it (browsers cannot
/// read a refused upgrade's status).
pub fn upgrade(
    gw: Arc<Gateway>,
    upgrade: WebSocketUpgrade,
    session: Option<SessionHandle>,
    peer: SocketAddr,
) -> Response<Body> {
    let cfg = &gw.sockets;
    upgrade
        .max_message_size(cfg.max_frame)
        .max_frame_size(cfg.max_frame)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| async move {
            match session {
                Some(session) => run(gw, socket, session, peer).await,
                None => {
                    crate::metrics::metrics().connection_refused("browser", "unknown-session");
                    close_now(socket, close::UNKNOWN_SESSION, "unknown-session").await
                }
            }
        })
}

async fn close_now(mut socket: WebSocket, code: u16, reason: &'static str) {
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
    // Wait briefly for the peer's close so the code reaches it before the TCP close.
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(2), async { while socket.next().await.is_some() {} }).await;
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
            return close_now(socket, close::CONNECTION_LIMIT, "connection-limit").await;
        }
        Err(_) => {
            crate::metrics::metrics().connection_refused("browser", "unknown-session");
            return close_now(socket, close::UNKNOWN_SESSION, "session-ended").await;
        }
    }
    crate::metrics::metrics().connection_opened("browser");
    session.activity.connection_opened();
    tracing::debug!(vended = %session.vended, conn = %conn, peer = %peer, "browser connected");

    let (ws_tx, mut ws_rx) = socket.split();
    let (heard_tx, heard_rx) = tokio::sync::watch::channel(Instant::now());
    let (done_tx, mut done_rx) = oneshot::channel::<()>();
    let writer = tokio::spawn(write_loop(ws_tx, out_rx, unsent, gw.sockets.clone(), heard_rx, done_tx));

    let limits = gw.sockets.frame_limits;
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
            msg = ws_rx.next() => {
                let _ = heard_tx.send(Instant::now());
                match msg {
                    Some(Ok(Message::Text(text))) => {
                        session.activity.touch();
                        let frame = parse_client_frame(text.as_bytes(), &limits);
                        count_received(text.len(), &frame);
                        if session.frame(conn, frame).await.is_err() { break None; }
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        session.activity.touch();
                        let frame = parse_client_frame(&bytes, &limits);
                        count_received(bytes.len(), &frame);
                        if session.frame(conn, frame).await.is_err() { break None; }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Err(e)) => break Some(error_close_code(&e)),
                }
            }
        }
    };
    if let Some(code) = close_code {
        let _ = out_tx.send(Outbound::Close(code, "frame too large"));
    }
    session.disconnect(conn).await;
    session.activity.connection_closed();
    crate::metrics::metrics().connection_closed("browser", close_code.unwrap_or(close::NORMAL));
    drop(out_tx);
    let _ = writer.await;
    tracing::debug!(vended = %session.vended, conn = %conn, "browser disconnected");
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

/// 1009 for an oversized message; any other read error just ends the connection.
pub(crate) fn error_close_code(e: &axum::Error) -> u16 {
    use std::error::Error;
    let mut source: Option<&(dyn Error + 'static)> = e.source();
    while let Some(s) = source {
        if let Some(tungstenite::Error::Capacity(_)) = s.downcast_ref::<tungstenite::Error>() {
            return close::TOO_BIG;
        }
        source = s.source();
    }
    if e.to_string().to_ascii_lowercase().contains("too long") || e.to_string().contains("Space limit") {
        return close::TOO_BIG;
    }
    close::NORMAL
}

async fn write_loop(
    mut ws_tx: futures::stream::SplitSink<WebSocket, Message>,
    mut out_rx: mpsc::UnboundedReceiver<Outbound>,
    unsent: Arc<AtomicUsize>,
    cfg: crate::gateway::SocketConfig,
    heard: tokio::sync::watch::Receiver<Instant>,
    done: oneshot::Sender<()>,
) {
    let mut ping = tokio::time::interval_at(
        Instant::now() + cfg.ping_interval,
        cfg.ping_interval.max(std::time::Duration::from_millis(10)),
    );
    loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some(Outbound::Frame(text)) => {
                    let len = text.len();
                    let sent = ws_tx.send(Message::Text(text.into())).await;
                    unsent.fetch_sub(len, Ordering::AcqRel);
                    if sent.is_err() { break; }
                }
                Some(Outbound::Close(code, reason)) => {
                    let _ = ws_tx.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                    break;
                }
                None => break,
            },
            _ = ping.tick(), if !cfg.ping_interval.is_zero() => {
                if !cfg.idle_close.is_zero() && heard.borrow().elapsed() >= cfg.idle_close {
                    let _ = ws_tx.send(Message::Close(Some(CloseFrame { code: close::SILENT_PEER, reason: "idle".into() }))).await;
                    break;
                }
                if ws_tx.send(Message::Ping(Default::default())).await.is_err() { break; }
            }
        }
    }
    let _ = done.send(());
}
