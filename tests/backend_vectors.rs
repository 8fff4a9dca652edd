//! Replays `protocol/vectors/backend-*.json` against the Rust backend client library: the test plays
//! the gateway (endpoint `gateway`), listening on a port the client under test connects to. The
//! fixture apps are the examples themselves (`examples/counter_backend`, `examples/todo_backend`).

#[allow(dead_code)]
#[path = "../examples/counter_backend/main.rs"]
mod counter;
#[allow(dead_code)]
#[path = "../examples/todo_backend/main.rs"]
mod todo;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use ui_gateway_client::{Client, ClientConfig, RunningClient};

/// How long a `connect-backend` waits for the client (it may be in its reconnect backoff).
const CONNECT_WAIT: Duration = Duration::from_secs(10);

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("protocol/vectors")
}

/// Object-id bindings of one vector (`"$obj:NAME"` → N).
#[derive(Default)]
struct Bindings {
    objs: HashMap<String, i64>,
}

impl Bindings {
    /// Matches `got` against `pattern` (vectors/README.md §2.4); `Err` explains the first mismatch.
    fn matches(&mut self, pattern: &Value, got: &Value, at: &str) -> Result<(), String> {
        let fail = || Err(format!("at {at}: expected {pattern}, got {got}"));
        match pattern {
            Value::String(p) if p == "$any" => Ok(()),
            Value::String(p) if p == "$string" => {
                if got.is_string() {
                    Ok(())
                } else {
                    fail()
                }
            }
            Value::String(p) if p == "$hex32" => match got.as_str() {
                Some(s) if s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => Ok(()),
                _ => fail(),
            },
            Value::String(p) if p.starts_with("$obj:") => {
                let Some(n) = got.as_i64().filter(|n| *n >= 1 && got.is_i64()) else { return fail() };
                let name = &p[5..];
                match self.objs.get(name) {
                    Some(&bound) if bound == n => Ok(()),
                    Some(_) => fail(),
                    None if self.objs.values().any(|&v| v == n) => {
                        Err(format!("at {at}: {p} = {n} is already bound to another name"))
                    }
                    None => {
                        self.objs.insert(name.to_string(), n);
                        Ok(())
                    }
                }
            }
            Value::String(p) if p.starts_with("$$") => {
                if got.as_str() == Some(&p[1..]) {
                    Ok(())
                } else {
                    fail()
                }
            }
            Value::Object(p) => {
                let Some(g) = got.as_object() else { return fail() };
                if p.len() != g.len() || p.keys().any(|k| !g.contains_key(k)) {
                    return fail();
                }
                for (k, v) in p {
                    self.matches(v, &g[k], &format!("{at}.{k}"))?;
                }
                Ok(())
            }
            Value::Array(p) => {
                let Some(g) = got.as_array() else { return fail() };
                if p.len() != g.len() {
                    return fail();
                }
                for (i, (pv, gv)) in p.iter().zip(g).enumerate() {
                    self.matches(pv, gv, &format!("{at}[{i}]"))?;
                }
                Ok(())
            }
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                if got.is_i64() || got.is_u64() {
                    if got == pattern {
                        Ok(())
                    } else {
                        fail()
                    }
                } else {
                    fail()
                }
            }
            Value::Number(n) => {
                if got.as_f64() == n.as_f64() {
                    Ok(())
                } else {
                    fail()
                }
            }
            _ => {
                if pattern == got {
                    Ok(())
                } else {
                    fail()
                }
            }
        }
    }

    /// `"order":"any"`: the messages as a multiset, except that a `create` of id 1 stays first.
    fn matches_any_order(&mut self, pattern: &Value, got: &Value) -> Result<(), String> {
        let (Some(pm), Some(gm)) = (pattern["messages"].as_array(), got["messages"].as_array()) else {
            return self.matches(pattern, got, "frame");
        };
        let mut p_rest = pattern.clone();
        p_rest["messages"] = Value::Array(vec![]);
        let mut g_rest = got.clone();
        g_rest["messages"] = Value::Array(vec![]);
        self.matches(&p_rest, &g_rest, "frame")?;
        if pm.len() != gm.len() {
            return Err(format!("expected {} messages, got {}: {got}", pm.len(), gm.len()));
        }
        let mut pm: Vec<&Value> = pm.iter().collect();
        let mut gm: Vec<&Value> = gm.iter().collect();
        if pm.first().is_some_and(|m| m["type"] == "create" && m["data"]["id"] == 1) {
            self.matches(pm.remove(0), gm.remove(0), "messages[0]")?;
        }
        // Greedy with rollback of bindings per attempt: vectors keep patterns distinguishable.
        for p in pm {
            let mut found = None;
            for (i, g) in gm.iter().enumerate() {
                let saved = self.objs.clone();
                if self.matches(p, g, "message").is_ok() {
                    found = Some(i);
                    break;
                }
                self.objs = saved;
            }
            match found {
                Some(i) => {
                    gm.remove(i);
                }
                None => return Err(format!("no received message matches {p} in {got}")),
            }
        }
        Ok(())
    }

    /// Replaces bound `"$obj:NAME"` placeholders in a frame to send.
    fn substitute(&self, v: &Value) -> Value {
        match v {
            Value::String(s) if s.starts_with("$obj:") => {
                self.objs.get(&s[5..]).map_or_else(|| v.clone(), |n| Value::from(*n))
            }
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), self.substitute(v))).collect()),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.substitute(v)).collect()),
            _ => v.clone(),
        }
    }
}

