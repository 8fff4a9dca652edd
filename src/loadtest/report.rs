//! The loadtest report: one JSON object (`--json`) or a human-readable table.

use std::fmt::Write as _;

use serde::Serialize;

use super::stats::{Latency, Tally};

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub target: String,
    pub scenario: String,
    pub sessions: SessionsReport,
    pub actions: ActionsReport,
    pub frames: FramesReport,
    /// Every `error` message received, by code.
    pub errors: Tally,
    /// Server memory, with `--pid`.
    pub rss: Option<RssReport>,
    /// (failed sessions + failed actions) ÷ (sessions + actions attempted).
    pub error_rate: f64,
    pub max_error_rate: f64,
    pub passed: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct SessionsReport {
    pub requested: usize,
    pub established: usize,
    pub failed: usize,
    /// Failed set-ups by cause: `http-<status>`, `close-<code>`, `error-<code>`, `timeout`, `connect`, `protocol`.
    pub failures: Tally,
    /// First start to last set-up completion.
    pub setup_seconds: f64,
    /// Established ÷ set-up duration.
    pub per_second: f64,
    /// `GET /` to the observed binding's first update.
    pub setup_latency: Latency,
    /// Established sessions whose socket closed before the end (by `close-<code>` …).
    pub lost: Tally,
    /// Tabs that reconnected after a drop, as the frontend does, by the drop's cause (`close-1001` …).
    pub reconnects: Tally,
    /// What became of the sessions at the end (`DELETE /<id>`, or kept with `--keep-sessions`).
    pub removal: RemovalReport,
}

/// The clean-up at the end of a run: every session `GET /` handed out (established or not) is either
/// removed, found already gone, kept (`--keep-sessions`), or failed to be removed (by cause, as the
/// set-up failures). Not part of the error rate: the load was measured before.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RemovalReport {
    /// `DELETE /<id>` answered `204`.
    pub removed: usize,
    /// `DELETE /<id>` answered `404`: the server had ended it already (eviction, expiry).
    pub already_gone: usize,
    /// Left on the server on purpose (`--keep-sessions`).
    pub kept: usize,
    /// `http-<status>`, `timeout`, `connect`.
    pub failures: Tally,
}

#[derive(Clone, Debug, Serialize)]
pub struct ActionsReport {
    pub per_session: usize,
    pub interval_ms: f64,
    pub attempted: u64,
    pub completed: u64,
    pub failed: u64,
    pub failures: Tally,
    pub seconds: f64,
    pub per_second: f64,
    /// Action frame sent → frame updating the observed binding received.
    pub round_trip: Latency,
}

#[derive(Clone, Debug, Serialize)]
pub struct FramesReport {
    pub sent: u64,
    pub received: u64,
    /// Frames sent + received per second during the action phase.
    pub per_second: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RssReport {
    pub pid: u32,
    pub before_kib: u64,
    pub after_setup_kib: u64,
    pub after_actions_kib: u64,
    /// (after set-up − before) ÷ established.
    pub per_session_kib: f64,
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

impl Report {
    /// The human-readable table.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let s_ = &self.sessions;
        let a = &self.actions;
        let _ = writeln!(s, "ui-gateway loadtest: {} (scenario: {})", self.target, self.scenario);
        let _ = writeln!(
            s,
            "sessions     {} requested, {} established, {} failed ({})",
            s_.requested,
            s_.established,
            s_.failed,
            s_.failures.describe()
        );
        let _ = writeln!(
            s,
            "set-up       {:.0} sessions/s over {:.2} s; latency p50 {}  p99 {}  max {}",
            s_.per_second,
            s_.setup_seconds,
            ms(s_.setup_latency.p50_ms),
            ms(s_.setup_latency.p99_ms),
            ms(s_.setup_latency.max_ms)
        );
        let _ = writeln!(
            s,
            "actions      {} attempted, {} completed, {} failed ({}); {:.0}/s over {:.2} s",
            a.attempted,
            a.completed,
            a.failed,
            a.failures.describe(),
            a.per_second,
            a.seconds
        );
        let r = &a.round_trip;
        let _ = writeln!(
            s,
            "round trip   p50 {}  p90 {}  p99 {}  max {}  (mean {}, {} samples)",
            ms(r.p50_ms),
            ms(r.p90_ms),
            ms(r.p99_ms),
            ms(r.max_ms),
            ms(r.mean_ms),
            r.samples
        );
        let _ = writeln!(
            s,
            "frames       {} sent, {} received; {:.0} frames/s during actions",
            self.frames.sent, self.frames.received, self.frames.per_second
        );
        let _ = writeln!(s, "errors       {}", self.errors.describe());
        let rm = &s_.removal;
        if rm.kept > 0 {
            let _ = writeln!(s, "clean-up     {} sessions kept on the server (--keep-sessions)", rm.kept);
        } else {
            let _ = writeln!(
                s,
                "clean-up     {} sessions removed, {} already gone, {} not removed ({})",
                rm.removed,
                rm.already_gone,
                rm.failures.total(),
                rm.failures.describe()
            );
        }
        if !s_.lost.is_empty() {
            let _ = writeln!(s, "lost         {}", s_.lost.describe());
        }
        if !s_.reconnects.is_empty() {
            let _ = writeln!(s, "reconnects   {} ({})", s_.reconnects.total(), s_.reconnects.describe());
        }
        if let Some(rss) = &self.rss {
            let _ = writeln!(
                s,
                "server RSS   {:.1} KiB per session (pid {}: {} before, {} after set-up, {} after actions)",
                rss.per_session_kib,
                rss.pid,
                mib(rss.before_kib),
                mib(rss.after_setup_kib),
                mib(rss.after_actions_kib)
            );
        }
        let _ = writeln!(
            s,
            "result       {} (error rate {:.4}, limit {})",
            if self.passed { "ok" } else { "FAILED" },
            self.error_rate,
            self.max_error_rate
        );
        s
    }
}
