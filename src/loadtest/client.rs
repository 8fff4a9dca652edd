//! One simulated browser session (docs/configuration.md "ui-gateway loadtest"), as one task from `GET /` to close.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::http::{HttpPool, Target};
use super::scenario::WATCH_APP;
use super::stats::Tally;

type Ws = WebSocketStream<TcpStream>;

/// Everything every session task shares.
pub struct Plan {
    pub target: Target,
    pub http: HttpPool,
    pub setup_frame: String,
    pub action_frames: Vec<String>,
    pub action_id: i64,
    pub observe_id: i64,
    pub actions: usize,
    pub interval: Duration,
    pub timeout: Duration,
    pub sessions: usize,
    /// Session `i` starts no earlier than `i / rate` seconds after the start (0 = no pacing).
    pub rate: f64,
    pub setups: Semaphore,
    pub frames_sent: AtomicU64,
    pub frames_received: AtomicU64,
}

/// Why a session or an action failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// An HTTP status other than the expected one.
    Http(u16),
    /// The server closed the WebSocket (or refused the upgrade: the status is reported as `Http`).
    Close(u16),
    /// An `error` message about a variable the step depends on.
    Error(String),
    /// A step took longer than `--timeout`.
    Timeout,
    /// TCP, WebSocket or HTTP failure without a status.
    Connect(String),
    /// The server answered something this protocol does not allow.
    Protocol(String),
}

impl Failure {
    /// The tally key: `http-503`, `close-4404`, `error-not-found`, `timeout`, `connect`, `protocol`.
    pub fn key(&self) -> String {
        match self {
            Failure::Http(s) => format!("http-{s}"),
            Failure::Close(c) => format!("close-{c}"),
            Failure::Error(code) => format!("error-{code}"),
            Failure::Timeout => "timeout".into(),
            Failure::Connect(_) => "connect".into(),
            Failure::Protocol(_) => "protocol".into(),
        }
    }
}

/// Progress reports to the orchestrator.
#[derive(Debug)]
pub enum Event {
    Established { latency: Duration },
    SetupFailed { failure: Failure, detail: String },
    ActionsDone,
}

/// What one session measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub round_trips: Vec<Duration>,
    pub actions_failed: Tally,
    /// Every `error` message received, by code.
    pub errors: Tally,
    /// Unexpected closes after set-up, by `close-<code>`.
    pub late_closes: Tally,
    /// The session id `GET /` handed out (even if a later set-up step failed), so that the
    /// orchestrator can `DELETE` it at the end.
    pub session: Option<String>,
}

/// The orchestrator's phase signals.
#[derive(Clone)]
pub struct Gates {
    pub start: Instant,
    /// Flips to true when every session is established or failed.
    pub actions: watch::Receiver<bool>,
    /// Flips to true after the hold.
    pub close: watch::Receiver<bool>,
}

/// Runs one session through every phase.
pub async fn run_session(
    plan: Arc<Plan>,
    index: usize,
    mut gates: Gates,
    events: mpsc::UnboundedSender<Event>,
) -> Outcome {
    let mut out = Outcome::default();
    if plan.rate > 0.0 {
        tokio::time::sleep_until(gates.start + Duration::from_secs_f64(index as f64 / plan.rate)).await;
    }
    let permit = plan.setups.acquire().await.expect("semaphore open");
    let began = Instant::now();
    let set_up = setup(&plan, &mut out).await;
    drop(permit);
    let mut ws = match set_up {
        Ok(ws) => {
            let _ = events.send(Event::Established { latency: began.elapsed() });
            ws
        }
        Err((failure, detail)) => {
            let _ = events.send(Event::SetupFailed { failure, detail });
            return out;
        }
    };

    // Wait for the other sessions, answering pings and noting anything the server says meanwhile.
    let mut alive = idle(&plan, &mut ws, &mut out, wait_for(&mut gates.actions)).await;
    if alive.is_ok() {
        alive = actions(&plan, index, &mut ws, &mut out).await;
    } else {
        out.actions_failed.add(alive.clone().unwrap_err().key(), plan.actions as u64);
    }
    let _ = events.send(Event::ActionsDone);
    if alive.is_ok() {
        alive = idle(&plan, &mut ws, &mut out, wait_for(&mut gates.close)).await;
    }
    if let Err(f) = alive {
        out.late_closes.add(f.key(), 1);
        return out;
    }
    let _ = tokio::time::timeout(plan.timeout, async {
        let _ = ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })).await;
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    out
}

