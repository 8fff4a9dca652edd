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
//! Target: relay ≥ 50 % of echo. `cargo bench --bench relay` (env `RELAY_CONNECTIONS`, `RELAY_SECONDS`).

#[allow(dead_code)]
#[path = "../examples/counter_backend/main.rs"]
mod counter;

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

/// C connections sending `frame` and awaiting one frame back, for `seconds`. Returns frames/s.
async fn closed_loop(sockets: Vec<Ws>, frame: &str, seconds: u64) -> f64 {
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
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
    done.store(true, Ordering::Relaxed);
    let n = count.load(Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    n as f64 / elapsed
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
    let server = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let client = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
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
    println!(
        "relay vs echo ({connections} connections, {seconds} s each, closed loop): echo {echo:.0} frames/s, \
         connected-mode relay {relay:.0} frames/s = {:.0} % of echo (target ≥ 50 %)",
        100.0 * relay / echo
    );
    server.shutdown_background();
}