/// The harness as the gateway.
struct Gateway {
    listener: TcpListener,
    ws: Option<WebSocketStream<TcpStream>>,
    bindings: Bindings,
}

impl Gateway {
    async fn accept(&mut self) {
        let (tcp, _) = tokio::time::timeout(CONNECT_WAIT, self.listener.accept())
            .await
            .expect("the backend connects in time")
            .unwrap();
        #[allow(clippy::result_large_err)] // the handshake callback's signature is tungstenite's
        let check = |req: &Request, resp: Response| {
            assert_eq!(req.uri().path(), "/backend");
            assert!(req.headers().get("origin").is_none(), "a backend never sends Origin");
            Ok(resp)
        };
        self.ws = Some(tokio_tungstenite::accept_hdr_async(tcp, check).await.unwrap());
    }

    fn ws(&mut self) -> &mut WebSocketStream<TcpStream> {
        self.ws.as_mut().expect("connect-backend first")
    }

    /// The next frame, or `None` on timeout; panics on close.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let msg = match tokio::time::timeout(wait, self.ws().next()).await {
                Err(_) => return None,
                Ok(m) => m,
            };
            match msg {
                Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).expect("backend frames are JSON")),
                Some(Ok(Message::Binary(b))) => return Some(serde_json::from_slice(&b).expect("JSON")),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    async fn step(&mut self, step: &Value, n: usize) {
        let ctx = format!("step {n}: {step}");
        if let Some(action) = step.get("do").and_then(Value::as_str) {
            match action {
                "connect-backend" => self.accept().await,
                "drop-backend" => {
                    // Drop the TCP connection without a close frame.
                    self.ws.take();
                }
                other => panic!("{ctx}: unknown action {other}"),
            }
        } else if step.get("send").is_some() {
            let text = match (step.get("frame"), step.get("raw")) {
                (Some(f), _) => self.bindings.substitute(f).to_string(),
                (None, Some(Value::String(raw))) => raw.clone(),
                _ => panic!("{ctx}: send needs frame or raw"),
            };
            let binary = step.get("binary") == Some(&Value::Bool(true));
            let msg = if binary { Message::Binary(text.into_bytes().into()) } else { Message::Text(text.into()) };
            self.ws().send(msg).await.unwrap();
        } else if step.get("recv").is_some() {
            let wait = Duration::from_millis(step.get("timeout").and_then(Value::as_u64).unwrap_or(2000));
            let got = self.next(wait).await.unwrap_or_else(|| panic!("{ctx}: no frame in time"));
            let pattern = &step["frame"];
            let result = if step.get("order").and_then(Value::as_str) == Some("any") {
                self.bindings.matches_any_order(pattern, &got)
            } else {
                self.bindings.matches(pattern, &got, "frame")
            };
            if let Err(e) = result {
                panic!("{ctx}\n  mismatch: {e}");
            }
        } else if step.get("quiet").is_some() {
            let ms = step.get("ms").and_then(Value::as_u64).unwrap_or(200);
            if let Some(got) = self.next(Duration::from_millis(ms)).await {
                panic!("{ctx}: expected silence, got {got}");
            }
        } else {
            panic!("{ctx}: unknown step");
        }
    }
}

