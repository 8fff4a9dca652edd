//! What the browser socket (`browser.rs`) and the backend socket (`backend/socket.rs`) share about a
//! WebSocket: the frame limits set at the upgrade, reading one frame and classifying a read failure,
//! the reasons the gateway itself closes a socket with their codes, and sending a close.
//!
//! Both sockets used to classify read errors on their own (the backend borrowing the browser's type);
//! one module means one table from "why" to "which code", so a read error cannot end up labelled with
//! another failure's code or text.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use futures::{Sink, SinkExt, Stream, StreamExt};

use crate::protocol::close;

/// Why the gateway closes a WebSocket (or why it could not), each with its own close code and reason
/// text ([`CloseReason::policy`]). Closes decided by the session (its end, a slow reader found by the
/// sink) carry their code from there and are not listed here.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CloseReason {
    /// A read failed: a message or frame over the frame limit.
    TooBig,
    /// A read failed: a text frame that is not UTF-8.
    InvalidUtf8,
    /// A read failed: a framing violation (reserved opcode or RSV bits, unmasked client frame,
    /// oversized or fragmented control frame, a continuation out of place, interleaved fragments).
    ProtocolViolation,
    /// A read failed in the transport (reset, EOF mid-frame): no close frame can be delivered.
    Transport,
    /// The browser's pongs owed passed `--max-outbound`.
    SlowReader,
    /// The peer was silent past `--idle-close`.
    Idle,
    /// The URL names no live session.
    UnknownSession,
    /// The session ended while the socket was being attached to it.
    SessionEnded,
    /// The session already has its maximum of connections.
    ConnectionLimit,
    /// The backend worker pool is full (`--max-backends`).
    BackendBusy,
}

impl CloseReason {
    /// The policy, as one table: the close code and reason text for each reason. Read failures use
    /// their RFC 6455 codes (never 1000); a transport failure is counted as 1006, which is never sent.
    const fn policy(self) -> (u16, &'static str) {
        match self {
            CloseReason::TooBig => (close::TOO_BIG, "frame too large"),
            CloseReason::InvalidUtf8 => (close::INVALID_PAYLOAD, "invalid UTF-8"),
            CloseReason::ProtocolViolation => (close::PROTOCOL_ERROR, "protocol error"),
            CloseReason::Transport => (close::ABNORMAL, ""),
            CloseReason::SlowReader => (close::SLOW_READER, "slow reader"),
            CloseReason::Idle => (close::SILENT_PEER, "idle"),
            CloseReason::UnknownSession => (close::UNKNOWN_SESSION, "unknown-session"),
            CloseReason::SessionEnded => (close::UNKNOWN_SESSION, "session-ended"),
            CloseReason::ConnectionLimit => (close::CONNECTION_LIMIT, "connection-limit"),
            CloseReason::BackendBusy => (close::BACKEND_BUSY, "backend pool full"),
        }
    }

    /// The close code: the one sent, and the one the connection is counted under.
    pub fn code(self) -> u16 {
        self.policy().0
    }

    /// The reason text of the close frame.
    pub fn text(self) -> &'static str {
        self.policy().1
    }

    /// The close frame to send (code and reason), or `None` when the transport failed and no frame
    /// can be delivered.
    pub fn on_wire(self) -> Option<(u16, &'static str)> {
        match self {
            CloseReason::Transport => None,
            _ => Some(self.policy()),
        }
    }

    /// Classifies a read error from axum's WebSocket (the tungstenite error is in its source chain).
    pub fn of_read_error(e: &axum::Error) -> CloseReason {
        use std::error::Error;
        let mut source: Option<&(dyn Error + 'static)> = e.source();
        while let Some(s) = source {
            if let Some(t) = s.downcast_ref::<tungstenite::Error>() {
                return CloseReason::of_tungstenite(t);
            }
            source = s.source();
        }
        CloseReason::Transport
    }

    /// Classifies a tungstenite read error.
    pub fn of_tungstenite(e: &tungstenite::Error) -> CloseReason {
        match e {
            tungstenite::Error::Capacity(_) => CloseReason::TooBig,
            tungstenite::Error::Utf8(_) => CloseReason::InvalidUtf8,
            tungstenite::Error::Protocol(_) => CloseReason::ProtocolViolation,
            _ => CloseReason::Transport,
        }
    }
}

/// Sets the frame limits on an upgrade: no message and no single frame over `max_frame` bytes (a
/// larger one fails the read with [`CloseReason::TooBig`]).
pub fn with_frame_limit(upgrade: WebSocketUpgrade, max_frame: usize) -> WebSocketUpgrade {
    upgrade.max_message_size(max_frame).max_frame_size(max_frame)
}

