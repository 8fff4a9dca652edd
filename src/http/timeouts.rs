//! Connection timeouts under hyper (docs/deployment.md "Security", docs/limits.md), applied to the accepted TCP stream:
//!
//! - **Header read timeout** (10 s): a request head must arrive in full within it, counted from the
//!   accept for a connection's first request and from the first byte of each later request. A stalled
//!   or dribbled head (slowloris) ends the connection. A WebSocket upgrade request is a head like any
//!   other and its `101` goes out as soon as the head is in, so this also bounds the handshake.
//! - **Idle limit** (60 s): a connection that moves no byte in either direction reads as closed, so
//!   hyper drops it. The limit stays under upgraded WebSockets too; their pings (`--ping-interval`)
//!   keep live sockets busy and the 4408 rule ends silent ones first, as long as the limit is at least
//!   `--idle-close`, which the gateway ensures.
//!
//! hyper's own `header_read_timeout` starts whenever hyper waits for a head, which on a keep-alive
//! connection is right after the previous response: it would cut every idle keep-alive connection
//! after 10 s. The gateway wants the usual pairing instead (idle limit between requests, header limit
//! once a request has begun), so the service tells the stream where the request cycle is through a
//! shared [`RequestCycle`]. Both run on the connection's task; the atomics only make it `Send`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The two limits a [`TimedStream`] enforces.
#[derive(Clone, Copy, Debug)]
pub struct ConnTimeouts {
    pub idle: Duration,
    pub header_read: Duration,
}

/// Where one HTTP/1.1 connection is in its request cycle, written by the service and read by the
/// stream.
#[derive(Debug)]
pub struct RequestCycle(AtomicU8);

/// Between requests: the idle limit alone applies until the next request's first byte.
const BETWEEN_REQUESTS: u8 = 0;
/// A head is arriving: the header read timeout runs.
const READING_HEAD: u8 = 1;
/// The head is in and the service is answering.
const SERVING: u8 = 2;
/// Answered with `101`: the stream now carries a WebSocket, only the idle limit applies.
const UPGRADED: u8 = 3;

impl RequestCycle {
    /// A fresh connection: its first head's clock starts at the accept.
    pub fn new() -> Arc<RequestCycle> {
        Arc::new(RequestCycle(AtomicU8::new(READING_HEAD)))
    }

    /// hyper has parsed a head and called the service.
    pub fn request_started(&self) {
        self.0.store(SERVING, Ordering::Relaxed);
    }

    /// The service has its response; `upgraded` when it switches protocols.
    pub fn response_ready(&self, upgraded: bool) {
        self.0.store(if upgraded { UPGRADED } else { BETWEEN_REQUESTS }, Ordering::Relaxed);
    }

    fn reading_head(&self) -> bool {
        self.0.load(Ordering::Relaxed) == READING_HEAD
    }

    /// Bytes arrived: when that starts a new request, returns true.
    fn bytes_arrived(&self) -> bool {
        self.0.compare_exchange(BETWEEN_REQUESTS, READING_HEAD, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

/// A stream that reads as closed once either limit passes, and fails writes that stall past it.
pub struct TimedStream<S> {
    inner: S,
    limits: ConnTimeouts,
    cycle: Arc<RequestCycle>,
    last_traffic: Instant,
    head_started: Instant,
    /// Armed lazily at [`TimedStream::deadline`] when an operation would block; traffic only moves
    /// the instants, so a busy connection does not re-arm the timer on every read and write.
    timer: Pin<Box<Sleep>>,
}

impl<S> TimedStream<S> {
    pub fn new(inner: S, limits: ConnTimeouts, cycle: Arc<RequestCycle>) -> Self {
        let now = Instant::now();
        let deadline = now + limits.idle.min(limits.header_read);
        TimedStream {
            inner,
            limits,
            cycle,
            last_traffic: now,
            head_started: now,
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }

    fn deadline(&self) -> Instant {
        let idle = self.last_traffic + self.limits.idle;
        match self.cycle.reading_head() {
            true => idle.min(self.head_started + self.limits.header_read),
            false => idle,
        }
    }

    /// Whether a limit has passed; otherwise the timer is armed to wake the task when one does.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.deadline();
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
        self.timer.as_mut().poll(cx).is_ready()
    }

    fn read_some(&mut self) {
        let now = Instant::now();
        self.last_traffic = now;
        if self.cycle.bytes_arrived() {
            self.head_started = now;
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.read_some();
                }
                Poll::Ready(Ok(()))
            }
            // Nothing filled: hyper sees end-of-stream and closes the connection.
            Poll::Pending if self.expired(cx) => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.last_traffic = Instant::now();
                }
                Poll::Ready(Ok(n))
            }
            // A peer that stopped reading does not hold the connection forever.
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const LIMITS: ConnTimeouts = ConnTimeouts { idle: Duration::from_secs(60), header_read: Duration::from_secs(10) };

    fn pair() -> (DuplexStream, TimedStream<DuplexStream>, Arc<RequestCycle>) {
        let (client, server) = tokio::io::duplex(64);
        let cycle = RequestCycle::new();
        (client, TimedStream::new(server, LIMITS, cycle.clone()), cycle)
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_head_must_arrive_within_the_header_timeout_of_the_accept() {
        let (mut client, mut server, _cycle) = pair();
        let mut buf = [0u8; 8];
        let started = Instant::now();
        // A byte every 4 s never finishes a head; the limit counts from the accept, not per byte.
        let dribble = tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                if client.write_all(b"G").await.is_err() {
                    break;
                }
            }
            client
        });
        while server.read(&mut buf).await.unwrap() > 0 {}
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        drop(dribble);
    }

    #[tokio::test(start_paused = true)]
    async fn between_requests_only_the_idle_limit_applies_and_the_next_head_restarts_the_clock() {
        let (mut client, mut server, cycle) = pair();
        let mut buf = [0u8; 8];
        client.write_all(b"GET").await.unwrap();
        assert_eq!(server.read(&mut buf).await.unwrap(), 3);
        cycle.request_started();
        cycle.response_ready(false);
        // 50 s of keep-alive silence (over the header limit, under the idle one), then a new head
        // starts and must finish within 10 s of its first byte.
        tokio::time::sleep(Duration::from_secs(50)).await;
        client.write_all(b"G").await.unwrap();
        assert_eq!(server.read(&mut buf).await.unwrap(), 1);
        let head_started = Instant::now();
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
        assert_eq!(head_started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn while_serving_or_upgraded_only_the_idle_limit_applies() {
        for upgraded in [false, true] {
            let (mut client, mut server, cycle) = pair();
            let mut buf = [0u8; 8];
            cycle.request_started();
            if upgraded {
                cycle.response_ready(true);
            }
            // Traffic at 50 s moves the idle deadline to 110 s and does not start a head.
            tokio::time::sleep(Duration::from_secs(50)).await;
            client.write_all(b"hi").await.unwrap();
            assert_eq!(server.read(&mut buf).await.unwrap(), 2);
            let started = Instant::now();
            assert_eq!(server.read(&mut buf).await.unwrap(), 0, "end-of-stream after the limit");
            assert_eq!(started.elapsed(), Duration::from_secs(60), "upgraded={upgraded}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_reads_fails_after_the_idle_limit() {
        let (_client, mut server, cycle) = pair();
        cycle.request_started();
        let started = Instant::now();
        let err = server.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
    }
}
