//! The session's side of one browser connection's outbound path.
//!
//! The session hands finished frames to the connection's writer task through an unbounded channel and
//! counts the unsent bytes itself: a reader that falls more than `--max-outbound` behind is closed with
//! 1013 instead of growing memory without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

/// What the writer task is told to do.
#[derive(Debug)]
pub enum Outbound {
    /// Send one text frame.
    Frame(String),
    /// Send a close frame with this code and reason, then stop.
    Close(u16, &'static str),
    /// The reader answered a ping: tungstenite queued a pong of this many bytes, already counted in the
    /// connection's unsent bytes. The writer flushes the socket and, once that completes (so the pong
    /// is out), takes the bytes off again. Pongs to a peer that never reads thus count toward
    /// `--max-outbound` like frames do (review H5, ping flood).
    Pong(usize),
}

/// Sender half, owned by the session.
#[derive(Debug)]
pub struct ConnSink {
    tx: mpsc::UnboundedSender<Outbound>,
    unsent: Arc<AtomicUsize>,
    max_unsent: usize,
}

/// Result of queueing a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum SendOutcome {
    Queued,
    /// The connection is gone (its writer stopped).
    Gone,
    /// Over the outbound limit: the connection was told to close with 1013.
    TooSlow,
}

impl ConnSink {
    pub fn new(tx: mpsc::UnboundedSender<Outbound>, unsent: Arc<AtomicUsize>, max_unsent: usize) -> Self {
        ConnSink { tx, unsent, max_unsent }
    }

    /// Queues a frame, unless the reader is too far behind.
    pub fn send_frame(&self, text: String) -> SendOutcome {
        let len = text.len();
        let before = self.unsent.fetch_add(len, Ordering::AcqRel);
        if before + len > self.max_unsent {
            self.unsent.fetch_sub(len, Ordering::AcqRel);
            let _ = self.tx.send(Outbound::Close(crate::protocol::close::SLOW_READER, "slow reader"));
            return SendOutcome::TooSlow;
        }
        match self.tx.send(Outbound::Frame(text)) {
            Ok(()) => {
                crate::metrics::metrics().frame_sent("browser", len);
                SendOutcome::Queued
            }
            Err(_) => SendOutcome::Gone,
        }
    }

    /// Asks the writer to close the socket.
    pub fn close(&self, code: u16, reason: &'static str) {
        let _ = self.tx.send(Outbound::Close(code, reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_slow_readers_are_closed() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let unsent = Arc::new(AtomicUsize::new(0));
        let sink = ConnSink::new(tx, unsent.clone(), 10);
        assert_eq!(sink.send_frame("12345".into()), SendOutcome::Queued);
        assert_eq!(sink.send_frame("12345".into()), SendOutcome::Queued);
        assert_eq!(sink.send_frame("1".into()), SendOutcome::TooSlow);
        assert!(matches!(rx.try_recv(), Ok(Outbound::Frame(_))));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Frame(_))));
        assert!(matches!(rx.try_recv(), Ok(Outbound::Close(1013, _))));
        assert_eq!(unsent.load(Ordering::Acquire), 10);
    }
}
