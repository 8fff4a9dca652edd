//! One simulated browser session (docs/configuration.md "ui-gateway loadtest"), as one task from `GET /` to close.
//!
//! Like the built-in frontend (`src/web/connection.js`, `src/web/client.js`), a tab whose WebSocket
//! drops reconnects to the same `/ws/<id>` with the frontend's backoff and starts over: `watch 1`,
//! then its creates. Only close 4404 (session gone) ends a tab at once. An action whose answer the
//! drop cut off is sent again once on the new socket, as a user clicks again; a second drop during
//! the same action counts it failed. A reconnection gives up `--timeout` after the drop.

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
use crate::protocol::close;

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
    /// Successful reconnections, by the cause of the drop (`close-1001`, `connect` …).
    pub reconnects: Tally,
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
    let (id, mut ws) = match set_up {
        Ok(tab) => {
            let _ = events.send(Event::Established { latency: began.elapsed() });
            tab
        }
        Err((failure, detail)) => {
            let _ = events.send(Event::SetupFailed { failure, detail });
            return out;
        }
    };

    // Wait for the other sessions, answering pings and noting anything the server says meanwhile.
    let mut alive = idle_tab(&plan, &id, &mut ws, &mut out, wait_for(&mut gates.actions)).await;
    if alive.is_ok() {
        alive = actions(&plan, index, &id, &mut ws, &mut out).await;
    } else {
        out.actions_failed.add(alive.clone().unwrap_err().key(), plan.actions as u64);
    }
    let _ = events.send(Event::ActionsDone);
    if alive.is_ok() {
        alive = idle_tab(&plan, &id, &mut ws, &mut out, wait_for(&mut gates.close)).await;
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

/// Steps 1–4: `GET /`, `GET /<id>`, the WebSocket, `watch 1`, the creates. Returns the session id
/// and the open socket.
async fn setup(plan: &Plan, out: &mut Outcome) -> Result<(String, Ws), (Failure, String)> {
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

    match open_tab(plan, &id, out).await {
        Ok(ws) => Ok((id, ws)),
        Err((f, _)) if retried(&f) => match reconnect(plan, &id, None, out, f).await {
            Ok(ws) => Ok((id, ws)),
            Err(f) => Err((f, "reconnect".into())),
        },
        Err(e) => Err(e),
    }
}

/// Opens `/ws/<id>` and does what the frontend does after every open: `watch 1`, then (once
/// variable 1 has its type) the creates, until the observed binding's first update.
async fn open_tab(plan: &Plan, id: &str, out: &mut Outcome) -> SetupResult {
    let mut ws = tokio::time::timeout(plan.timeout, open_socket(&plan.target, id))
        .await
        .map_err(|_| (Failure::Timeout, "WebSocket upgrade".into()))??;
    send(plan, &mut ws, WATCH_APP).await.map_err(|f| (f, "watch 1".into()))?;
    wait_update(plan, &mut ws, out, 1, true, &[1]).await.map_err(|f| (f, "watch 1".into()))?;
    send(plan, &mut ws, &plan.setup_frame).await.map_err(|f| (f, "creates".into()))?;
    wait_update(plan, &mut ws, out, plan.observe_id, false, &[plan.observe_id, plan.action_id])
        .await
        .map_err(|f| (f, "creates".into()))?;
    Ok(ws)
}

/// The frontend's first reconnect delay (`BASE_DELAY_MS` in `src/web/connection.js`).
const BASE_DELAY: Duration = Duration::from_millis(500);
/// The frontend's longest reconnect delay (`MAX_DELAY_MS`).
const MAX_DELAY: Duration = Duration::from_secs(15);

/// Delay before reconnect attempt `attempt` (0-based): the frontend's 500 ms doubling up to 15 s,
/// times a random factor in [0.5, 1) so that the tabs of a restarted node do not all come back in
/// the same instant.
pub fn backoff(attempt: u32) -> Duration {
    let base = BASE_DELAY.saturating_mul(1u32 << attempt.min(5)).min(MAX_DELAY);
    let random = getrandom::u32().unwrap_or(0) as f64 / (u32::MAX as f64 + 1.0);
    base.mul_f64(0.5 + random / 2.0)
}

/// Whether the frontend reconnects after this failure: any close except 4404 (session gone), a
/// connection that ended or failed without a status, and an upgrade refused with a 5xx (a load
/// balancer answers 503 while the node behind it restarts). Timeouts, `error` messages and other
/// statuses keep their existing rules.
pub fn retried(f: &Failure) -> bool {
    match f {
        Failure::Close(code) => *code != close::UNKNOWN_SESSION,
        Failure::Connect(_) => true,
        Failure::Http(status) => (500..600).contains(status),
        Failure::Error(_) | Failure::Timeout | Failure::Protocol(_) => false,
    }
}

/// Reconnects a tab whose socket dropped with `cause`: attempts on the frontend's backoff until one
/// opens and bootstraps, a failure the frontend does not retry (4404), or `--timeout` after the drop.
/// The error is the last attempt's failure. The dropped socket is closed first, as a browser does: a
/// server that closed it waits for the answering close frame before it finishes its shutdown.
async fn reconnect(
    plan: &Plan,
    id: &str,
    dropped: Option<&mut Ws>,
    out: &mut Outcome,
    cause: Failure,
) -> Result<Ws, Failure> {
    let deadline = Instant::now() + plan.timeout;
    if let Some(ws) = dropped {
        // Reading on is what sends tungstenite's queued answer to the server's close.
        let _ = tokio::time::timeout_at(deadline, async {
            let _ = ws.close(None).await;
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
    let mut last = cause.clone();
    for attempt in 0.. {
        let at = Instant::now() + backoff(attempt);
        if at > deadline {
            break;
        }
        tokio::time::sleep_until(at).await;
        match open_tab(plan, id, out).await {
            Ok(ws) => {
                out.reconnects.add(cause.key(), 1);
                return Ok(ws);
            }
            Err((f, _)) if retried(&f) => last = f,
            Err((f, _)) => return Err(f),
        }
    }
    Err(last)
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

/// [`idle`], reconnecting the tab whenever its socket drops with a cause the frontend retries.
async fn idle_tab(
    plan: &Plan,
    id: &str,
    ws: &mut Ws,
    out: &mut Outcome,
    until: impl std::future::Future<Output = ()>,
) -> Result<(), Failure> {
    tokio::pin!(until);
    loop {
        match idle(plan, ws, out, &mut until).await {
            Ok(()) => return Ok(()),
            Err(f) if retried(&f) => *ws = reconnect(plan, id, Some(ws), out, f).await?,
            Err(f) => return Err(f),
        }
    }
}

/// Step 5: `--actions` actions `--interval` apart, each timed until the observed binding's update.
///
/// A drop the frontend retries reconnects the tab; the action it cut off is sent again once on the
/// new socket (its round trip is timed from that second send). A failed reconnection, or a drop it
/// does not retry, fails this action and every later one with the drop's cause.
async fn actions(plan: &Plan, index: usize, id: &str, ws: &mut Ws, out: &mut Outcome) -> Result<(), Failure> {
    // Spread the sessions' first actions over one interval so the load is a steady stream.
    let offset = plan.interval.mul_f64((index % plan.sessions.max(1)) as f64 / plan.sessions.max(1) as f64);
    let mut next = Instant::now() + offset;
    let mut k = 0;
    let mut resent = false;
    while k < plan.actions {
        if Instant::now() < next {
            if let Err(f) = idle_tab(plan, id, ws, out, tokio::time::sleep_until(next)).await {
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
            Err(f) if retried(&f) => {
                let cause = f.key();
                match reconnect(plan, id, Some(ws), out, f).await {
                    Ok(fresh) => *ws = fresh,
                    Err(f) => {
                        out.actions_failed.add(f.key(), (plan.actions - k) as u64);
                        return Err(f);
                    }
                }
                if !resent {
                    resent = true;
                    continue;
                }
                out.actions_failed.add(cause, 1);
            }
            Err(f @ (Failure::Close(_) | Failure::Connect(_))) => {
                out.actions_failed.add(f.key(), (plan.actions - k) as u64);
                return Err(f);
            }
            Err(f) => out.actions_failed.add(f.key(), 1),
        }
        resent = false;
        next = sent + plan.interval;
        k += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frontends_retry_rules() {
        for code in [1000, 1001, 1006, 1011, 1012, 1013, 4429] {
            assert!(retried(&Failure::Close(code)), "close {code}");
        }
        assert!(!retried(&Failure::Close(close::UNKNOWN_SESSION)), "4404: the session is gone");
        assert!(retried(&Failure::Connect("connection refused".into())));
        assert!(retried(&Failure::Http(503)) && retried(&Failure::Http(502)));
        assert!(!retried(&Failure::Http(404)) && !retried(&Failure::Http(403)));
        assert!(!retried(&Failure::Timeout));
        assert!(!retried(&Failure::Error("path-failure".into())));
        assert!(!retried(&Failure::Protocol("x".into())));
    }

    #[test]
    fn backoff_doubles_from_half_a_second_to_fifteen_with_jitter() {
        for (attempt, base_ms) in [(0, 500), (1, 1000), (2, 2000), (4, 8000), (5, 15000), (9, 15000), (40, 15000)] {
            for _ in 0..20 {
                let d = backoff(attempt).as_millis() as u64;
                assert!(d >= base_ms / 2 && d < base_ms, "attempt {attempt}: {d} ms");
            }
        }
    }
}
