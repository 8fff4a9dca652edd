//! Replays the language-neutral scenario vectors `protocol/vectors/gateway-*.json` against the real
//! gateway (format: `protocol/vectors/README.md` §2). Each vector gets its own gateway on an ephemeral
//! port; the harness plays the browsers and the backend, checks every frame against the vector's
//! patterns and validates every frame the gateway emits against its schema in `protocol/schemas/`.
//!
//! `SCENARIO=<substring>` limits the run to matching file names. A vector with a top-level `"skip"`
//! string is run and reported but never fails the test (it documents a known server deviation).

#[path = "scenarios/matcher.rs"]
mod matcher;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use futures::stream::{SplitSink, StreamExt};
use futures::SinkExt;
use matcher::{match_any_order, match_value, substitute, Bindings};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ui_gateway::config::{Cli, ServeArgs};
use ui_gateway::gateway::RunningGateway;
use ui_gateway::ids::SessionId;
use ui_gateway::session::EndReason;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/protocol/vectors");
const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/protocol/schemas");
const RECV_TIMEOUT_MS: u64 = 2000;
const QUIET_MS: u64 = 200;
/// How long `close-browser` waits for the gateway's answering close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// An upper bound for one whole vector, so a harness bug cannot hang the test.
const VECTOR_DEADLINE: Duration = Duration::from_secs(90);
/// Vectors replayed at once (the machine is shared; timing-sensitive steps prefer few).
const PARALLEL: usize = 3;

// ---------------------------------------------------------------------------------------------------
// Schemas

/// Validators for every frame kind the gateway emits.
struct Schemas {
    browser: jsonschema::Validator,
    welcome: jsonschema::Validator,
    batch: jsonschema::Validator,
    event: jsonschema::Validator,
    error: jsonschema::Validator,
}

