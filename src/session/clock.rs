//! Activity bookkeeping shared between a session's connections and the manager's sweep.
//!
//! Connection tasks stamp every frame here without messaging the session, so the expiry sweep can
//! decide from atomics alone and never waits on a busy session's mailbox.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use tokio::sync::Notify;

use tokio::time::Instant;

/// A monotonic millisecond clock anchored at gateway start (tokio time, so tests can pause it).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock { base: Instant::now() }
    }

    pub fn now_ms(&self) -> u64 {
        Instant::now().saturating_duration_since(self.base).as_millis() as u64
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-session activity: last frame, open connections, whether a browser ever sent a real frame.
#[derive(Debug)]
pub struct Activity {
    clock: Clock,
    created_ms: u64,
    last_active_ms: AtomicU64,
    open_connections: AtomicUsize,
    claimed: AtomicBool,
    /// When the session began its current mailbox item ([`busy_clock`] nanoseconds + 1), 0 when idle:
    /// the watchdog reads it without asking the (possibly stuck) session.
    busy_since: AtomicU64,
    /// The session's task failed (a panic): the watchdog takes it out of the table.
    failed: AtomicBool,
    /// Set once when the session is ended in a way its own task may not get to act on (watchdog,
    /// failure): its connections close themselves with [`EndSignal`]'s code.
    end: std::sync::OnceLock<EndSignal>,
    ended: Notify,
}

/// How the connections of a session ended from outside close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndSignal {
    pub code: u16,
    pub reason: &'static str,
}

/// The process-wide monotonic anchor of busy stamps (real time, never paused: it measures how long a
/// thread has really been busy).
fn busy_clock() -> u64 {
    static ANCHOR: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);
    u64::try_from(ANCHOR.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
}

/// Why a session is ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// Idle past `--session-timeout`.
    Timeout,
    /// No browser frame (a WebSocket alone does not count) within `--unclaimed-timeout`.
    Unclaimed,
    /// Gateway shutdown.
    Shutdown,
    /// Destroyed through the API.
    Destroyed,
    /// Ended by its holder: `DELETE /<id>` (docs/deployment.md "HTTP routes"), e.g. the load generator
    /// cleaning up after a run. Its own reason so that operators can tell it from expiry and eviction.
    Ended,
    /// One mailbox item ran past `--lua-watchdog`.
    Watchdog,
    /// The session's task failed (a bug: a panic while handling an item).
    Failed,
    /// The session table was full and this was the least recently active session without a
    /// connection: it made room for a new one.
    Evicted,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Timeout => "timeout",
            EndReason::Unclaimed => "unclaimed",
            EndReason::Shutdown => "shutdown",
            EndReason::Destroyed => "destroyed",
            EndReason::Ended => "ended",
            EndReason::Watchdog => "watchdog",
            EndReason::Failed => "failed",
            EndReason::Evicted => "evicted",
        }
    }
}

impl Activity {
    pub fn new(clock: Clock) -> Self {
        let now = clock.now_ms();
        Activity {
            clock,
            created_ms: now,
            last_active_ms: AtomicU64::new(now),
            open_connections: AtomicUsize::new(0),
            claimed: AtomicBool::new(false),
            busy_since: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            end: std::sync::OnceLock::new(),
            ended: Notify::new(),
        }
    }

    /// The session starts handling a mailbox item.
    pub fn item_started(&self) {
        self.busy_since.store(busy_clock() + 1, Ordering::Relaxed);
    }

    pub fn item_done(&self) {
        self.busy_since.store(0, Ordering::Relaxed);
    }

