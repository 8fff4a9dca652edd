//! Connected-mode relay throughput against a plain WebSocket echo, in the same run and process.
//!
//! Both servers run on the same kind of runtime (tokio multi-thread, one worker per core) and are driven
//! by the same closed-loop client: C connections, each sending one frame and waiting for the next frame
//! back before sending again, for D seconds. The figure is frames answered per second.
//!
//! - **echo**: a tokio-tungstenite server that sends every text frame back unchanged.
//! - **relay**: the gateway in connected mode serving `examples/counter_backend/site`, with the Rust
//!   counter backend (`examples/counter_backend`) on its own thread; each browser frame invokes
//!   `increment()` (a user event), which the gateway relays to the backend, whose `count` update comes
//!   back through the gateway to the browser.
//!
//! Target: relay ≥ 50 % of echo. `cargo bench --bench relay` (env `RELAY_CONNECTIONS`, `RELAY_SECONDS`,
//! `RELAY_LUA_THREADS` for the gateway's `--lua-threads`).
//!
//! Both phases are CPU-bound on a small machine, so the bench also accounts CPU time per thread group
//! (the driver, the server's I/O threads, the `ui-lua` session threads, the backend client's thread)
//! and voluntary context switches (sleeps, each followed by a wake-up), per frame. From the echo it
//! derives the cost of one frame's transit (written by one side, read by the other: an echo frame makes
//! two) and models the relay's floor: four transits (browser → gateway → backend → gateway → browser)
//! plus the JSON parse and encode the relay cannot avoid, measured in a loop on the same frames. It
//! prints the model's frames/s and how far the relay is from it.

#[allow(dead_code)]
#[path = "../examples/counter_backend/main.rs"]
mod counter;

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use ui_gateway::config::{Mode, ServeArgs};
use ui_gateway::gateway::RunningGateway;
use ui_gateway::loadtest::scenario::{Scenario, WATCH_APP};
use ui_gateway_client::{Client, ClientConfig};

/// CPU accounting per thread, from `/proc/self/task/*`: `schedstat` (nanoseconds on a CPU) and `status`
/// (context switches). Threads are grouped by name (`comm`), so the figures split into the driver, the
/// server's I/O threads, the session runtime (`ui-lua`) and the backend client's thread.
mod cpu {
    use std::collections::{BTreeMap, HashMap};

    /// One thread at one moment.
    #[derive(Clone, Debug, Default)]
    pub struct Thread {
        pub name: String,
        pub cpu_ns: u64,
        /// Voluntary context switches: each is a park (the thread waited for work) and its later wake-up.
        pub voluntary: u64,
        pub involuntary: u64,
    }

    pub type Snapshot = HashMap<u32, Thread>;

    fn read_thread(dir: &std::path::Path) -> Option<Thread> {
        let name = std::fs::read_to_string(dir.join("comm")).ok()?.trim().to_string();
        let sched = std::fs::read_to_string(dir.join("schedstat")).ok()?;
        let cpu_ns = sched.split_whitespace().next()?.parse().ok()?;
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        let field = |key: &str| -> u64 {
            status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
        };
        Some(Thread {
            name,
            cpu_ns,
            voluntary: field("voluntary_ctxt_switches:"),
            involuntary: field("nonvoluntary_ctxt_switches:"),
        })
    }

