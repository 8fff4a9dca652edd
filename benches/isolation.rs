//! Isolation: `/healthz` and a second session's action round trip, p50/p99, while k sessions each run
//! a budget-exhausting action (`while true do end`) in a loop, at the default Lua limits.
//!
//! The gateway is a separate process (the `ui-gateway` binary of this build, or `ISOLATION_BIN` to
//! measure another build, e.g. an older release), serving a site written to a temporary directory.
//! For each k in `ISOLATION_K` (default `0,1,2,8`) a fresh gateway runs for `ISOLATION_SECONDS`
//! (default 8): k attacker tabs click `spin()` again as soon as its `lua-timeout` arrives; one victim
//! tab clicks `increment()` and waits for the new count, over and over; a prober GETs `/healthz` on a
//! keep-alive connection every 20 ms. A request that takes longer than the run counts as the run's
//! length (so a frozen gateway shows as such, not as "no samples").
//!
//! `cargo bench --bench isolation`

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use ui_gateway::loadtest::http::{HttpPool, Target};

const SITE_MAIN: &str = r#"
App = session:prototype("App", {count = 0})
function App:increment() self.count = self.count + 1 end
function App:spin() while true do end end
session:createAppVariable(App:new())
"#;

struct Gateway {
    child: Child,
    addr: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(bin: &str, site: &std::path::Path) -> Gateway {
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--log-level", "error", "--max-sessions", "0", "--site"])
        .arg(site)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the gateway binary starts");
    let stdout = child.stdout.take().unwrap();
    // From here the child is owned by the guard, which kills and reaps it on every path.
    let mut gateway = Gateway { child, addr: String::new() };
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("the gateway exited before listening");
        }
        if let Some(at) = line.find("http://") {
            gateway.addr = line[at + 7..].trim().trim_end_matches('/').to_string();
            return gateway;
        }
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A tab of a new session bound to `count` (2) and `method` (3).
async fn tab(pool: &HttpPool, addr: &str, method: &str) -> Socket {
    let answer = pool.get("/").await.expect("GET /");
    let location = answer.location.expect("a redirect");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws{location}")).await.unwrap();
    let frame = json!({"userEvent": false, "messages": [
        {"type": "watch", "data": {"varId": 1}},
        {"type": "create", "data": {"id": 2, "parentId": 1, "properties": {"path": "count", "access": "r"}}},
        {"type": "create", "data": {"id": 3, "parentId": 1, "properties": {"path": method, "access": "action"}}}]});
    ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    ws
}

/// Reads frames until one has a message for `var` of `kind` (`update` or `error`).
async fn wait_for(ws: &mut Socket, var: i64, kind: &str) -> Option<Value> {
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        let frame: Value = serde_json::from_str(&text).ok()?;
        for m in frame.as_array()? {
            if m["type"] == kind && m["data"]["varId"] == var {
                return Some(m.clone());
            }
        }
    }
    None
}

fn click() -> Message {
    Message::Text(
        json!({"userEvent": true, "messages": [{"type": "update", "data": {"varId": 3, "value": null}}]})
            .to_string()
            .into(),
    )
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn measure(addr: String, k: usize, seconds: u64) -> (Vec<Duration>, Vec<Duration>) {
    let target = Target::resolve(&format!("http://{addr}")).await.unwrap();
    let pool = Arc::new(HttpPool::new(target));
    let stop = Arc::new(AtomicBool::new(false));
    let run = Duration::from_secs(seconds);
    let mut attackers = Vec::new();
    for _ in 0..k {
        let Ok(mut ws) = tokio::time::timeout(run, tab(&pool, &addr, "spin()")).await else { break };
        let _ = tokio::time::timeout(run, wait_for(&mut ws, 2, "update")).await;
        let stop = stop.clone();
        attackers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if ws.send(click()).await.is_err() {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_secs(5), wait_for(&mut ws, 3, "error")).await;
            }
        }));
    }
    // Let every attacker get going.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let health = Arc::new(Mutex::new(Vec::new()));
    let prober = {
        let (pool, stop, health) = (pool.clone(), stop.clone(), health.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let answered = tokio::time::timeout(run, pool.get("/healthz")).await;
                health.lock().await.push(if answered.is_ok() { started.elapsed() } else { run });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let began = Instant::now();
    let mut trips = Vec::new();
    // A gateway frozen by the attackers never even opens the victim's tab: the run counts as one sample
    // of the whole run's length.
    let opened = tokio::time::timeout(run, async {
        let mut victim = tab(&pool, &addr, "increment()").await;
        let count = wait_for(&mut victim, 2, "update").await.map_or(0, |m| m["data"]["value"].as_i64().unwrap_or(0));
        (victim, count)
    })
    .await;
    let Ok((mut victim, mut count)) = opened else {
        stop.store(true, Ordering::Relaxed);
        prober.abort();
        for a in attackers {
            a.abort();
        }
        let mut health = health.lock().await.clone();
        health.push(run);
        return (vec![run], health);
    };
    while began.elapsed() < run {
        let started = Instant::now();
        victim.send(click()).await.unwrap();
        let answered = tokio::time::timeout(run, async {
            loop {
                match wait_for(&mut victim, 2, "update").await {
                    Some(m) if m["data"]["value"].as_i64() == Some(count + 1) => break,
                    Some(_) => continue,
                    None => break,
                }
            }
        })
        .await;
        trips.push(if answered.is_ok() { started.elapsed() } else { run });
        count += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let _ = prober.await;
    for a in attackers {
        a.abort();
    }
    let health = health.lock().await.clone();
    (trips, health)
}

fn main() {
    let bin = std::env::var("ISOLATION_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ui-gateway").to_string());
    let ks: Vec<usize> = std::env::var("ISOLATION_K")
        .unwrap_or_else(|_| "0,1,2,8".into())
        .split(',')
        .filter_map(|k| k.trim().parse().ok())
        .collect();
    let seconds: u64 = std::env::var("ISOLATION_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let site = std::env::temp_dir().join(format!("ui-gateway-isolation-{}", std::process::id()));
    std::fs::create_dir_all(site.join("lua")).unwrap();
    std::fs::write(site.join("lua/main.lua"), SITE_MAIN).unwrap();
    let client = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!("gateway: {bin}");
    println!("| k spinning | victim round trips | victim p50 | victim p99 | /healthz p50 | /healthz p99 |");
    println!("|---|---|---|---|---|---|");
    for k in ks {
        let gw = start_gateway(&bin, &site);
        let (mut trips, mut health) = client.block_on(measure(gw.addr.clone(), k, seconds));
        drop(gw);
        println!(
            "| {k} | {} | {} | {} | {} | {} |",
            trips.len(),
            ms(percentile(&mut trips, 0.5)),
            ms(percentile(&mut trips, 0.99)),
            ms(percentile(&mut health, 0.5)),
            ms(percentile(&mut health, 0.99)),
        );
    }
    let _ = std::fs::remove_dir_all(&site);
}
