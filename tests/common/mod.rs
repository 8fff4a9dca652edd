//! Test harness: a real gateway on an ephemeral port, an HTTP client that does not follow redirects,
//! and a small scripted WebSocket client.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use ui_gateway::config::ServeArgs;
use ui_gateway::gateway::RunningGateway;

/// How long any awaited step may take before the test fails (generous: CI machines are slow).
pub const STEP: Duration = Duration::from_secs(10);

/// Default test arguments: ephemeral port, built-in demo.
pub fn args() -> ServeArgs {
    ServeArgs { listen: "127.0.0.1:0".parse().unwrap(), ..Default::default() }
}

pub async fn start(args: ServeArgs) -> RunningGateway {
    RunningGateway::start(&args).await.expect("gateway starts")
}

/// A throwaway site directory with the given files (relative path → content).
pub fn site(files: &[(&str, &str)]) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("uigw-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// `GET /` and returns the new session's internal id from the Location header.
pub async fn new_session(gw: &RunningGateway) -> String {
    let r = http().get(format!("http://{}/", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    loc.trim_start_matches('/').to_string()
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Opens `/ws/<id>` with the given Origin (None = no Origin header).
pub async fn connect(
    gw: &RunningGateway,
    id: &str,
    origin: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{}/ws/{id}", gw.addr).into_client_request().unwrap();
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    let (stream, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(Ws { stream })
}

impl Ws {
    pub async fn send(&mut self, v: Value) {
        self.stream.send(Message::Text(v.to_string().into())).await.unwrap();
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.stream.send(Message::Text(text.to_string().into())).await.unwrap();
    }

    /// The next server frame (always a JSON array).
    pub async fn recv(&mut self) -> Vec<Value> {
        loop {
            let msg =
                tokio::time::timeout(STEP, self.stream.next()).await.expect("a frame in time").expect("open").unwrap();
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    return v.as_array().expect("server frames are arrays").clone();
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Waits for the close frame and returns its code.
    pub async fn closed(&mut self) -> u16 {
        loop {
            let msg = tokio::time::timeout(STEP, self.stream.next()).await.expect("close in time");
            match msg {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(Message::Close(None))) => return u16::from(CloseCode::Status),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error before close: {e}"),
                None => panic!("socket ended without a close frame"),
            }
        }
    }

    /// Asserts no frame arrives for `wait`.
    pub async fn quiet(&mut self, wait: Duration) {
        if let Ok(Some(Ok(msg))) = tokio::time::timeout(wait, self.stream.next()).await {
            if !matches!(msg, Message::Ping(_) | Message::Pong(_)) {
                panic!("expected silence, got {msg:?}");
            }
        }
    }
}

pub fn watch(var: i64) -> Value {
    serde_json::json!({"userEvent": false, "messages": [{"type": "watch", "data": {"varId": var}}]})
}

/// What one tab knows, built from the frames it received: values, properties and errors by client id,
/// plus the viewdef keys delivered. Lets tests wait for a state instead of an exact frame split.
#[derive(Default, Debug)]
pub struct Mirror {
    pub values: std::collections::HashMap<i64, Value>,
    pub props: std::collections::HashMap<i64, serde_json::Map<String, Value>>,
    pub errors: std::collections::HashMap<i64, String>,
    pub destroyed: Vec<i64>,
    pub viewdefs: std::collections::BTreeSet<String>,
}

impl Mirror {
    pub fn apply(&mut self, frame: &[Value]) {
        for m in frame {
            let data = &m["data"];
            let id = data["varId"].as_i64().unwrap_or(0);
            match m["type"].as_str() {
                Some("update") => {
                    if let Some(v) = data.get("value") {
                        self.values.insert(id, v.clone());
                        self.errors.remove(&id);
                    }
                    if let Some(props) = data.get("properties").and_then(Value::as_object) {
                        for (k, v) in props {
                            if k == "viewdefs" {
                                let defs: Value = serde_json::from_str(v.as_str().unwrap()).unwrap();
                                self.viewdefs.extend(defs.as_object().unwrap().keys().cloned());
                            } else {
                                self.props.entry(id).or_default().insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
                Some("error") => {
                    self.errors.insert(id, data["code"].as_str().unwrap_or("").to_string());
                }
                Some("destroy") => self.destroyed.push(id),
                _ => {}
            }
        }
    }

    pub fn value(&self, id: i64) -> Value {
        self.values.get(&id).cloned().unwrap_or(Value::Null)
    }

    pub fn prop(&self, id: i64, name: &str) -> Option<&str> {
        self.props.get(&id).and_then(|p| p.get(name)).and_then(Value::as_str)
    }
}

impl Ws {
    /// Receives frames into `mirror` until `done` holds (fails after [`STEP`] without progress).
    pub async fn until(&mut self, mirror: &mut Mirror, done: impl Fn(&Mirror) -> bool) {
        while !done(mirror) {
            let frame = self.recv().await;
            mirror.apply(&frame);
        }
    }
}

/// The built-in demo's bootstrap on one tab: watch 1, then `count` (2, read-only) and `increment()`
/// (3, action). Returns the tab's mirror with count known.
pub async fn demo_counter(ws: &mut Ws) -> Mirror {
    let mut m = Mirror::default();
    ws.send(watch(1)).await;
    ws.until(&mut m, |m| m.values.contains_key(&1)).await;
    ws.send(creates(&[
        (2, 1, serde_json::json!({"path":"count","access":"r"})),
        (3, 1, serde_json::json!({"path":"increment()","access":"action"})),
    ]))
    .await;
    ws.until(&mut m, |m| m.values.contains_key(&2)).await;
    m
}

/// A frame of `create` messages: (id, parent, properties).
pub fn creates(items: &[(i64, i64, Value)]) -> Value {
    let messages: Vec<Value> = items
        .iter()
        .map(|(id, parent, props)| {
            serde_json::json!({"type":"create","data":{"id":id,"parentId":parent,"properties":props}})
        })
        .collect();
    serde_json::json!({"userEvent": false, "messages": messages})
}

/// A frame with one value update.
pub fn set(var: i64, value: Value, user_event: bool) -> Value {
    serde_json::json!({"userEvent": user_event, "messages":[{"type":"update","data":{"varId":var,"value":value}}]})
}

/// Opens `/backend` with extra request headers (e.g. `authorization`).
pub async fn connect_backend(
    gw: &RunningGateway,
    headers: &[(&str, &str)],
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{}/backend", gw.addr).into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let (stream, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(Ws { stream })
}

impl Ws {
    /// The next text frame as JSON, whatever its shape (backend frames are objects).
    pub async fn recv_json(&mut self) -> Value {
        loop {
            let msg =
                tokio::time::timeout(STEP, self.stream.next()).await.expect("a frame in time").expect("open").unwrap();
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).unwrap(),
                Message::Binary(b) => return serde_json::from_slice(&b).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }
}

/// A hand-rolled WebSocket client over a plain `TcpStream`, for tests that need what a library client
/// hides: not reading at all (a slow or dead reader), or reading a close frame without answering it.
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// One frame as received (server frames are unmasked).
#[derive(Debug)]
pub enum RawFrame {
    Text(String),
    Close(u16),
    Other(u8),
}

impl RawWs {
    /// Opens `/ws/<id>` on `addr`; `recv_buffer` shrinks the socket's receive buffer so a client that
    /// stops reading fills the path quickly.
    pub async fn connect(addr: std::net::SocketAddr, path: &str, recv_buffer: Option<u32>) -> RawWs {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(n) = recv_buffer {
            socket.set_recv_buffer_size(n).unwrap();
        }
        let mut stream = socket.connect(addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(STEP, stream.read(&mut chunk)).await.expect("handshake in time").unwrap();
            assert!(n > 0, "connection closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        buf.drain(..end);
        RawWs { stream, buf }
    }

    /// Sends one masked text frame.
    pub async fn send(&mut self, text: &str) {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(&Self::encode(0x1, text.as_bytes())).await.unwrap();
    }

    /// Sends a close frame with `code`.
    pub async fn send_close(&mut self, code: u16) {
        use tokio::io::AsyncWriteExt;
        let _ = self.stream.write_all(&Self::encode(0x8, &code.to_be_bytes())).await;
    }

    fn encode(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n < 65536 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    async fn fill(&mut self, want: usize) -> bool {
        use tokio::io::AsyncReadExt;
        while self.buf.len() < want {
            let mut chunk = vec![0u8; 64 * 1024];
            // A read error (reset) ends the stream like EOF.
            let n: usize = tokio::time::timeout(STEP, self.stream.read(&mut chunk))
                .await
                .expect("data in time")
                .unwrap_or_default();
            if n == 0 {
                return false;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        true
    }

    /// The next frame, or `None` when the TCP connection ended (without a close frame).
    pub async fn next(&mut self) -> Option<RawFrame> {
        if !self.fill(2).await {
            return None;
        }
        let opcode = self.buf[0] & 0x0f;
        let (len, header) = match self.buf[1] & 0x7f {
            126 => {
                if !self.fill(4).await {
                    return None;
                }
                (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
            }
            127 => {
                if !self.fill(10).await {
                    return None;
                }
                (u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize, 10)
            }
            n => (n as usize, 2),
        };
        if !self.fill(header + len).await {
            return None;
        }
        let payload: Vec<u8> = self.buf.drain(..header + len).skip(header).collect();
        Some(match opcode {
            0x1 => RawFrame::Text(String::from_utf8(payload).expect("text frames are UTF-8")),
            0x8 if payload.len() >= 2 => RawFrame::Close(u16::from_be_bytes([payload[0], payload[1]])),
            0x8 => RawFrame::Close(1005),
            other => RawFrame::Other(other),
        })
    }

    /// Reads (and discards) frames until the close frame; its code, or `None` if the TCP connection
    /// ended without one. Counts the text frames skipped.
    pub async fn until_close(&mut self) -> (Option<u16>, usize) {
        let mut texts = 0;
        loop {
            match self.next().await {
                Some(RawFrame::Close(code)) => return (Some(code), texts),
                Some(RawFrame::Text(_)) => texts += 1,
                Some(RawFrame::Other(_)) => {}
                None => return (None, texts),
            }
        }
    }
}

/// A subscriber that writes the gateway's info-level lines, without colours, into `buf` (for tests that
/// read what was logged).
pub fn log_subscriber(buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>) -> impl tracing::Subscriber + Send + Sync {
    #[derive(Clone)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink(buf);
    tracing_subscriber::fmt()
        .with_env_filter("ui_gateway=info")
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish()
}