    pub fn snapshot() -> Snapshot {
        let mut out = Snapshot::new();
        for entry in std::fs::read_dir("/proc/self/task").expect("procfs").flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else { continue };
            if let Some(t) = read_thread(&entry.path()) {
                out.insert(tid, t);
            }
        }
        out
    }

    /// The group a thread's name falls in.
    fn group(name: &str) -> &'static str {
        if name.starts_with("driver") {
            "driver"
        } else if name.starts_with("srv-io") {
            "server I/O"
        } else if name.starts_with("ui-lua") {
            "ui-lua (sessions)"
        } else if name.starts_with("ui-backend") {
            "backend client"
        } else {
            "other"
        }
    }

    /// What each group used between two snapshots (threads born in between count from zero).
    #[derive(Debug, Default)]
    pub struct Usage {
        pub groups: BTreeMap<&'static str, Thread>,
    }

    impl Usage {
        pub fn between(before: &Snapshot, after: &Snapshot) -> Usage {
            let mut groups: BTreeMap<&'static str, Thread> = BTreeMap::new();
            for (tid, a) in after {
                let b = before.get(tid).cloned().unwrap_or_default();
                let g = groups.entry(group(&a.name)).or_default();
                g.cpu_ns += a.cpu_ns.saturating_sub(b.cpu_ns);
                g.voluntary += a.voluntary.saturating_sub(b.voluntary);
                g.involuntary += a.involuntary.saturating_sub(b.involuntary);
            }
            Usage { groups }
        }

        pub fn total_ns(&self) -> u64 {
            self.groups.values().map(|t| t.cpu_ns).sum()
        }

        pub fn total_switches(&self) -> u64 {
            self.groups.values().map(|t| t.voluntary).sum()
        }

        /// One line per group: CPU µs and voluntary context switches per frame.
        pub fn report(&self, frames: u64) -> String {
            let f = frames.max(1) as f64;
            let mut s = String::new();
            for (name, t) in &self.groups {
                s += &format!(
                    "    {name:<18} {:>6.2} µs/frame  {:>5.2} sleeps/frame  ({:.2} preempted/frame)\n",
                    t.cpu_ns as f64 / 1e3 / f,
                    t.voluntary as f64 / f,
                    t.involuntary as f64 / f
                );
            }
            s += &format!(
                "    {:<18} {:>6.2} µs/frame  {:>5.2} sleeps/frame",
                "total",
                self.total_ns() as f64 / 1e3 / f,
                self.total_switches() as f64 / f
            );
            s
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return t.to_string(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// One measured phase: frames answered, the window's length, and the CPU each thread group used in it.
struct Phase {
    frames: u64,
    seconds: f64,
    usage: cpu::Usage,
}

impl Phase {
    fn per_second(&self) -> f64 {
        self.frames as f64 / self.seconds
    }

    /// CPU nanoseconds per frame, all threads.
    fn cpu_per_frame(&self) -> f64 {
        self.usage.total_ns() as f64 / self.frames.max(1) as f64
    }

    /// Cores kept busy on average.
    fn cores(&self) -> f64 {
        self.usage.total_ns() as f64 / 1e9 / self.seconds
    }
}

/// C connections sending `frame` and awaiting one frame back, for `seconds`. The window (frames and
/// CPU) closes when the time is up, before the connections wind down.
async fn closed_loop(sockets: Vec<Ws>, frame: &str, seconds: u64) -> Phase {
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let before = cpu::snapshot();
    let start = Instant::now();
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            let (done, count, frame) = (done.clone(), count.clone(), frame.to_string());
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    ws.send(Message::text(frame.clone())).await.unwrap();
                    next_text(&mut ws).await;
                    count.fetch_add(1, Ordering::Relaxed);
                }
                let _ = ws.close(None).await;
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let frames = count.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let usage = cpu::Usage::between(&before, &cpu::snapshot());
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    Phase { frames, seconds: elapsed, usage }
}

/// This thread's CPU time so far, in nanoseconds (a loop timed by it is not charged for preemption by
/// other processes on a shared machine).
fn thread_cpu_ns() -> u64 {
    let sched = std::fs::read_to_string("/proc/thread-self/schedstat").expect("procfs");
    sched.split_whitespace().next().and_then(|v| v.parse().ok()).expect("schedstat")
}

/// Nanoseconds of CPU for the JSON work a relayed frame cannot avoid, each step in its own loop on one
/// thread: the gateway parses the browser's frame, encodes the batch for the backend, parses the
/// backend's answer and encodes the browser's update; the backend client parses the batch and encodes
/// its answer. The frames are built by the same encoders, shaped like the counter's (an action invoked,
/// a count back). Returns the steps' names and costs.
fn codec_floor(action: &str) -> Vec<(&'static str, f64)> {
    use serde_json::Value as Json;
    use ui_gateway::ids::{VarId, VendedId};
    use ui_gateway::protocol::backend::{encode_batch, encode_batches, parse_gateway_frame, parse_worker_frame};
    use ui_gateway::protocol::{encode_server_frame, parse_client_frame, FrameLimits, Message as Msg, Properties};
    use ui_gateway::protocol::{ServerMessage, Update, UpdateOut};

    let limits = FrameLimits::default();
    let vended = VendedId(12);
    let invoke = Msg::Update(Update { var_id: VarId(-3), value: Some(Json::Null), properties: None });
    let count = |n: i64| Msg::Update(Update { var_id: VarId(-2), value: Some(Json::from(n)), properties: None });
    let to_backend = encode_batch(vended, true, std::slice::from_ref(&invoke));
    let answer = encode_batch(vended, true, &[count(1234)]);
    let update = |n: i64| {
        ServerMessage::Update(UpdateOut {
            var_id: VarId(2),
            value: Some(Json::from(n)),
            properties: Properties::default(),
        })
    };
    const N: u32 = 50_000;
    let time = |f: &mut dyn FnMut(i64)| {
        let start = thread_cpu_ns();
        for i in 0..N {
            f(i64::from(i));
        }
        (thread_cpu_ns() - start) as f64 / f64::from(N)
    };
    vec![
        (
            "gateway: parse browser frame",
            time(&mut |_| drop(black_box(parse_client_frame(black_box(action.as_bytes()), &limits)))),
        ),
        (
            "gateway: encode batch",
            time(&mut |_| drop(black_box(encode_batch(vended, true, black_box(std::slice::from_ref(&invoke)))))),
        ),
        (
            "backend: parse batch",
            time(&mut |_| drop(black_box(parse_gateway_frame(black_box(to_backend.as_bytes()), 128)))),
        ),
        (
            "backend: encode answer",
            time(&mut |n| drop(black_box(encode_batches(vended, true, &[count(n)], usize::MAX)))),
        ),
        (
            "gateway: parse answer",
            time(&mut |_| drop(black_box(parse_worker_frame(black_box(answer.as_bytes()), 128)))),
        ),
        (
            "gateway: encode update",
            time(&mut |n| drop(black_box(encode_server_frame(std::slice::from_ref(&update(n)))))),
        ),
    ]
}

async fn echo_server(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { return };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(small_buffers())).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_text() && ws.send(msg).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// The buffers the gateway gives browser sockets (src/browser.rs), on both ends of every measured socket:
/// tungstenite's default 128 KiB read buffer is zero-filled on every read and would dominate the echo.
fn small_buffers() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0)
}