fn start_fixture(fixture: &str, mode: &str, url: String) -> RunningClient {
    let client = Client::new(ClientConfig::new(url));
    match (fixture, mode) {
        ("counter", "connected") => client.connected(counter::app).start(),
        ("counter", "hybrid") => client.hybrid(counter::app).start(),
        ("todo", "connected") => client.connected(todo::app).start(),
        ("todo", "hybrid") => client.hybrid(todo::app).start(),
        other => panic!("unknown fixture/mode {other:?}"),
    }
    .expect("client starts")
}

async fn replay(name: &str) {
    let path = vectors_dir().join(format!("backend-{name}.json"));
    let vector: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(vector["name"], name);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/backend", listener.local_addr().unwrap());
    let client = start_fixture(vector["fixture"].as_str().unwrap(), vector["mode"].as_str().unwrap(), url);
    let mut gw = Gateway { listener, ws: None, bindings: Bindings::default() };
    for (n, step) in vector["steps"].as_array().unwrap().iter().enumerate() {
        gw.step(step, n).await;
    }
    drop(gw);
    client.shutdown().await.unwrap();
}

macro_rules! vectors {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                replay($name).await;
            }
        )*

        /// Every `backend-*.json` file has a test above.
        #[test]
        fn every_backend_vector_is_replayed() {
            let known = [$($name),*];
            for entry in std::fs::read_dir(vectors_dir()).unwrap() {
                let file = entry.unwrap().file_name().into_string().unwrap();
                if let Some(name) = file.strip_prefix("backend-").and_then(|f| f.strip_suffix(".json")) {
                    assert!(known.contains(&name), "backend vector {file} has no test");
                }
            }
        }
    };
}

vectors! {
    v35_root_first => "root-first",
    v36_watch_answer => "watch-answer",
    v37_paths => "paths",
    v38_action => "action",
    v39_no_echo => "no-echo",
    v40_user_event_reply => "user-event-reply",
    v41_path_failure => "path-failure",
    v42_object_identity => "object-identity",
    v43_closed => "closed",
    v44_epoch_change => "epoch-change",
    v45_same_epoch_replay => "same-epoch-replay",
    v46_unwatch_destroy => "unwatch-destroy",
    v47_hybrid_root => "hybrid-root",
}

#[test]
fn matcher_rules() {
    use serde_json::json;
    let mut b = Bindings::default();
    assert!(b.matches(&json!({"a": 5}), &json!({"a": 5.0}), "f").is_err());
    assert!(b.matches(&json!({"a": null}), &json!({}), "f").is_err());
    assert!(b.matches(&json!({"o": "$obj:x"}), &json!({"o": 3}), "f").is_ok());
    assert!(b.matches(&json!({"o": "$obj:x"}), &json!({"o": 4}), "f").is_err());
    assert!(b.matches(&json!({"o": "$obj:y"}), &json!({"o": 3}), "f").is_err());
    assert!(b.matches(&json!("$$any"), &json!("$any"), "f").is_ok());
    assert!(b.matches(&json!("$hex32"), &json!("0123456789abcdef0123456789abcdef"), "f").is_ok());
    assert_eq!(b.substitute(&json!({"v": {"obj": "$obj:x"}})), json!({"v": {"obj": 3}}));
    let p = json!({"session":"1","messages":[{"type":"create","data":{"id":1}},{"a":1},{"b":2}]});
    let g = json!({"session":"1","messages":[{"type":"create","data":{"id":1}},{"b":2},{"a":1}]});
    assert!(b.matches_any_order(&p, &g).is_ok());
    let g = json!({"session":"1","messages":[{"b":2},{"type":"create","data":{"id":1}},{"a":1}]});
    assert!(b.matches_any_order(&p, &g).is_err());
}