impl Schemas {
    fn load() -> Schemas {
        let load = |file: &str| {
            let path = Path::new(SCHEMAS).join(file);
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        Schemas {
            browser: load("browser-server-frame.json"),
            welcome: load("backend-welcome.json"),
            batch: load("backend-batch.json"),
            event: load("backend-event.json"),
            error: load("backend-error.json"),
        }
    }

    /// Validates one frame the gateway sent on an endpoint of `kind`.
    fn check(&self, kind: Kind, frame: &Value) -> Result<(), String> {
        let (validator, file) = match kind {
            Kind::Browser => (&self.browser, "browser-server-frame.json"),
            Kind::Backend if frame.get("welcome").is_some() => (&self.welcome, "backend-welcome.json"),
            Kind::Backend if frame.get("event").is_some() => (&self.event, "backend-event.json"),
            Kind::Backend if frame.get("error").is_some() => (&self.error, "backend-error.json"),
            Kind::Backend => (&self.batch, "backend-batch.json"),
        };
        let errors: Vec<String> =
            validator.iter_errors(frame).take(5).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!("frame {frame} fails schema {file}: {}", errors.join("; ")))
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Endpoints

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Browser,
    Backend,
}

/// What the reader task saw, in arrival order. Pings and pongs never appear.
#[derive(Debug)]
enum Event {
    Text(String),
    Binary(usize),
    Close(Option<u16>),
    /// The stream ended or failed (after a close frame, or without one).
    Ended(String),
}

impl Event {
    fn describe(&self) -> String {
        match self {
            Event::Text(t) => format!("the frame {t}"),
            Event::Binary(n) => format!("a binary message of {n} bytes (the gateway sends text)"),
            Event::Close(Some(code)) => format!("a close with code {code}"),
            Event::Close(None) => "a close without a code".into(),
            Event::Ended(why) => format!("the end of the connection without a close frame ({why})"),
        }
    }
}

struct Endpoint {
    kind: Kind,
    sink: SplitSink<Socket, Message>,
    events: mpsc::UnboundedReceiver<Event>,
    reader: tokio::task::JoinHandle<()>,
    /// A backend endpoint that received a welcome holds (or held) the gateway's backend link.
    welcomed: Arc<AtomicBool>,
}

impl Endpoint {
    fn new(kind: Kind, socket: Socket) -> Endpoint {
        let (sink, mut stream) = socket.split();
        let (tx, events) = mpsc::unbounded_channel();
        let welcomed = Arc::new(AtomicBool::new(false));
        let seen = welcomed.clone();
        let reader = tokio::spawn(async move {
            loop {
                let event = match stream.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let welcome = || serde_json::from_str::<Value>(&t).is_ok_and(|v| v.get("welcome").is_some());
                        if kind == Kind::Backend && welcome() {
                            seen.store(true, Ordering::SeqCst);
                        }
                        Event::Text(t.to_string())
                    }
                    Some(Ok(Message::Binary(b))) => Event::Binary(b.len()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                    // Keep reading after a close so tungstenite completes the handshake.
                    Some(Ok(Message::Close(frame))) => Event::Close(frame.map(|f| u16::from(f.code))),
                    Some(Err(e)) => {
                        let _ = tx.send(Event::Ended(e.to_string()));
                        break;
                    }
                    None => {
                        let _ = tx.send(Event::Ended("stream ended".into()));
                        break;
                    }
                };
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        Endpoint { kind, sink, events, reader, welcomed }
    }

    async fn next_event(&mut self, wait: Duration) -> Option<Event> {
        tokio::time::timeout(wait, self.events.recv()).await.ok().flatten()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

// ---------------------------------------------------------------------------------------------------
// Vector files

struct VectorFile {
    file: String,
    vector: Value,
}

fn load_vectors() -> Vec<VectorFile> {
    let filter = std::env::var("SCENARIO").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(VECTORS)
        .expect("protocol/vectors exists")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("gateway-") && name.ends_with(".json")
        })
        .filter(|p| filter.as_deref().is_none_or(|f| p.to_string_lossy().contains(f)))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            let vector = serde_json::from_str(&text).unwrap_or_else(|e| json!({"$invalid": e.to_string()}));
            VectorFile { file, vector }
        })
        .collect()
}

/// The gateway options of a vector: `mode`, `site` and `config` mapped onto the command line
/// (`maxFrame` → `--max-frame`), so every flag of the build is available and unknown ones fail clearly.
fn serve_args(vector: &Value) -> Result<ServeArgs, String> {
    serve_args_on(vector, "127.0.0.1:0")
}

/// [`serve_args`] listening on `listen` (`0.0.0.0:0` for vectors that need a non-loopback peer).
fn serve_args_on(vector: &Value, listen: &str) -> Result<ServeArgs, String> {
    let mut argv = vec!["ui-gateway".to_string(), "--listen".into(), listen.to_string()];
    let mode = vector.get("mode").and_then(Value::as_str).ok_or("`mode` is required")?;
    argv.extend(["--mode".into(), mode.to_string()]);
    let site = vector.get("site").map_or(Some("site"), Value::as_str).ok_or("`site` must be a string")?;
    if site.is_empty() || site.contains("..") || site.starts_with('/') {
        return Err(format!("`site` {site:?} must name a directory under fixtures/"));
    }
    let dir = Path::new(VECTORS).join("fixtures").join(site);
    if !dir.is_dir() {
        return Err(format!("site fixtures/{site} does not exist"));
    }
    argv.extend(["--site".into(), dir.display().to_string()]);
    if let Some(config) = vector.get("config") {
        let config = config.as_object().ok_or("`config` must be an object")?;
        for (key, value) in config {
            if matches!(key.as_str(), "listen" | "site" | "mode") {
                return Err(format!("config key {key:?} is set by the harness, not by a vector"));
            }
            let flag = format!("--{}", kebab(key));
            let values = match value {
                Value::Array(items) => items.clone(),
                v => vec![v.clone()],
            };
            for v in values {
                match v {
                    Value::Bool(true) => argv.push(flag.clone()),
                    Value::Bool(false) => {}
                    Value::Number(n) => argv.extend([flag.clone(), n.to_string()]),
                    Value::String(s) => argv.extend([flag.clone(), s]),
                    other => return Err(format!("config {key:?}: unsupported value {other}")),
                }
            }
        }
    }
    let cli = Cli::try_parse_from(&argv).map_err(|e| {
        format!("config not supported by this gateway build ({}): {}", argv[1..].join(" "), e.kind())
            + &format!("\n{}", e.render().to_string().lines().next().unwrap_or(""))
    })?;
    if cli.command.is_some() {
        return Err("unexpected subcommand".into());
    }
    Ok(cli.serve)
}

/// `maxFrame` → `max-frame`.
fn kebab(camel: &str) -> String {
    let mut out = String::new();
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether a vector has a step that needs a non-loopback peer (`"peer": "remote"`).
fn needs_remote_peer(vector: &Value) -> bool {
    let steps = vector.get("steps").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    steps.iter().any(|s| s.get("peer") == Some(&json!("remote")) || s.pointer("/http/peer") == Some(&json!("remote")))
}

/// A local non-loopback IPv4 address, so the gateway sees a remote peer when the harness connects
/// through it: the source address the routing table picks for a documentation address (a connected
/// UDP socket sends nothing).
fn non_loopback_ip() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.51.100.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

// ---------------------------------------------------------------------------------------------------
// Running one vector

struct Run<'a> {
    schemas: &'a Schemas,
    vector: &'a Value,
    args: ServeArgs,
    /// The non-loopback address `"peer": "remote"` connects through (the gateway then listens on all
    /// interfaces).
    remote_ip: Option<IpAddr>,
    gw: Option<RunningGateway>,
    /// Background shutdowns started by `shutdown` steps, awaited at the end.
    stopping: Vec<tokio::task::JoinHandle<bool>>,
    /// Vended id → internal id, for the sessions `open-session` made in this gateway run.
    sessions: HashMap<String, String>,
    endpoints: HashMap<String, Endpoint>,
    bindings: Bindings,
    http: reqwest::Client,
}

fn field<'v>(step: &'v Value, key: &str) -> Result<&'v Value, String> {
    step.get(key).ok_or_else(|| format!("the step needs `{key}`"))
}