async fn wait_for(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

type SetupResult = Result<Ws, (Failure, String)>;

/// Steps 1–4: `GET /`, `GET /<id>`, the WebSocket, `watch 1`, the creates.
async fn setup(plan: &Plan, out: &mut Outcome) -> SetupResult {
    let step = |f: Failure, d: String| (f, d);
    let timeout = plan.timeout;
    let root = tokio::time::timeout(timeout, plan.http.get("/"))
        .await
        .map_err(|_| step(Failure::Timeout, "GET /".into()))?
        .map_err(|e| step(Failure::Connect(e.to_string()), "GET /".into()))?;
    if !root.status.is_redirection() {
        return Err(step(Failure::Http(root.status.as_u16()), "GET /".into()));
    }
    let location = root.location.unwrap_or_default();
    let id = location.trim_start_matches('/').split(['/', '?']).next().unwrap_or("").to_string();
    if id.is_empty() || !location.starts_with('/') {
        return Err(step(Failure::Protocol(format!("Location {location:?}")), "GET /".into()));
    }
    out.session = Some(id.clone());
    let page = tokio::time::timeout(timeout, plan.http.get(&format!("/{id}")))
        .await
        .map_err(|_| step(Failure::Timeout, "GET /<id>".into()))?
        .map_err(|e| step(Failure::Connect(e.to_string()), "GET /<id>".into()))?;
    if page.status.as_u16() != 200 {
        return Err(step(Failure::Http(page.status.as_u16()), "GET /<id>".into()));
    }

    let mut ws = tokio::time::timeout(timeout, open_socket(&plan.target, &id))
        .await
        .map_err(|_| step(Failure::Timeout, "WebSocket upgrade".into()))??;
    send(plan, &mut ws, WATCH_APP).await.map_err(|f| (f, "watch 1".into()))?;
    wait_update(plan, &mut ws, out, 1, true, &[1]).await.map_err(|f| (f, "watch 1".into()))?;
    send(plan, &mut ws, &plan.setup_frame).await.map_err(|f| (f, "creates".into()))?;
    wait_update(plan, &mut ws, out, plan.observe_id, false, &[plan.observe_id, plan.action_id])
        .await
        .map_err(|f| (f, "creates".into()))?;
    Ok(ws)
}

async fn open_socket(target: &Target, id: &str) -> SetupResult {
    let failed = |f: Failure| (f, "WebSocket upgrade".to_string());
    let mut request = format!("ws://{}/ws/{id}", target.authority)
        .into_client_request()
        .map_err(|e| failed(Failure::Protocol(e.to_string())))?;
    request.headers_mut().insert("origin", target.origin.parse().expect("valid origin header"));
    let stream = target.connect().await.map_err(|e| failed(Failure::Connect(e.to_string())))?;
    // Small buffers: thousands of simulated browsers share this process.
    let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    match tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(failed(Failure::Http(r.status().as_u16()))),
        Err(e) => Err(failed(Failure::Connect(e.to_string()))),
    }
}

async fn send(plan: &Plan, ws: &mut Ws, text: &str) -> Result<(), Failure> {
    match tokio::time::timeout(plan.timeout, ws.send(Message::text(text))).await {
        Ok(Ok(())) => {
            plan.frames_sent.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Ok(Err(e)) => Err(Failure::Connect(e.to_string())),
        Err(_) => Err(Failure::Timeout),
    }
}

/// The next server frame's messages; pings are answered by the WebSocket layer on the next read.
async fn next_frame(plan: &Plan, ws: &mut Ws) -> Result<Vec<Value>, Failure> {
    loop {
        let bytes = match ws.next().await {
            Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
            Some(Ok(Message::Binary(b))) => b.to_vec(),
            Some(Ok(Message::Close(frame))) => {
                return Err(Failure::Close(frame.map_or(1005, |f| u16::from(f.code))));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(Failure::Connect(e.to_string())),
            None => return Err(Failure::Close(1006)),
        };
        plan.frames_received.fetch_add(1, Ordering::Relaxed);
        return match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(messages)) => Ok(messages),
            // The spec's servers always send arrays; ui-engine sent a bare object for one message.
            Ok(obj @ Value::Object(_)) => Ok(vec![obj]),
            Ok(_) | Err(_) => Err(Failure::Protocol("a server frame that is not JSON messages".into())),
        };
    }
}