    /// How long the current item has been running, if one is.
    pub fn busy_for(&self) -> Option<Duration> {
        match self.busy_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(Duration::from_nanos(busy_clock().saturating_sub(since - 1))),
        }
    }

    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Ends the session's connections from outside its task (first call wins).
    pub fn signal_end(&self, signal: EndSignal) {
        if self.end.set(signal).is_ok() {
            self.ended.notify_waiters();
        }
    }

    /// Resolves once [`Activity::signal_end`] was called, with its signal.
    pub async fn ended(&self) -> EndSignal {
        loop {
            let notified = self.ended.notified();
            if let Some(signal) = self.end.get() {
                return *signal;
            }
            notified.await;
        }
    }

    /// Any frame, open or close counts as activity.
    pub fn touch(&self) {
        self.last_active_ms.store(self.clock.now_ms(), Ordering::Relaxed);
    }

    /// A browser frame that parsed arrived: the session is in real use, so from now on it lives for
    /// `--session-timeout` instead of `--unclaimed-timeout`. Opening (and closing) a socket alone does
    /// not claim a session (security review H6: that kept flooded sessions alive for 24 h).
    pub fn claim(&self) {
        if !self.claimed.load(Ordering::Relaxed) {
            self.claimed.store(true, Ordering::Relaxed);
        }
    }

    pub fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Relaxed)
    }

    /// When the last frame, open or close happened (the gateway clock's milliseconds); the manager
    /// evicts the session where this is lowest.
    pub fn last_active_ms(&self) -> u64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }

    pub fn connection_opened(&self) {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    pub fn connection_closed(&self) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Relaxed)
    }

    pub fn age(&self) -> Duration {
        Duration::from_millis(self.clock.now_ms().saturating_sub(self.created_ms))
    }

    /// Whether the session should end now, and why. A session with an open connection never expires;
    /// a zero timeout means never.
    pub fn expired(&self, session_timeout: Duration, unclaimed_timeout: Duration) -> Option<EndReason> {
        if self.open_connections() > 0 {
            return None;
        }
        let idle =
            Duration::from_millis(self.clock.now_ms().saturating_sub(self.last_active_ms.load(Ordering::Relaxed)));
        if !self.claimed.load(Ordering::Relaxed) {
            let limit = if unclaimed_timeout.is_zero() { session_timeout } else { unclaimed_timeout };
            let reason = if unclaimed_timeout.is_zero() { EndReason::Timeout } else { EndReason::Unclaimed };
            return (!limit.is_zero() && idle >= limit).then_some(reason);
        }
        (!session_timeout.is_zero() && idle >= session_timeout).then_some(EndReason::Timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expiry_rules() {
        let a = Activity::new(Clock::new());
        let (t, u) = (Duration::from_secs(100), Duration::from_secs(10));
        assert_eq!(a.expired(t, u), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(a.expired(t, u), Some(EndReason::Unclaimed));
        a.connection_opened();
        tokio::time::advance(Duration::from_secs(1000)).await;
        assert_eq!(a.expired(t, u), None, "an open connection never expires");
        a.claim();
        a.connection_closed();
        tokio::time::advance(Duration::from_secs(99)).await;
        assert_eq!(a.expired(t, u), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(a.expired(t, u), Some(EndReason::Timeout));
        assert_eq!(a.expired(Duration::ZERO, u), None, "0 = never");
    }

    #[tokio::test]
    async fn end_signal_reaches_waiters_once() {
        let a = std::sync::Arc::new(Activity::new(Clock::new()));
        let waiter = tokio::spawn({
            let a = a.clone();
            async move { a.ended().await }
        });
        tokio::task::yield_now().await;
        a.signal_end(EndSignal { code: 1011, reason: "first" });
        a.signal_end(EndSignal { code: 1000, reason: "second" });
        assert_eq!(waiter.await.unwrap(), EndSignal { code: 1011, reason: "first" });
        assert_eq!(a.ended().await.reason, "first", "a late waiter sees it too");
        assert_eq!(a.busy_for(), None);
        a.item_started();
        assert!(a.busy_for().is_some());
        a.item_done();
        assert_eq!(a.busy_for(), None);
    }

    /// Security review H6: a socket that opened and closed without a real frame does not claim.
    #[tokio::test(start_paused = true)]
    async fn only_a_real_frame_claims() {
        let a = Activity::new(Clock::new());
        let (t, u) = (Duration::from_secs(100), Duration::from_secs(10));
        a.connection_opened();
        a.connection_closed();
        assert!(!a.is_claimed());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(a.expired(t, u), Some(EndReason::Unclaimed));
        a.claim();
        assert!(a.is_claimed());
        assert_eq!(a.expired(t, u), None);
    }

    #[tokio::test(start_paused = true)]
    async fn unclaimed_zero_uses_the_session_timeout() {
        let a = Activity::new(Clock::new());
        tokio::time::advance(Duration::from_secs(50)).await;
        assert_eq!(a.expired(Duration::from_secs(60), Duration::ZERO), None);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(a.expired(Duration::from_secs(60), Duration::ZERO), Some(EndReason::Timeout));
    }
}