/// The endpoint a `connect-backend`/`drop-backend` step names: `backend`, or `backend:<conn>`.
fn backend_endpoint(step: &Value) -> Result<String, String> {
    match step.get("conn") {
        None => Ok("backend".into()),
        Some(Value::String(conn)) if !conn.is_empty() => Ok(format!("backend:{conn}")),
        Some(_) => Err("`conn` must be a non-empty string".into()),
    }
}

fn str_field<'v>(step: &'v Value, key: &str) -> Result<&'v str, String> {
    field(step, key)?.as_str().ok_or_else(|| format!("`{key}` must be a string"))
}

fn ms_field(step: &Value, key: &str, default: u64) -> Result<Duration, String> {
    match step.get(key) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => v.as_u64().map(Duration::from_millis).ok_or_else(|| format!("`{key}` must be a whole number of ms")),
    }
}

impl Run<'_> {
    fn gateway(&self) -> Result<&RunningGateway, String> {
        self.gw.as_ref().ok_or_else(|| "the gateway is shut down".to_string())
    }

    /// Where loopback requests go (a gateway listening on all interfaces is reached through 127.0.0.1).
    fn local_addr(&self) -> Result<SocketAddr, String> {
        let addr = self.gateway()?.addr;
        if addr.ip().is_unspecified() {
            Ok(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), addr.port()))
        } else {
            Ok(addr)
        }
    }

    /// The address to connect to so the gateway sees the requested peer (`"loopback"` or `"remote"`).
    fn peer_addr(&self, peer: Option<&Value>) -> Result<SocketAddr, String> {
        match peer.map(|p| p.as_str().ok_or("`peer` must be a string")).transpose()? {
            None | Some("loopback") => self.local_addr(),
            Some("remote") => {
                let ip = self.remote_ip.ok_or("no non-loopback address for a remote peer")?;
                Ok(SocketAddr::new(ip, self.gateway()?.addr.port()))
            }
            Some(other) => Err(format!("unknown peer {other:?} (\"loopback\" or \"remote\")")),
        }
    }

    fn endpoint(&mut self, name: &str) -> Result<&mut Endpoint, String> {
        self.endpoints.get_mut(name).ok_or_else(|| format!("no open endpoint {name:?}"))
    }

    fn internal_id(&self, vended: &str) -> Result<String, String> {
        self.sessions
            .get(vended)
            .cloned()
            .ok_or_else(|| format!("session {vended:?} was not opened by `open-session` in this gateway run"))
    }

    /// Validates a gateway frame against its schema and parses it.
    fn accept(&self, kind: Kind, event: Event) -> Result<Value, String> {
        match event {
            Event::Text(text) => {
                let frame: Value =
                    serde_json::from_str(&text).map_err(|e| format!("the gateway sent invalid JSON ({e}): {text}"))?;
                self.schemas.check(kind, &frame)?;
                Ok(frame)
            }
            other => Err(format!("expected a frame, got {}", other.describe())),
        }
    }

    async fn step(&mut self, step: &Value) -> Result<(), String> {
        let obj = step.as_object().ok_or("a step must be an object")?;
        if let Some(ep) = obj.get("send") {
            self.send(ep.as_str().ok_or("`send` must name an endpoint")?, step).await
        } else if let Some(ep) = obj.get("recv") {
            self.recv(ep.as_str().ok_or("`recv` must name an endpoint")?, step).await
        } else if let Some(ep) = obj.get("quiet") {
            self.quiet(ep.as_str().ok_or("`quiet` must name an endpoint")?, step).await
        } else if let Some(ep) = obj.get("closed") {
            self.closed(ep.as_str().ok_or("`closed` must name an endpoint")?, step).await
        } else if obj.contains_key("http") {
            self.http_step(step).await
        } else if let Some(action) = obj.get("do") {
            self.action(action.as_str().ok_or("`do` must be a string")?, step).await
        } else {
            Err("unknown step kind (send, recv, quiet, closed, http, do)".into())
        }
    }

    async fn send(&mut self, name: &str, step: &Value) -> Result<(), String> {
        let text = match (step.get("frame"), step.get("raw")) {
            (Some(frame), None) => substitute(frame, &self.bindings)?.to_string(),
            (None, Some(raw)) => raw.as_str().ok_or("`raw` must be a string")?.to_string(),
            _ => return Err("`send` needs exactly one of `frame` and `raw`".into()),
        };
        let binary = step.get("binary").and_then(Value::as_bool).unwrap_or(false);
        let msg = if binary { Message::Binary(text.into_bytes().into()) } else { Message::Text(text.into()) };
        self.endpoint(name)?.sink.send(msg).await.map_err(|e| format!("sending on {name}: {e}"))
    }

    async fn recv(&mut self, name: &str, step: &Value) -> Result<(), String> {
        let pattern = field(step, "frame")?;
        let any_order = match step.get("order") {
            None => false,
            Some(v) if v == "any" => true,
            Some(v) => return Err(format!("`order` must be \"any\", not {v}")),
        };
        let wait = ms_field(step, "timeout", RECV_TIMEOUT_MS)?;
        let ep = self.endpoint(name)?;
        let kind = ep.kind;
        let event = ep
            .next_event(wait)
            .await
            .ok_or_else(|| format!("no frame within {} ms; expected {pattern}", wait.as_millis()))?;
        let frame = self.accept(kind, event).map_err(|e| format!("{e}\n  expected {pattern}"))?;
        let matched = if any_order {
            match_any_order(pattern, &frame, &mut self.bindings)
        } else {
            match_value(pattern, &frame, &mut self.bindings)
        };
        matched.map_err(|e| format!("mismatch: {e}\n  expected {pattern}\n  received {frame}"))
    }

    async fn quiet(&mut self, name: &str, step: &Value) -> Result<(), String> {
        let wait = ms_field(step, "ms", QUIET_MS)?;
        let ep = self.endpoint(name)?;
        let kind = ep.kind;
        match ep.next_event(wait).await {
            None => Ok(()),
            Some(event) => {
                let what = event.describe();
                // A frame that breaks its schema is reported as such.
                self.accept(kind, event)?;
                Err(format!("expected nothing for {} ms, got {what}", wait.as_millis()))
            }
        }
    }

    async fn closed(&mut self, name: &str, step: &Value) -> Result<(), String> {
        let code = field(step, "code")?.as_u64().ok_or("`code` must be an integer")?;
        let wait = ms_field(step, "timeout", RECV_TIMEOUT_MS)?;
        let ep = self.endpoint(name)?;
        let kind = ep.kind;
        match ep.next_event(wait).await {
            None => Err(format!("no close within {} ms (expected code {code})", wait.as_millis())),
            Some(Event::Close(Some(got))) if u64::from(got) == code => Ok(()),
            Some(Event::Text(t)) => {
                let event = Event::Text(t.clone());
                self.accept(kind, event)?;
                Err(format!("expected a close with code {code}, got the unconsumed frame {t}"))
            }
            Some(other) => Err(format!("expected a close with code {code}, got {}", other.describe())),
        }
    }

    async fn http_step(&mut self, step: &Value) -> Result<(), String> {
        let req = field(step, "http")?;
        let method = req.get("method").map_or(Some("GET"), Value::as_str).ok_or("`http.method` must be a string")?;
        let path = str_field(req, "path")?;
        let url = format!("http://{}{}", self.peer_addr(req.get("peer"))?, path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| format!("method: {e}"))?;
        let mut builder = self.http.request(method, &url);
        if let Some(headers) = req.get("headers") {
            for (k, v) in headers.as_object().ok_or("`http.headers` must be an object")? {
                builder = builder.header(k.as_str(), v.as_str().ok_or("request header values must be strings")?);
            }
        }
        let resp = builder.send().await.map_err(|e| format!("{url}: {e}"))?;
        let want = field(step, "status")?.as_u64().ok_or("`status` must be an integer")?;
        let status = resp.status().as_u16();
        let mut problems = Vec::new();
        if u64::from(status) != want {
            problems.push(format!("status {status}, expected {want}"));
        }
        if let Some(headers) = step.get("headers") {
            for (name, pattern) in headers.as_object().ok_or("`headers` must be an object")? {
                let got = resp.headers().get(name.as_str()).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                match (got, pattern) {
                    (None, Value::Null) => {}
                    (Some(v), Value::Null) => problems.push(format!("header {name}: {v:?}, expected none")),
                    (None, p) => problems.push(format!("header {name} missing, expected {p}")),
                    (Some(v), p) => {
                        if let Err(e) = match_value(p, &Value::String(v.clone()), &mut self.bindings) {
                            problems.push(format!("header {name}: {e}"));
                        }
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} {path}: {}",
                req.get("method").and_then(Value::as_str).unwrap_or("GET"),
                problems.join("; ")
            ))
        }
    }

    async fn action(&mut self, action: &str, step: &Value) -> Result<(), String> {
        match action {
            "open-session" => self.open_session().await,
            "connect-browser" => {
                let conn = str_field(step, "conn")?;
                let internal = self.internal_id(str_field(step, "session")?)?;
                let url = format!("ws://{}/ws/{internal}", self.local_addr()?);
                let socket = self.connect(&url, step.get("headers")).await?;
                self.endpoints.insert(format!("browser:{conn}"), Endpoint::new(Kind::Browser, socket));
                Ok(())
            }
            "close-browser" => {
                let name = format!("browser:{}", str_field(step, "conn")?);
                let mut ep = self.endpoints.remove(&name).ok_or_else(|| format!("no open endpoint {name:?}"))?;
                let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                ep.sink.send(Message::Close(Some(close))).await.map_err(|e| format!("closing {name}: {e}"))?;
                // Wait for the gateway's answer so it has seen the close before the next step; frames that
                // crossed the close are still validated.
                let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
                while let Ok(Some(event)) = tokio::time::timeout_at(deadline, ep.events.recv()).await {
                    match event {
                        Event::Text(t) => {
                            self.accept(Kind::Browser, Event::Text(t))?;
                        }
                        Event::Binary(_) => {}
                        Event::Close(_) | Event::Ended(_) => break,
                    }
                }
                Ok(())
            }
            "connect-backend" => {
                let name = backend_endpoint(step)?;
                let mut url = format!("ws://{}/backend", self.peer_addr(step.get("peer"))?);
                // A worker's name and capacity (PROTOCOL.md B14), e.g. "worker=a&capacity=2".
                if let Some(query) = step.get("query").and_then(Value::as_str) {
                    url = format!("{url}?{query}");
                }
                let socket = self.connect(&url, step.get("headers")).await?;
                self.endpoints.insert(name, Endpoint::new(Kind::Backend, socket));
                Ok(())
            }
            "drop-backend" => {
                // Dropping both halves closes the TCP connection without a close frame.
                let name = backend_endpoint(step)?;
                let ep = self.endpoints.remove(&name).ok_or_else(|| format!("no open endpoint {name:?}"))?;
                let held_link = ep.welcomed.load(Ordering::SeqCst);
                let workers = self.gateway()?.gateway.backend.as_ref().map_or(0, |hub| hub.worker_count());
                drop(ep);
                // A connection that got the welcome was a worker of the pool: wait until the gateway has
                // noticed the drop and released it (so a following connect is not refused, and the
                // hand-over of its sessions has started).
                if held_link {
                    let hub = self.gateway()?.gateway.backend.clone().ok_or("no backend link in this mode")?;
                    let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
                    while hub.worker_count() >= workers {
                        if tokio::time::Instant::now() >= deadline {
                            return Err("the gateway did not notice the dropped backend".into());
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                Ok(())
            }
            "expire-session" => {
                let internal: SessionId =
                    self.internal_id(str_field(step, "session")?)?.parse().map_err(|_| "bad id")?;
                if self.gateway()?.gateway.sessions.destroy_session(&internal, EndReason::Timeout) {
                    Ok(())
                } else {
                    Err("the session had already ended".into())
                }
            }
            "restart-gateway" => {
                if let Some(mode) = step.get("mode") {
                    // The same options in another mode (a vector comparing modes).
                    let mut vector = self.vector.clone();
                    vector["mode"] = mode.clone();
                    let listen = self.args.listen.to_string();
                    self.args = serve_args_on(&vector, &listen)?;
                }
                let gw = self.gw.take().ok_or("the gateway is shut down")?;
                gw.shutdown(self.args.shutdown_timeout).await;
                self.sessions.clear();
                self.gw = Some(RunningGateway::start(&self.args).await.map_err(|e| format!("restart: {e}"))?);
                Ok(())
            }
            "shutdown" => {
                let gw = self.gw.take().ok_or("the gateway is already shut down")?;
                let deadline = self.args.shutdown_timeout;
                self.stopping.push(tokio::spawn(gw.shutdown(deadline)));
                Ok(())
            }
            other => Err(format!("unknown action {other:?}")),
        }
    }

    async fn open_session(&mut self) -> Result<(), String> {
        let gw = self.gateway()?;
        let url = format!("http://{}/", self.local_addr()?);
        let resp = self.http.get(url).send().await.map_err(|e| format!("GET /: {e}"))?;
        if resp.status() != 302 {
            return Err(format!("GET / answered {}, expected 302", resp.status()));
        }
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).ok_or("GET /: no Location")?;
        let internal = location.trim_start_matches('/').to_string();
        let id: SessionId = internal.parse().map_err(|_| format!("GET /: Location {location:?} is not /<id>"))?;
        let vended = gw.gateway.sessions.get_vended_id(&id).ok_or("the new session has no vended id")?.to_string();
        self.sessions.insert(vended, internal);
        Ok(())
    }

    async fn connect(&self, url: &str, headers: Option<&Value>) -> Result<Socket, String> {
        let mut req = url.into_client_request().map_err(|e| format!("{url}: {e}"))?;
        if let Some(headers) = headers {
            for (k, v) in headers.as_object().ok_or("`headers` must be an object")? {
                let name: tokio_tungstenite::tungstenite::http::HeaderName =
                    k.parse().map_err(|_| format!("bad header name {k:?}"))?;
                let value = v.as_str().ok_or("header values must be strings")?;
                req.headers_mut().insert(name, value.parse().map_err(|_| format!("bad header value {value:?}"))?);
            }
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                Err(format!("{url}: upgrade refused with HTTP {}", resp.status()))
            }
            Err(e) => Err(format!("{url}: {e}")),
        }
    }

    /// Validates what is still queued, then stops everything.
    async fn finish(mut self) -> Result<(), String> {
        let mut problem = Ok(());
        let mut names: Vec<String> = self.endpoints.keys().cloned().collect();
        names.sort();
        for name in names {
            let mut ep = self.endpoints.remove(&name).expect("listed");
            while let Ok(event) = ep.events.try_recv() {
                if let Event::Text(t) = event {
                    if let Err(e) = self.accept(ep.kind, Event::Text(t)) {
                        if problem.is_ok() {
                            problem = Err(format!("after the last step, on {name}: {e}"));
                        }
                    }
                }
            }
        }
        if let Some(gw) = self.gw.take() {
            gw.shutdown(Duration::from_secs(5)).await;
        }
        for stop in self.stopping.drain(..) {
            let _ = stop.await;
        }
        problem
    }
}