/// A data frame's payload, text or binary, without a copy.
#[derive(Debug)]
pub enum Payload {
    Text(Utf8Bytes),
    Binary(Bytes),
}

impl Payload {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Payload::Text(text) => text.as_bytes(),
            Payload::Binary(bytes) => bytes,
        }
    }
}

/// What one read from a socket gave.
#[derive(Debug)]
pub enum Inbound {
    /// A text or binary frame.
    Data(Payload),
    /// A ping with a payload of this many bytes (tungstenite has queued the pong).
    Ping(usize),
    /// A pong.
    Pong,
    /// The peer closed, or the stream ended.
    Closed,
    /// The read failed; the reason says which close (if any) to send.
    Failed(CloseReason),
}

/// Reads the next frame. Cancel-safe (it awaits the stream once), so it can sit in a `select!`.
pub async fn read<S>(stream: &mut S) -> Inbound
where
    S: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    match stream.next().await {
        Some(Ok(Message::Text(text))) => Inbound::Data(Payload::Text(text)),
        Some(Ok(Message::Binary(bytes))) => Inbound::Data(Payload::Binary(bytes)),
        Some(Ok(Message::Ping(payload))) => Inbound::Ping(payload.len()),
        Some(Ok(Message::Pong(_))) => Inbound::Pong,
        Some(Ok(Message::Close(_))) | None => Inbound::Closed,
        Some(Err(e)) => Inbound::Failed(CloseReason::of_read_error(&e)),
    }
}

/// A close frame with `code` and `reason`.
pub fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

/// Sends a close frame with `code` and `reason`; a failed send is ignored (the peer is gone).
pub async fn send_close<S>(sink: &mut S, code: u16, reason: &'static str)
where
    S: Sink<Message> + Unpin,
{
    let _ = sink.send(close_message(code, reason)).await;
}

/// Closes a socket that never served (refused after the upgrade): sends the close for `reason`, then
/// waits briefly for the peer's close so the code reaches it before the TCP close.
pub async fn close_now(mut socket: WebSocket, reason: CloseReason) {
    if let Some((code, text)) = reason.on_wire() {
        send_close(&mut socket, code, text).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), async { while socket.next().await.is_some() {} }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close_of(e: tungstenite::Error) -> Option<(u16, &'static str)> {
        CloseReason::of_tungstenite(&e).on_wire()
    }

    #[test]
    fn an_oversized_frame_closes_with_1009_frame_too_large() {
        let e =
            tungstenite::Error::Capacity(tungstenite::error::CapacityError::MessageTooLong { size: 2, max_size: 1 });
        assert_eq!(close_of(e), Some((1009, "frame too large")));
    }

    #[test]
    fn bad_utf8_closes_with_1007_invalid_utf8() {
        let e = tungstenite::Error::Utf8("not UTF-8".into());
        assert_eq!(close_of(e), Some((1007, "invalid UTF-8")));
    }

    #[test]
    fn a_framing_violation_closes_with_1002_protocol_error() {
        let e = tungstenite::Error::Protocol(tungstenite::error::ProtocolError::UnmaskedFrameFromClient);
        assert_eq!(close_of(e), Some((1002, "protocol error")));
    }

    #[test]
    fn a_transport_failure_sends_no_close_and_counts_as_1006() {
        let e = tungstenite::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let reason = CloseReason::of_tungstenite(&e);
        assert_eq!((reason.on_wire(), reason.code()), (None, 1006));
    }

    #[test]
    fn an_axum_error_is_classified_through_its_source_chain() {
        let e = axum::Error::new(tungstenite::Error::Utf8("x".into()));
        assert_eq!(CloseReason::of_read_error(&e), CloseReason::InvalidUtf8);
        let opaque = axum::Error::new(std::io::Error::other("reset"));
        assert_eq!(CloseReason::of_read_error(&opaque), CloseReason::Transport);
    }

    #[test]
    fn no_read_failure_closes_with_1000() {
        for r in [CloseReason::TooBig, CloseReason::InvalidUtf8, CloseReason::ProtocolViolation, CloseReason::Transport]
        {
            assert_ne!(r.code(), close::NORMAL, "{r:?}");
        }
    }

    #[test]
    fn closes_the_gateway_decides_keep_their_codes_and_texts() {
        let table = [
            (CloseReason::SlowReader, 1013, "slow reader"),
            (CloseReason::Idle, 4408, "idle"),
            (CloseReason::UnknownSession, 4404, "unknown-session"),
            (CloseReason::SessionEnded, 4404, "session-ended"),
            (CloseReason::ConnectionLimit, 4429, "connection-limit"),
            (CloseReason::BackendBusy, 4409, "backend pool full"),
        ];
        for (reason, code, text) in table {
            assert_eq!(reason.on_wire(), Some((code, text)), "{reason:?}");
        }
    }
}
