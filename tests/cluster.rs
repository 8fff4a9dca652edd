//! Several gateway processes behind a real HAProxy, and restart survival with a real Redis
//! (docs/deploy/cluster.md). Every test starts its own `redis-server` and `haproxy` on free loopback
//! ports and the gateway binary as child processes (signals are part of what is tested); a test
//! whose program is not installed says so and returns (CI installs both in `.ci/run`).
//! Nothing waits on wall-clock time except for bounded polling of a state.

#[allow(dead_code)]
#[path = "../examples/counter_backend/main.rs"]
mod counter;

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{creates, set, watch, Mirror, Ws, STEP};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use ui_gateway_client::{Client, ClientConfig};

const TOKEN: &str = "cluster-backend-token-0123456789";

/// Whether `program` is on the PATH; if not, the caller skips with this reason printed.
fn installed(program: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIPPED: `{program}` is not installed (apt-get install -y haproxy redis-server)");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uigw-cluster-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Polls `f` until it returns `Some`, at most [`STEP`].
async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let until = Instant::now() + STEP;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn http() -> reqwest::Client {
    common::http()
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.0.id().to_string()).status().unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit (after a signal).
    async fn exited(&mut self) {
        let until = Instant::now() + STEP;
        while self.0.try_wait().unwrap().is_none() {
            assert!(Instant::now() < until, "process did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Redis {
    proc: Proc,
    url: String,
}

impl Redis {
    async fn start() -> Redis {
        let port = free_port();
        let dir = scratch(&format!("redis-{port}"));
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let url = format!("redis://127.0.0.1:{port}/");
        let redis = Redis { proc: Proc(child), url };
        eventually("redis to answer", async || redis.conn().await).await;
        redis
    }

    async fn conn(&self) -> Option<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url.as_str()).ok()?;
        client.get_multiplexed_async_connection().await.ok()
    }

    /// Every session record of every node: (key, JSON).
    async fn records(&self) -> Vec<(String, Value)> {
        let mut conn = self.conn().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg("ui:node:*:session:*").query_async(&mut conn).await.unwrap();
        let mut out = Vec::new();
        for key in keys {
            let text: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
            if let Some(text) = text {
                out.push((key, serde_json::from_str(&text).unwrap()));
            }
        }
        out
    }
}

/// How a node is started.
#[derive(Clone)]
struct NodeSpec {
    node: &'static str,
    port: u16,
    registry: Option<String>,
    /// `None`: the built-in demo (embedded); `Some`: connected mode on this site.
    connected_site: Option<PathBuf>,
    extra: Vec<String>,
}

impl NodeSpec {
    fn new(node: &'static str) -> NodeSpec {
        NodeSpec { node, port: free_port(), registry: None, connected_site: None, extra: Vec::new() }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    async fn start(&self) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ui-gateway"));
        cmd.args(["--listen", &self.addr().to_string(), "--node-id", self.node, "--log-level", "warn"]);
        cmd.args(["--shutdown-timeout", "5s"]);
        if let Some(url) = &self.registry {
            cmd.args(["--registry", url]);
        }
        if let Some(site) = &self.connected_site {
            cmd.args(["--mode", "connected", "--backend-token", TOKEN]).arg("--site").arg(site);
        }
        cmd.args(&self.extra);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("UI_")) {
            cmd.env_remove(k);
        }
        let child = cmd.stdout(Stdio::null()).spawn().expect("the gateway binary starts");
        let node = Proc(child);
        let url = format!("http://{}/healthz", self.addr());
        eventually("the node to be healthy", async || {
            let r = http().get(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        node
    }
}

/// HAProxy with `docs/deploy/haproxy.cfg`, its addresses replaced by the test's.
struct Haproxy {
    _proc: Proc,
    addr: SocketAddr,
}

impl Haproxy {
    async fn start(nodes: &[&NodeSpec]) -> Haproxy {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deploy/haproxy.cfg");
        let mut cfg = std::fs::read_to_string(shipped).unwrap();
        let port = free_port();
        cfg = cfg.replace("bind 127.0.0.1:8000", &format!("bind 127.0.0.1:{port}"));
        for (i, node) in nodes.iter().enumerate() {
            let shipped_addr = format!("127.0.0.1:{}", 8001 + i);
            assert!(cfg.contains(&shipped_addr));
            cfg = cfg.replace(&shipped_addr, &node.addr().to_string());
        }
        let dir = scratch(&format!("haproxy-{port}"));
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let check = Command::new("haproxy").arg("-c").arg("-f").arg(&path).output().unwrap();
        assert!(check.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&check.stderr));
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy starts");
        let lb = Haproxy { _proc: Proc(child), addr: SocketAddr::from(([127, 0, 0, 1], port)) };
        let url = format!("http://{}/healthz", lb.addr);
        eventually("haproxy to answer", async || {
            let r = http().get(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        lb
    }
}

/// `GET /` at `addr`; the new session's id.
async fn new_session(addr: SocketAddr) -> String {
    let r = http().get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    r.headers()["location"].to_str().unwrap().trim_start_matches('/').to_string()
}

async fn status(addr: SocketAddr, path: &str) -> u16 {
    http().get(format!("http://{addr}{path}")).send().await.unwrap().status().as_u16()
}

async fn open_ws(addr: SocketAddr, id: &str) -> Ws {
    let req = format!("ws://{addr}/ws/{id}").into_client_request().unwrap();
    let (stream, _) = tokio_tungstenite::connect_async(req).await.expect("websocket opens");
    Ws { stream }
}

/// `ui_sessions_created_total` of one node.
async fn created_on(node: &NodeSpec) -> u64 {
    let text = http().get(format!("http://{}/metrics", node.addr())).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("ui_sessions_created_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

async fn metric(node: &NodeSpec, prefix: &str) -> f64 {
    let text = http().get(format!("http://{}/metrics", node.addr())).send().await.unwrap().text().await.unwrap();
    text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

/// 3 nodes behind the shipped HAProxy config: the built-in load generator's sessions all set up and
/// act, spread over the nodes; a killed node's ids answer 404 / close 4404 from a live node, and
/// new sessions go to the others.
#[tokio::test]
async fn three_nodes_behind_haproxy_spread_sessions_and_a_dead_nodes_ids_end() {
    if !installed("haproxy") {
        return;
    }
    let specs = [NodeSpec::new("01"), NodeSpec::new("02"), NodeSpec::new("03")];
    let mut nodes = Vec::new();
    for spec in &specs {
        nodes.push(spec.start().await);
    }
    let lb = Haproxy::start(&specs.iter().collect::<Vec<_>>()).await;

    const SESSIONS: u64 = 600;
    let out = Command::new(env!("CARGO_BIN_EXE_ui-gateway"))
        .args(["loadtest", "--json", "--target", &format!("http://{}", lb.addr)])
        .args(["--sessions", &SESSIONS.to_string(), "--concurrency", "30", "--actions", "2", "--interval", "10ms"])
        .args(["--max-error-rate", "0"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).expect("the loadtest prints its JSON report");
    assert_eq!(report["sessions"]["established"], json!(SESSIONS), "{report}");
    assert_eq!(report["actions"]["completed"], json!(SESSIONS * 2), "{report}");
    let mut per_node = Vec::new();
    for spec in &specs {
        per_node.push(created_on(spec).await);
    }
    assert_eq!(per_node.iter().sum::<u64>(), SESSIONS, "{per_node:?}");
    for n in &per_node {
        assert!(*n >= SESSIONS / 6, "each node holds about a third: {per_node:?}");
    }

    // Ids name their node: one session on node 02, reachable through the LB.
    let on_02 = eventually("a session on node 02", async || {
        let id = new_session(lb.addr).await;
        id.starts_with("02").then_some(id)
    })
    .await;
    assert_eq!(status(lb.addr, &format!("/{on_02}")).await, 200);
    let on_01 = eventually("a session on node 01", async || {
        let id = new_session(lb.addr).await;
        id.starts_with("01").then_some(id)
    })
    .await;
    let mut tab = open_ws(lb.addr, &on_02).await;
    tab.send(watch(1)).await;
    tab.recv().await;

    // Node 02 dies without a word.
    nodes[1].signal("KILL");
    nodes[1].exited().await;
    // Until its health checks fail (3 s) HAProxy keeps its ids on it (503: browsers retry, in case it
    // is restarting); then a live node answers for them.
    let answers = eventually("a live node to answer for node 02's ids", async || {
        let code = status(lb.addr, &format!("/{on_02}")).await;
        (code != 503).then_some(code)
    })
    .await;
    assert_eq!(answers, 404);
    let mut again = open_ws(lb.addr, &on_02).await;
    assert_eq!(again.closed().await, 4404);
    assert_eq!(status(lb.addr, &format!("/{on_01}")).await, 200, "other nodes' sessions live on");
    for _ in 0..12 {
        let id = new_session(lb.addr).await;
        assert!(id.starts_with("01") || id.starts_with("03"), "new sessions go to live nodes: {id}");
    }
}

/// Two nodes sharing one Redis hand out vended ids from one counter: never the same one.
#[tokio::test]
async fn two_nodes_sharing_redis_never_share_a_vended_id() {
    if !installed("redis-server") {
        return;
    }
    let redis = Redis::start().await;
    let mut a = NodeSpec::new("0a");
    let mut b = NodeSpec::new("0b");
    a.registry = Some(redis.url.clone());
    b.registry = Some(redis.url.clone());
    let (_na, _nb) = (a.start().await, b.start().await);
    for _ in 0..10 {
        assert!(new_session(a.addr()).await.starts_with("0a"));
        assert!(new_session(b.addr()).await.starts_with("0b"));
    }
    let records = eventually("20 session records", async || {
        let r = redis.records().await;
        (r.len() == 20).then_some(r)
    })
    .await;
    let mut vended: Vec<u64> = records.iter().map(|(_, r)| r["vended"].as_u64().unwrap()).collect();
    vended.sort();
    assert_eq!(vended, (1..=20).collect::<Vec<u64>>(), "one counter, no duplicates, no fallback ids");
    for (key, record) in &records {
        let node = record["node"].as_str().unwrap();
        assert!(key.starts_with(&format!("ui:node:{node}:session:{}", &record["id"].as_str().unwrap()[..2])));
        assert!(record["last_active_ms"].as_u64().unwrap() > 0);
    }
}

/// Opens a tab on the counter and waits for its count.
async fn counter_tab(addr: SocketAddr, id: &str, count: i64) -> (Ws, Mirror) {
    assert_eq!(status(addr, &format!("/{id}")).await, 200);
    let mut tab = open_ws(addr, id).await;
    let mut m = Mirror::default();
    tab.send(watch(1)).await;
    tab.until(&mut m, |m| m.prop(1, "type") == Some("Counter")).await;
    tab.send(creates(&[
        (2, 1, json!({"path":"count","access":"r"})),
        (3, 1, json!({"path":"increment()","access":"action"})),
    ]))
    .await;
    tab.until(&mut m, |m| m.value(2) == json!(count)).await;
    (tab, m)
}

async fn click(tab: &mut Ws, m: &mut Mirror, expect: i64) {
    tab.send(set(3, Value::Null, true)).await;
    tab.until(m, |m| m.value(2) == json!(expect)).await;
}

/// Connected mode with the Rust `counter` backend in-process: the count survives a SIGTERM restart
/// and a SIGKILL restart of its node (same URL, same vended id, same epoch), and counts on.
#[tokio::test]
async fn a_connected_counter_survives_sigterm_and_sigkill_restarts() {
    if !installed("redis-server") {
        return;
    }
    let redis = Redis::start().await;
    let mut spec = NodeSpec::new("05");
    spec.registry = Some(redis.url.clone());
    spec.connected_site = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/counter_backend/site"));
    let mut node = spec.start().await;
    let config = ClientConfig::new(format!("ws://{}/backend", spec.addr())).with_token(TOKEN);
    let backend = Client::new(config).connected(counter::app).start().unwrap();

    let id = new_session(spec.addr()).await;
    let (mut tab, mut m) = counter_tab(spec.addr(), &id, 0).await;
    for n in 1..=3 {
        click(&mut tab, &mut m, n).await;
    }

    node.signal("TERM");
    assert_eq!(tab.closed().await, 1001, "a restart closes tabs as going away");
    node.exited().await;
    let mut node = spec.start().await;
    let (mut tab, mut m) = counter_tab(spec.addr(), &id, 3).await;
    click(&mut tab, &mut m, 4).await;

    node.signal("KILL");
    node.exited().await;
    drop(tab);
    let _node = spec.start().await;
    let (mut tab, mut m) = counter_tab(spec.addr(), &id, 4).await;
    click(&mut tab, &mut m, 5).await;
    // Still one session, vended id 1 of the shared counter.
    let records = redis.records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].1["vended"], json!(1));
    backend.shutdown().await.unwrap();
}

/// A raw `/backend` connection: the frames it reads until the gateway closes it, and the close code.
async fn backend_until_close(ws: &mut Ws) -> (Vec<Value>, u16) {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut frames = Vec::new();
    loop {
        let msg = tokio::time::timeout(STEP, ws.stream.next()).await.expect("a frame in time");
        match msg {
            Some(Ok(Message::Text(t))) => frames.push(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(frame))) => return (frames, frame.map_or(1005, |f| u16::from(f.code))),
            Some(Ok(_)) => {}
            other => panic!("backend socket ended without a close frame: {other:?}"),
        }
    }
}

async fn raw_backend(addr: SocketAddr) -> (Ws, Value) {
    let mut req = format!("ws://{addr}/backend").into_client_request().unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (stream, _) = tokio_tungstenite::connect_async(req).await.expect("backend connects");
    let mut ws = Ws { stream };
    use futures::StreamExt;
    let welcome = loop {
        match tokio::time::timeout(STEP, ws.stream.next()).await.unwrap().unwrap().unwrap() {
            tokio_tungstenite::tungstenite::Message::Text(t) => break serde_json::from_str::<Value>(&t).unwrap(),
            _ => continue,
        }
    };
    (ws, welcome)
}

/// A plain restart keeps sessions and tells the backend nothing (same epoch, the welcome lists them);
/// `--decommission` ends them for good: the backend hears `closed`, the registry forgets them and
/// the epoch, and the next process with the same node id does not bring them back.
#[tokio::test]
async fn a_restart_keeps_sessions_and_a_decommission_ends_them_for_good() {
    if !installed("redis-server") {
        return;
    }
    let redis = Redis::start().await;
    let mut spec = NodeSpec::new("06");
    spec.registry = Some(redis.url.clone());
    spec.connected_site = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/counter_backend/site"));
    let mut node = spec.start().await;
    let (mut backend, welcome) = raw_backend(spec.addr()).await;
    let epoch = welcome["welcome"]["epoch"].clone();
    let kept = new_session(spec.addr()).await;
    node.signal("TERM");
    let (frames, code) = backend_until_close(&mut backend).await;
    assert_eq!(code, 1001);
    assert!(frames.iter().all(|f| f.get("event").is_none()), "no `closed` on a restart: {frames:?}");
    node.exited().await;

    spec.extra = vec!["--decommission".into()];
    let mut node = spec.start().await;
    assert_eq!(status(spec.addr(), &format!("/{kept}")).await, 200, "a plain restart keeps the session");
    let (mut backend, welcome) = raw_backend(spec.addr()).await;
    assert_eq!(welcome["welcome"]["epoch"], epoch, "the epoch is kept");
    assert_eq!(welcome["welcome"]["sessions"], json!(["1"]));
    node.signal("TERM");
    let (frames, code) = backend_until_close(&mut backend).await;
    assert_eq!(code, 1001);
    assert_eq!(frames, vec![json!({"session":"1","event":"closed"})]);
    node.exited().await;
    assert!(redis.records().await.is_empty(), "decommission removes the records");

    spec.extra.clear();
    let _node = spec.start().await;
    assert_eq!(status(spec.addr(), &format!("/{kept}")).await, 404);
    let (_backend, welcome) = raw_backend(spec.addr()).await;
    assert_ne!(welcome["welcome"]["epoch"], epoch, "a decommissioned node starts a new epoch");
    assert_eq!(welcome["welcome"]["sessions"], json!([]));
}

/// Redis stops: the node keeps creating and serving sessions (node-local fallback ids) and counts
/// the failures.
#[tokio::test]
async fn with_redis_stopped_the_gateway_keeps_serving() {
    if !installed("redis-server") {
        return;
    }
    let mut redis = Redis::start().await;
    let mut spec = NodeSpec::new("07");
    spec.registry = Some(redis.url.clone());
    let _node = spec.start().await;
    let before = new_session(spec.addr()).await;
    redis.proc.signal("KILL");
    redis.proc.exited().await;
    for _ in 0..5 {
        let id = new_session(spec.addr()).await;
        assert!(id.starts_with("07"));
        let mut tab = open_ws(spec.addr(), &id).await;
        let m = common::demo_counter(&mut tab).await;
        assert_eq!(m.value(2), json!(0));
    }
    assert_eq!(status(spec.addr(), &format!("/{before}")).await, 200);
    assert!(metric(&spec, "ui_registry_errors_total{").await >= 1.0);
    assert_eq!(metric(&spec, "ui_registry_up ").await, 0.0);
}

/// Open browser WebSockets of one node (`ui_connections{kind="browser"}`).
async fn connections_on(node: &NodeSpec) -> u64 {
    metric(node, "ui_connections{kind=\"browser\"} ").await as u64
}

/// A rolling restart of a 3-node cluster (HAProxy, the Redis registry, the built-in demo) while the
/// load generator acts: each node in turn gets `SIGTERM` and a new process with the same node id;
/// the next node goes only once every tab of the previous one is connected again. Every tab drops
/// exactly once (close 1001), reconnects through HAProxy to its restored session, and no set-up or
/// action fails: the restart fits HAProxy's `fall 3` window, and the action a drop cuts off is sent
/// again on the new socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_no_session_and_no_action() {
    if !installed("haproxy") || !installed("redis-server") {
        return;
    }
    let redis = Redis::start().await;
    let mut specs = [NodeSpec::new("01"), NodeSpec::new("02"), NodeSpec::new("03")];
    for spec in &mut specs {
        spec.registry = Some(redis.url.clone());
    }
    let mut nodes = Vec::new();
    for spec in &specs {
        nodes.push(spec.start().await);
    }
    let lb = Haproxy::start(&specs.iter().collect::<Vec<_>>()).await;

    const SESSIONS: usize = 90;
    const ACTIONS: usize = 40;
    let lt = ui_gateway::loadtest::LoadtestArgs {
        target: format!("http://{}", lb.addr),
        sessions: SESSIONS,
        concurrency: 30,
        actions: ACTIONS,
        interval: Duration::from_millis(200),
        timeout: STEP,
        max_error_rate: 0.0,
        ..Default::default()
    };
    let load = tokio::spawn(async move { ui_gateway::loadtest::run(&lt).await.expect("the loadtest runs") });
    let mut total = 0;
    eventually("every tab to be connected", async || {
        total = 0;
        for spec in &specs {
            total += connections_on(spec).await;
        }
        (total == SESSIONS as u64).then_some(())
    })
    .await;

    for (spec, node) in specs.iter().zip(nodes.iter_mut()) {
        let tabs = connections_on(spec).await;
        assert!(tabs > 0, "node {} holds some of the sessions", spec.node);
        let stopped = Instant::now();
        node.signal("TERM");
        node.exited().await;
        let exited = stopped.elapsed();
        *node = spec.start().await;
        let answered = stopped.elapsed();
        eventually("the node's tabs to be back", async || (connections_on(spec).await == tabs).then_some(())).await;
        // Printed for BENCHMARKS.md; nothing is asserted on time.
        eprintln!(
            "node {}: {tabs} tabs; SIGTERM → exited {} ms, → answering {} ms, → all tabs back {} ms",
            spec.node,
            exited.as_millis(),
            answered.as_millis(),
            stopped.elapsed().as_millis()
        );
        assert_eq!(metric(spec, "ui_sessions_restored_total ").await as u64, tabs, "node {}", spec.node);
    }

    let report = load.await.unwrap();
    let text = report.text();
    eprintln!("{text}");
    assert_eq!(report.sessions.established, SESSIONS, "{text}");
    assert_eq!(report.actions.failed, 0, "{text}");
    assert_eq!(report.actions.completed, (SESSIONS * ACTIONS) as u64, "{text}");
    assert!(report.sessions.lost.is_empty(), "{text}");
    assert_eq!(report.sessions.reconnects.0.get("close-1001").copied(), Some(SESSIONS as u64), "{text}");
    assert_eq!(report.sessions.reconnects.total(), SESSIONS as u64, "one drop per tab: {text}");
    assert!(report.passed, "{text}");
}