/// Outcome of one vector.
enum Outcome {
    Passed,
    Failed(String),
    /// Marked `skip`; `Some(failure)` if it still fails, `None` if it passes now.
    Skipped(String, Option<String>),
    /// Cannot run on this machine (no non-loopback address for a remote peer).
    Unsupported(String),
}

async fn run_vector(schemas: &Schemas, file: &str, vector: &Value) -> Outcome {
    let remote_ip = non_loopback_ip();
    if needs_remote_peer(vector) && remote_ip.is_none() {
        return Outcome::Unsupported("it needs a remote peer and this machine has no non-loopback IPv4 address".into());
    }
    let result = tokio::time::timeout(VECTOR_DEADLINE, replay(schemas, file, vector, remote_ip))
        .await
        .unwrap_or_else(|_| Err(format!("did not finish within {} s", VECTOR_DEADLINE.as_secs())));
    match (vector.get("skip").and_then(Value::as_str), result) {
        (Some(reason), r) => Outcome::Skipped(reason.to_string(), r.err()),
        (None, Ok(())) => Outcome::Passed,
        (None, Err(e)) => Outcome::Failed(e),
    }
}

async fn replay(schemas: &Schemas, file: &str, vector: &Value, remote_ip: Option<IpAddr>) -> Result<(), String> {
    if let Some(e) = vector.get("$invalid") {
        return Err(format!("not valid JSON: {e}"));
    }
    let name = vector.get("name").and_then(Value::as_str).ok_or("`name` is required")?;
    let stem = file.strip_prefix("gateway-").and_then(|f| f.strip_suffix(".json")).unwrap_or(file);
    if name != stem {
        return Err(format!("`name` {name:?} must equal the file name without prefix and extension ({stem:?})"));
    }
    if let Some(skip) = vector.get("skip") {
        if skip.as_str().is_none_or(str::is_empty) {
            return Err("`skip` must be a non-empty string giving the reason".into());
        }
    }
    let steps = vector.get("steps").and_then(Value::as_array).ok_or("`steps` must be an array")?;
    // A vector with a remote peer gets a gateway on every interface; all others stay on loopback.
    let remote_ip = remote_ip.filter(|_| needs_remote_peer(vector));
    let args = serve_args_on(vector, if remote_ip.is_some() { "0.0.0.0:0" } else { "127.0.0.1:0" })?;
    let gw = RunningGateway::start(&args).await.map_err(|e| format!("the gateway does not start: {e}"))?;
    let mut run = Run {
        schemas,
        vector,
        args,
        remote_ip,
        gw: Some(gw),
        stopping: Vec::new(),
        sessions: HashMap::new(),
        endpoints: HashMap::new(),
        bindings: Bindings::default(),
        http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
    };
    let mut outcome = Ok(());
    for (i, step) in steps.iter().enumerate() {
        if let Err(e) = run.step(step).await {
            outcome = Err(format!("step {i} {step}\n  {e}"));
            break;
        }
    }
    let finished = run.finish().await;
    outcome.and(finished)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_vectors() {
    let schemas = Schemas::load();
    let vectors = load_vectors();
    assert!(!vectors.is_empty() || std::env::var("SCENARIO").is_ok(), "no gateway-*.json vectors found");
    let outcomes: Vec<(String, Outcome)> = futures::stream::iter(vectors.iter())
        .map(|v| {
            let schemas = &schemas;
            async move { (v.file.clone(), run_vector(schemas, &v.file, &v.vector).await) }
        })
        .buffered(PARALLEL)
        .collect()
        .await;
    let mut failures = Vec::new();
    for (file, outcome) in &outcomes {
        match outcome {
            Outcome::Passed => eprintln!("ok    {file}"),
            Outcome::Failed(e) => {
                eprintln!("FAIL  {file}");
                failures.push(format!("{file}: {e}"));
            }
            Outcome::Skipped(reason, Some(e)) => eprintln!("skip  {file}: {reason}\n      still fails: {e}"),
            Outcome::Unsupported(reason) => eprintln!("n/a   {file}: not run here: {reason}"),
            Outcome::Skipped(reason, None) => {
                eprintln!("skip  {file}: {reason}\n      NOTE: it passes now; remove its `skip`")
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenario vectors failed:\n\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n\n")
    );
}

#[test]
fn config_keys_map_onto_flags() {
    assert_eq!(kebab("maxFrame"), "max-frame");
    assert_eq!(kebab("allowedOrigin"), "allowed-origin");
    let v = json!({"name": "x", "mode": "embedded",
        "config": {"maxFrame": 4096, "pingInterval": "25s", "allowedOrigin": ["http://a.example", "http://b.example"]}});
    let args = serve_args(&v).unwrap();
    assert_eq!(args.max_frame, 4096);
    assert_eq!(args.ping_interval, Duration::from_secs(25));
    assert_eq!(args.allowed_origins, vec!["http://a.example", "http://b.example"]);
    assert_eq!(args.listen.port(), 0);
    assert!(serve_args(&json!({"mode": "embedded", "config": {"noSuchFlag": 1}})).is_err());
    assert!(serve_args(&json!({"mode": "embedded", "config": {"listen": "0.0.0.0:80"}})).is_err());
    assert!(serve_args(&json!({"mode": "embedded", "site": "../x"})).is_err());
    assert!(serve_args(&json!({"config": {}})).is_err());
}
