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