/// Reads frames until an `update` of `var` arrives (with a `type` property when `needs_type`). An
/// `error` about one of `fatal` fails the wait with its code; every error is tallied.
async fn wait_update(
    plan: &Plan,
    ws: &mut Ws,
    out: &mut Outcome,
    var: i64,
    needs_type: bool,
    fatal: &[i64],
) -> Result<(), Failure> {
    let deadline = Instant::now() + plan.timeout;
    loop {
        let messages = match tokio::time::timeout_at(deadline, next_frame(plan, ws)).await {
            Ok(r) => r?,
            Err(_) => return Err(Failure::Timeout),
        };
        let mut found = false;
        let mut failed = None;
        for m in &messages {
            let data = &m["data"];
            let id = data["varId"].as_i64();
            match m["type"].as_str() {
                Some("update") if id == Some(var) && (!needs_type || data["properties"]["type"].is_string()) => {
                    found = true;
                }
                Some("error") => {
                    let code = data["code"].as_str().unwrap_or("").to_string();
                    out.errors.add(code.clone(), 1);
                    if id.is_some_and(|i| fatal.contains(&i)) && failed.is_none() {
                        failed = Some(Failure::Error(code));
                    }
                }
                _ => {}
            }
        }
        if let Some(f) = failed {
            return Err(f);
        }
        if found {
            return Ok(());
        }
    }
}

/// Reads (and tallies) frames until `until` completes; a closed socket ends the wait with its cause.
async fn idle(
    plan: &Plan,
    ws: &mut Ws,
    out: &mut Outcome,
    until: impl std::future::Future<Output = ()>,
) -> Result<(), Failure> {
    tokio::pin!(until);
    loop {
        tokio::select! {
            _ = &mut until => return Ok(()),
            frame = next_frame(plan, ws) => {
                for m in frame? {
                    if m["type"] == "error" {
                        out.errors.add(m["data"]["code"].as_str().unwrap_or("").to_string(), 1);
                    }
                }
            }
        }
    }
}

/// Step 5: `--actions` actions `--interval` apart, each timed until the observed binding's update.
async fn actions(plan: &Plan, index: usize, ws: &mut Ws, out: &mut Outcome) -> Result<(), Failure> {
    // Spread the sessions' first actions over one interval so the load is a steady stream.
    let offset = plan.interval.mul_f64((index % plan.sessions.max(1)) as f64 / plan.sessions.max(1) as f64);
    let mut next = Instant::now() + offset;
    for k in 0..plan.actions {
        if Instant::now() < next {
            if let Err(f) = idle(plan, ws, out, tokio::time::sleep_until(next)).await {
                out.actions_failed.add(f.key(), (plan.actions - k) as u64);
                return Err(f);
            }
        }
        let frame = &plan.action_frames[k % plan.action_frames.len()];
        let sent = Instant::now();
        let result = match send(plan, ws, frame).await {
            Ok(()) => wait_update(plan, ws, out, plan.observe_id, false, &[plan.action_id, plan.observe_id]).await,
            Err(f) => Err(f),
        };
        match result {
            Ok(()) => out.round_trips.push(sent.elapsed()),
            Err(f @ (Failure::Close(_) | Failure::Connect(_))) => {
                out.actions_failed.add(f.key(), (plan.actions - k) as u64);
                return Err(f);
            }
            Err(f) => out.actions_failed.add(f.key(), 1),
        }
        next = sent + plan.interval;
    }
    Ok(())
}