async fn connect(url: String) -> Ws {
    tokio_tungstenite::connect_async_with_config(url, Some(small_buffers()), true).await.expect("WebSocket connects").0
}

fn main() {
    let connections = env_or("RELAY_CONNECTIONS", 50) as usize;
    let seconds = env_or("RELAY_SECONDS", 5);
    // Named threads: the CPU accounting groups them by name.
    let server = tokio::runtime::Builder::new_multi_thread().thread_name("srv-io").enable_all().build().unwrap();
    let client = tokio::runtime::Builder::new_multi_thread().thread_name("driver").enable_all().build().unwrap();
    let scenario = Scenario::builtin();
    let action = scenario.action_frames().remove(0);

    // Echo.
    let listener = server.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let echo_addr = listener.local_addr().unwrap();
    server.spawn(echo_server(listener));
    let echo = client.block_on(async {
        let mut sockets = Vec::new();
        for _ in 0..connections {
            sockets.push(connect(format!("ws://{echo_addr}/")).await);
        }
        closed_loop(sockets, &action, seconds).await
    });

    // Relay: gateway (connected mode) + the Rust counter backend.
    let args = ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        mode: Mode::Connected,
        // `--lua-threads` (0 = one per core, the default).
        lua_threads: env_or("RELAY_LUA_THREADS", 0) as usize,
        site: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/counter_backend/site")),
        ..Default::default()
    };
    let gw = server.block_on(RunningGateway::start(&args)).expect("gateway starts");
    let addr = gw.addr;
    let backend =
        Client::new(ClientConfig::new(format!("ws://{addr}/backend"))).connected(counter::app).start().unwrap();
    let relay = client.block_on(async {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let mut sockets = Vec::new();
        for _ in 0..connections {
            let r = http.get(format!("http://{addr}/")).send().await.unwrap();
            let id = r.headers()["location"].to_str().unwrap().trim_start_matches('/').to_string();
            let mut ws = connect(format!("ws://{addr}/ws/{id}")).await;
            ws.send(Message::text(WATCH_APP)).await.unwrap();
            while !next_text(&mut ws).await.contains("\"type\":\"Counter\"") {}
            ws.send(Message::text(scenario.setup_frame())).await.unwrap();
            next_text(&mut ws).await;
            // One action first: the reply must be the count update the loop counts on.
            ws.send(Message::text(action.clone())).await.unwrap();
            let reply = next_text(&mut ws).await;
            assert!(reply.contains("\"varId\":2"), "{reply}");
            sockets.push(ws);
        }
        closed_loop(sockets, &action, seconds).await
    });
    backend.stop();
    server.shutdown_background();

    let steps = codec_floor(&action);
    let codec: f64 = steps.iter().map(|(_, ns)| ns).sum();
    let (echo_fps, relay_fps) = (echo.per_second(), relay.per_second());
    println!(
        "relay vs echo ({connections} connections, {seconds} s each, closed loop): echo {echo_fps:.0} frames/s, \
         connected-mode relay {relay_fps:.0} frames/s = {:.0} % of echo (target ≥ 50 %)",
        100.0 * relay_fps / echo_fps
    );
    println!("echo: {:.2} cores busy\n{}", echo.cores(), echo.usage.report(echo.frames));
    println!("relay: {:.2} cores busy\n{}", relay.cores(), relay.usage.report(relay.frames));
    let listed: Vec<String> = steps.iter().map(|(name, ns)| format!("{name} {:.2}", ns / 1e3)).collect();
    println!("JSON codec per relayed frame (µs CPU): {}", listed.join(", "));
    // The model: an echo frame is two transits (driver → server, server → driver); a relayed frame is
    // four, plus the JSON work of its four frames. At the echo's CPU use, that many ns per frame gives
    // the frames/s below.
    let transit = echo.cpu_per_frame() / 2.0;
    let model_ns = 4.0 * transit + codec;
    let actual_ns = relay.cpu_per_frame();
    // Frames/s the model predicts with the CPU the relay phase got (the machine is shared, so the cores
    // a phase gets vary; per-frame CPU does not depend on them).
    let model_fps = relay.cores() * 1e9 / model_ns;
    println!(
        "model: 4 transits × {:.2} µs (echo CPU per frame ÷ 2) + {:.2} µs JSON codec = {:.2} µs CPU/frame; \
         relay actual {:.2} µs CPU/frame; actual ÷ model = {:.2}× (target ≤ 1.5×); at the relay's {:.2} cores \
         the model predicts {model_fps:.0} frames/s against {relay_fps:.0}",
        transit / 1e3,
        codec / 1e3,
        model_ns / 1e3,
        actual_ns / 1e3,
        actual_ns / model_ns,
        relay.cores(),
    );
}
