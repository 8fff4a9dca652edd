//! A live system dashboard in hybrid mode: Lua owns the UI (`site/lua/main.lua`), this backend pushes
//! live data into it through client variables and watches the Lua-owned `paused` flag.
//!
//! ```text
//! ui-gateway --mode hybrid --site examples/dashboard_backend/site
//! cargo run -p ui-gateway-client --example dashboard
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;
use ui_gateway_client::{Access, Client, ClientError, Root, Session, VarId};

/// One session's feed: the client variables it writes and the pause flag it watches.
pub struct Dashboard {
    cpu: VarId,
    memory: VarId,
    load: VarId,
    processes: VarId,
    samples: VarId,
    paused: Rc<Cell<bool>>,
    count: u64,
    /// (busy, total) jiffies at the previous sample, for the CPU percentage.
    last_cpu: Option<(u64, u64)>,
}

impl Root for Dashboard {}

impl Dashboard {
    /// Reads the system's numbers and writes them into the Lua dashboard (unless paused).
    fn sample(&mut self, session: &mut Session) {
        if self.paused.get() {
            return;
        }
        self.count += 1;
        let now = cpu_jiffies();
        if let (Some((b0, t0)), Some((b1, t1))) = (self.last_cpu, now) {
            let percent = if t1 > t0 { 100.0 * (b1 - b0) as f64 / (t1 - t0) as f64 } else { 0.0 };
            session.write(self.cpu, (percent * 10.0).round() / 10.0);
        }
        self.last_cpu = now;
        session.write(self.memory, memory_used_percent());
        session.write(self.load, read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "));
        session.write(self.processes, process_count());
        session.write(self.samples, self.count);
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Busy and total jiffies from the first line of `/proc/stat`.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = read("/proc/stat");
    let fields: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
    let total: u64 = fields.iter().sum();
    Some((total - idle, total))
}

fn memory_used_percent() -> f64 {
    let info = read("/proc/meminfo");
    let field = |name: &str| -> f64 {
        let line = info.lines().find(|l| l.starts_with(name)).unwrap_or("");
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0.0)
    };
    let (total, available) = (field("MemTotal:"), field("MemAvailable:"));
    if total > 0.0 {
        (1000.0 * (total - available) / total).round() / 10.0
    } else {
        0.0
    }
}

/// Numeric directories of `/proc` (at least this process).
fn process_count() -> usize {
    let dirs = std::fs::read_dir("/proc").map(|d| {
        d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit())).count()
    });
    dirs.unwrap_or(0).max(1)
}

/// Per session: create the client variables under the Lua dashboard (variable 1), watch `paused`,
/// take a first sample at once and one every second until the session is gone.
pub fn app(session: &mut Session) -> Dashboard {
    let mut var = |path: &str| session.client_var(VarId::APP, path, Access::Rw, false);
    let (cpu, memory, load, processes, samples) =
        (var("cpu"), var("memory"), var("load"), var("processes"), var("samples"));
    let paused = Rc::new(Cell::new(false));
    let watched = session.client_var(VarId::APP, "paused", Access::R, true);
    let flag = paused.clone();
    session.on_value(watched, move |v, _| flag.set(v == &Value::Bool(true)));
    let mut dashboard = Dashboard { cpu, memory, load, processes, samples, paused, count: 0, last_cpu: None };
    dashboard.sample(session);
    let handle = session.handle::<Dashboard>();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            if handle.run(|dashboard, session| dashboard.sample(session)).is_err() {
                break;
            }
        }
    });
    dashboard
}

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    tracing_subscriber::fmt::init();
    Client::from_env().hybrid(app).run().await
}
