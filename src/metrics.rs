//! Prometheus metrics (docs/deployment.md "Health, metrics, logs"), served at `/metrics`.
//!
//! One process-wide set, reached through [`metrics()`], so instrumenting a code path needs no plumbing.
//! Counters and histograms are updated where things happen; gauges that are sums over sessions
//! (variables, Lua memory, buffered backend messages) are kept by each session reporting its deltas;
//! the session count and the `process_*` figures are read at scrape time.

use std::sync::atomic::AtomicU64;
use std::sync::LazyLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A label set: `(name, value)` pairs.
pub type Labels = Vec<(&'static str, String)>;

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

/// The byte and count limits counted by `ui_limit_hits_total{limit=…}` (review H5, M2, M3).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Limit {
    /// Pongs owed to a browser that does not read passed `--max-outbound` (closed with 1013).
    OutboundPongs,
    /// `--max-properties` refused a new property.
    Properties,
    /// `--max-property-bytes` refused a property (or a path).
    PropertyBytes,
    /// `--max-session-bytes` refused a property or value write.
    SessionBytes,
    /// `--max-variables` refused a Lua `createVariable`.
    Variables,
    /// `--backend-queue-bytes` closed a backend that reads too slowly (1013).
    BackendQueueBytes,
    /// `--backend-buffer-bytes` dropped a buffered outage message.
    BackendBufferBytes,
    /// A session's backend overflow was full: a backend batch for it was dropped.
    BackendOverflow,
}

impl Limit {
    pub const ALL: [Limit; 8] = [
        Limit::OutboundPongs,
        Limit::Properties,
        Limit::PropertyBytes,
        Limit::SessionBytes,
        Limit::Variables,
        Limit::BackendQueueBytes,
        Limit::BackendBufferBytes,
        Limit::BackendOverflow,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Limit::OutboundPongs => "outbound-pongs",
            Limit::Properties => "properties",
            Limit::PropertyBytes => "property-bytes",
            Limit::SessionBytes => "session-bytes",
            Limit::Variables => "variables",
            Limit::BackendQueueBytes => "backend-queue-bytes",
            Limit::BackendBufferBytes => "backend-buffer-bytes",
            Limit::BackendOverflow => "backend-overflow",
        }
    }
}

/// Every metric of the gateway.
pub struct Metrics {
    registry: Registry,
    build_info: Family<Labels, Gauge>,
    pub sessions: Gauge,
    pub sessions_created: Counter,
    sessions_destroyed: Family<Labels, Counter>,
    sessions_rejected: Family<Labels, Counter>,
    pub admission_clients: Gauge,
    http_refused: Family<Labels, Counter>,
    connections: Family<Labels, Gauge>,
    connections_closed: Family<Labels, Counter>,
    connections_refused: Family<Labels, Counter>,
    frames_received: Family<Labels, Counter>,
    frames_sent: Family<Labels, Counter>,
    bytes_received: Family<Labels, Counter>,
    bytes_sent: Family<Labels, Counter>,
    messages_received: Family<Labels, Counter>,
    errors_sent: Family<Labels, Counter>,
    batch_duration: Family<Labels, Histogram>,
    variables: Family<Labels, Gauge>,
    pub lua_memory: Gauge,
    lua_limit_hits: Family<Labels, Counter>,
    pub backend_connected: Gauge,
    /// Connected backend workers, those draining, and the sessions pinned to any worker.
    pub backend_workers: Gauge,
    pub backend_draining: Gauge,
    pub backend_pinned: Gauge,
    /// Sessions handed from one worker to another (`reason`: worker-gone, grace-over, reclaimed).
    backend_handovers: Family<Labels, Counter>,
    /// Sessions pinned to each connected worker, by worker label.
    backend_worker_sessions: Family<Labels, Gauge>,
    pub backend_buffered: Gauge,
    pub backend_dropped: Counter,
    /// Mailbox items that left their `ui-lua` worker after running past the slice.
    pub lua_escapes: Counter,
    /// Mailbox items being handled right now (threads busy with session work).
    pub lua_running: Gauge,
    /// Sessions ended because one item overran the watchdog.
    pub lua_watchdog: Counter,
    lua_worker_busy: Family<Labels, Gauge<f64, AtomicU64>>,
    lua_queue_depth: Gauge,
    limit_hits: Family<Labels, Counter>,
    /// The tracker's refusal counts as of the last scrape, by `TrackerLimit` order.
    tracker_limits_seen: [AtomicU64; 3],
    resident_memory: Gauge,
    open_fds: Gauge,
    start_time: Gauge<f64, AtomicU64>,
    cpu_seconds: Counter<f64, AtomicU64>,
    /// `--registry`: Redis failures by operation (each one fell back, none stopped a session).
    registry_errors: Family<Labels, Counter>,
    /// `--registry`: 1 while Redis answers.
    pub registry_up: Gauge,
    /// Sessions re-created from the registry at startup.
    pub sessions_restored: Counter,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

impl Metrics {
    fn new() -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            build_info: Default::default(),
            sessions: Default::default(),
            sessions_created: Default::default(),
            sessions_destroyed: Default::default(),
            sessions_rejected: Default::default(),
            admission_clients: Default::default(),
            http_refused: Default::default(),
            connections: Default::default(),
            connections_closed: Default::default(),
            connections_refused: Default::default(),
            frames_received: Default::default(),
            frames_sent: Default::default(),
            bytes_received: Default::default(),
            bytes_sent: Default::default(),
            messages_received: Default::default(),
            errors_sent: Default::default(),
            // 0.1 ms … 2.5 s.
            batch_duration: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0001, 2.75, 11))),
            variables: Default::default(),
            lua_memory: Default::default(),
            lua_limit_hits: Default::default(),
            backend_connected: Default::default(),
            backend_workers: Default::default(),
            backend_draining: Default::default(),
            backend_pinned: Default::default(),
            backend_handovers: Default::default(),
            backend_worker_sessions: Default::default(),
            backend_buffered: Default::default(),
            backend_dropped: Default::default(),
            lua_escapes: Default::default(),
            lua_running: Default::default(),
            lua_watchdog: Default::default(),
            lua_worker_busy: Default::default(),
            lua_queue_depth: Default::default(),
            limit_hits: Default::default(),
            tracker_limits_seen: Default::default(),
            resident_memory: Default::default(),
            open_fds: Default::default(),
            start_time: Default::default(),
            cpu_seconds: Default::default(),
            registry_errors: Default::default(),
            registry_up: Default::default(),
            sessions_restored: Default::default(),
            registry: Registry::default(),
        };
        r.register("ui_build_info", "Build information (value 1)", m.build_info.clone());
        r.register("ui_sessions", "Live sessions", m.sessions.clone());
        r.register("ui_sessions_created", "Sessions created", m.sessions_created.clone());
        r.register(
            "ui_sessions_restored",
            "Sessions re-created from the registry at startup",
            m.sessions_restored.clone(),
        );
        r.register(
            "ui_registry_errors",
            "Registry (Redis) failures by operation; the gateway fell back and served on",
            m.registry_errors.clone(),
        );
        r.register("ui_registry_up", "1 while the registry (Redis) answers", m.registry_up.clone());
        r.register("ui_sessions_destroyed", "Sessions destroyed, by reason", m.sessions_destroyed.clone());
        r.register(
            "ui_sessions_rejected",
            "Session creations refused, by reason (capacity, memory, client-cap, rate)",
            m.sessions_rejected.clone(),
        );
        r.register(
            "ui_admission_clients",
            "Clients the admission table remembers (bounded)",
            m.admission_clients.clone(),
        );
        r.register(
            "ui_http_refused",
            "HTTP requests refused: unknown Host (reason host), cross-site DELETE (reason origin)",
            m.http_refused.clone(),
        );
        r.register("ui_connections", "Open WebSocket connections", m.connections.clone());
        r.register(
            "ui_connections_closed",
            "WebSocket connections closed, by close code",
            m.connections_closed.clone(),
        );
        r.register("ui_connections_refused", "WebSocket connections refused", m.connections_refused.clone());
        r.register("ui_frames_received", "WebSocket frames received", m.frames_received.clone());
        r.register("ui_frames_sent", "WebSocket frames sent", m.frames_sent.clone());
        r.register("ui_bytes_received", "WebSocket payload bytes received", m.bytes_received.clone());
        r.register("ui_bytes_sent", "WebSocket payload bytes sent", m.bytes_sent.clone());
        r.register("ui_messages_received", "Protocol messages received, by type", m.messages_received.clone());
        r.register("ui_errors_sent", "Error messages sent to browsers, by code", m.errors_sent.clone());
        r.register("ui_batch_duration_seconds", "Time to process one inbound batch", m.batch_duration.clone());
        r.register("ui_variables", "Variables in all sessions, by owner", m.variables.clone());
        r.register("ui_lua_memory_bytes", "Lua heap in use, all sessions", m.lua_memory.clone());
        r.register("ui_lua_limit_hits", "Lua limit violations", m.lua_limit_hits.clone());
        r.register("ui_backend_connected", "1 while a backend is connected", m.backend_connected.clone());
        r.register("ui_backend_workers", "Connected backend workers", m.backend_workers.clone());
        r.register(
            "ui_backend_draining_workers",
            "Connected backend workers that are draining",
            m.backend_draining.clone(),
        );
        r.register("ui_backend_pinned_sessions", "Sessions pinned to a backend worker", m.backend_pinned.clone());
        r.register(
            "ui_backend_handovers",
            "Sessions handed from one backend worker to another, by reason",
            m.backend_handovers.clone(),
        );
        r.register(
            "ui_backend_worker_sessions",
            "Sessions pinned to each backend worker",
            m.backend_worker_sessions.clone(),
        );
        r.register(
            "ui_backend_buffered_messages",
            "Messages buffered for an absent backend",
            m.backend_buffered.clone(),
        );
        r.register("ui_backend_buffer_dropped", "Buffered backend messages dropped", m.backend_dropped.clone());
        r.register(
            "ui_lua_escapes",
            "Session mailbox items that ran past the slice and left their worker to its other sessions",
            m.lua_escapes.clone(),
        );
        r.register("ui_lua_running", "Session mailbox items being handled now", m.lua_running.clone());
        r.register(
            "ui_lua_watchdog",
            "Sessions ended because one mailbox item overran --lua-watchdog",
            m.lua_watchdog.clone(),
        );
        r.register(
            "ui_lua_worker_busy_seconds",
            "Time each session-runtime worker spent running sessions",
            m.lua_worker_busy.clone(),
        );
        r.register(
            "ui_lua_queue_depth",
            "Session tasks ready to run but waiting for a session-runtime worker",
            m.lua_queue_depth.clone(),
        );
        r.register(
            "ui_limit_hits",
            "Byte and count limits that refused, dropped or closed something, by limit",
            m.limit_hits.clone(),
        );
        r.register("process_resident_memory_bytes", "Resident memory", m.resident_memory.clone());
        r.register("process_open_fds", "Open file descriptors", m.open_fds.clone());
        r.register("process_start_time_seconds", "Start time since the epoch", m.start_time.clone());
        r.register("process_cpu_seconds", "CPU time used", m.cpu_seconds.clone());
        // Known series start at zero, so every family is visible before its first event.
        for reason in ["timeout", "unclaimed", "shutdown", "destroyed", "ended", "evicted", "watchdog", "failed"] {
            let _ = m.sessions_destroyed.get_or_create(&labels(&[("reason", reason)]));
        }
        for reason in ["capacity", "memory", "client-cap", "rate"] {
            let _ = m.sessions_rejected.get_or_create(&labels(&[("reason", reason)]));
        }
        for reason in ["host", "origin"] {
            let _ = m.http_refused.get_or_create(&labels(&[("reason", reason)]));
        }
        for kind in ["browser", "backend"] {
            let k = labels(&[("kind", kind)]);
            let _ = m.connections.get_or_create(&k);
            for f in [&m.frames_received, &m.frames_sent, &m.bytes_received, &m.bytes_sent] {
                let _ = f.get_or_create(&k);
            }
            let _ = m.connections_closed.get_or_create(&labels(&[("kind", kind), ("code", "1000")]));
        }
        for reason in ["origin", "unknown-session", "connection-limit"] {
            let _ = m.connections_refused.get_or_create(&labels(&[("kind", "browser"), ("reason", reason)]));
        }
        for reason in ["token", "not-local", "busy"] {
            let _ = m.connections_refused.get_or_create(&labels(&[("kind", "backend"), ("reason", reason)]));
        }
        for source in ["browser", "backend", "timer"] {
            let _ = m.batch_duration.get_or_create(&labels(&[("source", source)]));
        }
        for owner in ["lua", "remote"] {
            let _ = m.variables.get_or_create(&labels(&[("owner", owner)]));
        }
        for limit in ["memory", "instructions", "time", "library"] {
            let _ = m.lua_limit_hits.get_or_create(&labels(&[("limit", limit)]));
        }
        for limit in Limit::ALL {
            let _ = m.limit_hits.get_or_create(&labels(&[("limit", limit.as_str())]));
        }
        Metrics { registry: r, ..m }
    }

    pub fn set_build_info(&self, mode: &str) {
        self.build_info.get_or_create(&labels(&[("version", env!("CARGO_PKG_VERSION")), ("mode", mode)])).set(1);
    }

    /// A registry (Redis) call failed during `op`.
    pub fn registry_error(&self, op: &str) {
        self.registry_errors.get_or_create(&labels(&[("op", op)])).inc();
    }

    pub fn session_destroyed(&self, reason: &str) {
        self.sessions_destroyed.get_or_create(&labels(&[("reason", reason)])).inc();
    }

    /// A `GET /` refused; `reason` is [`CreateError::reason`](crate::session::manager::CreateError::reason).
    pub fn session_rejected(&self, reason: &str) {
        self.sessions_rejected.get_or_create(&labels(&[("reason", reason)])).inc();
    }

    /// A request refused before routing (`host`: a `Host` that is not ours, DNS rebinding).
    pub fn http_refused(&self, reason: &str) {
        self.http_refused.get_or_create(&labels(&[("reason", reason)])).inc();
    }

    pub fn connection_opened(&self, kind: &str) {
        self.connections.get_or_create(&labels(&[("kind", kind)])).inc();
    }

    /// A connection of `kind` closed with `code` (known codes by number, else `other`).
    pub fn connection_closed(&self, kind: &str, code: u16) {
        self.connections.get_or_create(&labels(&[("kind", kind)])).dec();
        let known = matches!(code, 1000 | 1001 | 1002 | 1006 | 1007 | 1009 | 1011 | 1013 | 4404 | 4408 | 4409 | 4429);
        let code = if known { code.to_string() } else { "other".to_string() };
        self.connections_closed.get_or_create(&vec![("kind", kind.to_string()), ("code", code)]).inc();
    }

    pub fn connection_refused(&self, kind: &str, reason: &str) {
        self.connections_refused.get_or_create(&labels(&[("kind", kind), ("reason", reason)])).inc();
    }

    pub fn frame_received(&self, kind: &str, bytes: usize) {
        let l = labels(&[("kind", kind)]);
        self.frames_received.get_or_create(&l).inc();
        self.bytes_received.get_or_create(&l).inc_by(bytes as u64);
    }

    pub fn frame_sent(&self, kind: &str, bytes: usize) {
        let l = labels(&[("kind", kind)]);
        self.frames_sent.get_or_create(&l).inc();
        self.bytes_sent.get_or_create(&l).inc_by(bytes as u64);
    }

    pub fn message_received(&self, kind: &str, ty: &str) {
        self.messages_received.get_or_create(&labels(&[("kind", kind), ("type", ty)])).inc();
    }

    pub fn error_sent(&self, code: &str) {
        self.errors_sent.get_or_create(&labels(&[("code", code)])).inc();
    }

    /// `source`: `browser`, `backend` or `timer`.
    pub fn batch_done(&self, source: &str, seconds: f64) {
        self.batch_duration.get_or_create(&labels(&[("source", source)])).observe(seconds);
    }

    /// Adds a session's change in its variable counts.
    pub fn variables_delta(&self, owner: &str, delta: i64) {
        if delta != 0 {
            self.variables.get_or_create(&labels(&[("owner", owner)])).inc_by(delta);
        }
    }

    /// A session moved to another backend worker (`reason`: `worker-gone`, `grace-over`).
    pub fn backend_handover(&self, reason: &'static str) {
        self.backend_handovers.get_or_create(&labels(&[("reason", reason)])).inc();
    }

    /// Sessions pinned to worker `label` (`None`: the worker left, its series goes).
    pub fn backend_worker_sessions(&self, label: &str, sessions: Option<usize>) {
        let key = labels(&[("worker", label)]);
        match sessions {
            Some(n) => {
                self.backend_worker_sessions.get_or_create(&key).set(n as i64);
            }
            None => {
                self.backend_worker_sessions.remove(&key);
            }
        }
    }

    pub fn limit_hit(&self, limit: Limit) {
        self.limit_hits.get_or_create(&labels(&[("limit", limit.as_str())])).inc();
    }

    pub fn lua_limit_hit(&self, limit: &str) {
        self.lua_limit_hits.get_or_create(&labels(&[("limit", limit)])).inc();
    }

    /// The session runtime's scrape-time figures: busy time per worker and the shared queue's depth.
    pub fn lua_runtime(&self, rt: &tokio::runtime::RuntimeMetrics) {
        for worker in 0..rt.num_workers() {
            let busy = rt.worker_total_busy_duration(worker).as_secs_f64();
            self.lua_worker_busy.get_or_create(&labels(&[("worker", &worker.to_string())])).set(busy);
        }
        self.lua_queue_depth.set(rt.global_queue_depth() as i64);
    }

    /// The text exposition, with the scrape-time gauges refreshed.
    pub fn render(&self, live_sessions: usize) -> String {
        self.sessions.set(live_sessions as i64);
        self.refresh_process();
        self.refresh_tracker_limits();
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// Adds the tracker's refusals since the last scrape (the tracker crate counts them itself; it has
    /// no metrics of its own).
    fn refresh_tracker_limits(&self) {
        use ui_gateway_tracker::TrackerLimit;
        for (i, limit) in TrackerLimit::ALL.into_iter().enumerate() {
            let total = ui_gateway_tracker::limit_hits(limit);
            let seen = self.tracker_limits_seen[i].swap(total, std::sync::atomic::Ordering::Relaxed);
            let ours = match limit {
                TrackerLimit::Properties => Limit::Properties,
                TrackerLimit::PropertyBytes => Limit::PropertyBytes,
                TrackerLimit::SessionBytes => Limit::SessionBytes,
            };
            if total > seen {
                self.limit_hits.get_or_create(&labels(&[("limit", ours.as_str())])).inc_by(total - seen);
            }
        }
    }

    fn refresh_process(&self) {
        let page = 4096.0;
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            if let Some(rss) = statm.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()) {
                self.resident_memory.set((rss * page) as i64);
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(dir.count() as i64);
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name (which may contain spaces): utime 14, stime 15, starttime 22.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = 100.0;
            let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            let used = (num(14) + num(15)) / ticks;
            let seen = self.cpu_seconds.get();
            if used > seen {
                self.cpu_seconds.inc_by(used - seen);
            }
            let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
                s.lines().find(|l| l.starts_with("btime ")).and_then(|l| l[6..].trim().parse::<f64>().ok())
            });
            if let Some(boot) = boot {
                self.start_time.set(boot + num(22) / ticks);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exposed() {
        let m = metrics();
        m.set_build_info("embedded");
        m.frame_received("browser", 10);
        let text = m.render(3);
        for name in [
            "ui_build_info",
            "ui_sessions 3",
            "ui_sessions_created_total",
            "ui_frames_received_total{kind=\"browser\"}",
            "ui_bytes_received_total{kind=\"browser\"}",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_cpu_seconds",
            "ui_limit_hits_total{limit=\"session-bytes\"}",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
