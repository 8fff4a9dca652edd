//! Backend frames: the welcome, batches both ways, the `closed` event and frame errors. One encoder and
//! one decoder for each frame, used by the gateway (`/backend`) and by the backend client crates, so the
//! two sides cannot drift apart. Messages inside batches are [`Message`]s (see `message.rs`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::browser::{decode_json, FrameError, ServerMessage};
use super::code::ErrorCode;
use super::message::{parse_message, Message, MessageError, Side};
use crate::ids::VendedId;

/// Protocol version spoken on `/backend`.
pub const PROTOCOL_VERSION: u64 = 1;

/// Limits announced in the welcome. A backend reading a welcome without them gets these defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BackendLimits {
    pub max_frame_bytes: usize,
    pub session_buffer: usize,
    pub max_variables: usize,
}

impl Default for BackendLimits {
    fn default() -> Self {
        BackendLimits { max_frame_bytes: 16 << 20, session_buffer: 1000, max_variables: 100_000 }
    }
}

/// The first frame on a backend connection: who the gateway is and which sessions are live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// A backend refuses a version it does not speak.
    #[serde(default)]
    pub protocol: u64,
    /// Changes when the gateway restarts: a backend with state from another epoch drops it.
    #[serde(default)]
    pub epoch: String,
    #[serde(default)]
    pub mode: String,
    /// Live sessions, ascending; each sends its replay batch before the next one.
    #[serde(default, with = "vended_strings")]
    pub sessions: Vec<VendedId>,
    #[serde(default)]
    pub limits: BackendLimits,
}

/// Vended ids travel as decimal strings.
mod vended_strings {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::ids::VendedId;

    pub fn serialize<S: Serializer>(ids: &[VendedId], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ids.iter().map(|id| id.to_string()))
    }

    /// Ids that are not vended ids are skipped: a newer gateway may vend ids an older client cannot
    /// read, and that must not cost it the whole welcome.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<VendedId>, D::Error> {
        let raw = Vec::<String>::deserialize(d)?;
        Ok(raw.iter().filter_map(|s| s.parse().ok()).collect())
    }
}

/// The frame shapes a gateway sends, keyed by their one top-level field.
#[derive(Serialize)]
struct WelcomeFrame<'a> {
    welcome: &'a Welcome,
}

#[derive(Serialize)]
struct EventFrame {
    session: String,
    event: &'static str,
}

#[derive(Serialize)]
struct ErrorFrame<'a> {
    error: FrameErrorBody<'a>,
}

#[derive(Serialize)]
struct FrameErrorBody<'a> {
    code: ErrorCode,
    description: &'a str,
}

/// The one event a gateway sends about a session.
const CLOSED: &str = "closed";

/// The first frame on a backend connection.
pub fn encode_welcome(epoch: &str, mode: &str, sessions: &[VendedId], limits: &BackendLimits) -> String {
    let welcome = Welcome {
        protocol: PROTOCOL_VERSION,
        epoch: epoch.to_string(),
        mode: mode.to_string(),
        sessions: sessions.to_vec(),
        limits: *limits,
    };
    serde_json::to_string(&WelcomeFrame { welcome: &welcome }).expect("welcome frames serialize")
}

/// A batch (either direction) as one frame.
pub fn encode_batch(session: VendedId, user_event: bool, messages: &[Message]) -> String {
    let encoded: Vec<String> = messages.iter().map(|m| m.to_wire().to_string()).collect();
    batch_frame(session, user_event, &encoded)
}

/// A batch as frames of at most `max_bytes`, split at message boundaries only (one message larger than
/// the limit travels alone). Always at least one frame: an empty batch is a session's open notice.
pub fn encode_batches(session: VendedId, user_event: bool, messages: &[Message], max_bytes: usize) -> Vec<String> {
    let encoded: Vec<String> = messages.iter().map(|m| m.to_wire().to_string()).collect();
    let whole = batch_frame(session, user_event, &encoded);
    if whole.len() <= max_bytes || encoded.len() <= 1 {
        return vec![whole];
    }
    let overhead = batch_frame(session, user_event, &[]).len();
    let mut frames = Vec::new();
    let mut start = 0;
    let mut size = overhead;
    for (i, m) in encoded.iter().enumerate() {
        let len = m.len() + 1;
        if i > start && size + len > max_bytes {
            frames.push(batch_frame(session, user_event, &encoded[start..i]));
            start = i;
            size = overhead;
        }
        size += len;
    }
    frames.push(batch_frame(session, user_event, &encoded[start..]));
    frames
}

/// `{"session":"N","userEvent":true,"messages":[…]}` from already encoded messages.
fn batch_frame(session: VendedId, user_event: bool, encoded: &[String]) -> String {
    let mut out = String::with_capacity(48 + encoded.iter().map(|m| m.len() + 1).sum::<usize>());
    out.push_str("{\"session\":\"");
    out.push_str(&session.to_string());
    out.push('"');
    if user_event {
        out.push_str(",\"userEvent\":true");
    }
    out.push_str(",\"messages\":[");
    out.push_str(&encoded.join(","));
    out.push_str("]}");
    out
}

/// `{"session":"N","event":"closed"}`: the session is gone; the last frame for that id in the epoch.
pub fn encode_closed(session: VendedId) -> String {
    serde_json::to_string(&EventFrame { session: session.to_string(), event: CLOSED }).expect("events serialize")
}

/// A frame error: the backend frame could not be read at all.
pub fn encode_frame_error(code: ErrorCode, description: &str) -> String {
    serde_json::to_string(&ErrorFrame { error: FrameErrorBody { code, description } }).expect("errors serialize")
}

/// A batch as received (either direction), messages parsed one by one so one bad message costs only
/// itself.
#[derive(Debug)]
pub struct BackendBatch {
    pub session: VendedId,
    pub user_event: bool,
    pub messages: Vec<Result<Message, MessageError>>,
}

/// Parses a backend→gateway frame: an object with a string `session` and an array `messages`.
pub fn parse_backend_frame(bytes: &[u8], max_depth: usize) -> Result<BackendBatch, FrameError> {
    let Value::Object(obj) = decode_json(bytes, max_depth)? else {
        return Err(bad("backend frame is not a JSON object"));
    };
    parse_batch(obj, Side::Backend)
}

fn bad(description: &str) -> FrameError {
    FrameError { code: ErrorCode::BadMessage, description: description.to_string() }
}

fn parse_batch(mut obj: serde_json::Map<String, Value>, side: Side) -> Result<BackendBatch, FrameError> {
    let session = match obj.get("session") {
        Some(Value::String(s)) => s.parse::<VendedId>().map_err(|_| bad("\"session\" is not a vended id"))?,
        _ => return Err(bad("backend frame needs a string \"session\"")),
    };
    let Some(Value::Array(messages)) = obj.remove("messages") else {
        return Err(bad("backend frame needs an array \"messages\""));
    };
    let user_event = obj.get("userEvent").and_then(Value::as_bool).unwrap_or(false);
    let messages = messages.iter().map(|m| parse_message(m, side)).collect();
    Ok(BackendBatch { session, user_event, messages })
}

/// What a gateway receives from a backend worker: a batch, or one of the pool's control frames.
#[derive(Debug)]
pub enum BackendFrame {
    Batch(BackendBatch),
    /// `{"hello":{"capacity":N}}`: the worker's relative capacity (sessions are spread by it).
    Hello(Hello),
    /// `{"drain":true}`: the worker takes no new sessions and keeps its own until it closes.
    Drain,
}

/// What a worker may announce about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Relative weight, at least 1 (absent: unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
}

#[derive(Serialize)]
struct HelloFrame {
    hello: Hello,
}

#[derive(Serialize)]
struct DrainFrame {
    drain: bool,
}

/// `{"hello":{…}}`, sent by a worker.
pub fn encode_hello(hello: Hello) -> String {
    serde_json::to_string(&HelloFrame { hello }).expect("hello frames serialize")
}

/// `{"drain":true}`, sent by a worker that is about to go.
pub fn encode_drain() -> String {
    serde_json::to_string(&DrainFrame { drain: true }).expect("drain frames serialize")
}

/// Parses a worker→gateway frame: a batch, `hello` or `drain`.
pub fn parse_worker_frame(bytes: &[u8], max_depth: usize) -> Result<BackendFrame, FrameError> {
    let Value::Object(mut obj) = decode_json(bytes, max_depth)? else {
        return Err(bad("backend frame is not a JSON object"));
    };
    if let Some(hello) = obj.remove("hello") {
        let hello: Hello = serde_json::from_value(hello)
            .map_err(|e| FrameError { code: ErrorCode::BadMessage, description: format!("hello: {e}") })?;
        return Ok(BackendFrame::Hello(hello));
    }
    match obj.get("drain") {
        Some(Value::Bool(true)) => return Ok(BackendFrame::Drain),
        Some(_) => return Err(bad("\"drain\" must be true")),
        None => {}
    }
    parse_batch(obj, Side::Backend).map(BackendFrame::Batch)
}

/// A frame error as a backend reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameErrorReport {
    /// `None` for a code this side does not know (a newer gateway).
    pub code: Option<ErrorCode>,
    pub description: String,
}

/// What a backend receives from a gateway.
#[derive(Debug)]
pub enum GatewayFrame {
    Welcome(Welcome),
    Batch(BackendBatch),
    /// The session is gone for good.
    Closed(VendedId),
    /// The gateway could not read a frame of ours.
    Error(FrameErrorReport),
}

/// Parses a gateway→backend frame (the backend client's one decoder).
pub fn parse_gateway_frame(bytes: &[u8], max_depth: usize) -> Result<GatewayFrame, FrameError> {
    let Value::Object(mut obj) = decode_json(bytes, max_depth)? else {
        return Err(bad("gateway frame is not a JSON object"));
    };
    if let Some(welcome) = obj.remove("welcome") {
        return serde_json::from_value(welcome)
            .map(GatewayFrame::Welcome)
            .map_err(|e| FrameError { code: ErrorCode::BadMessage, description: format!("welcome: {e}") });
    }
    if let Some(Value::Object(error)) = obj.get("error") {
        let text = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        return Ok(GatewayFrame::Error(FrameErrorReport {
            code: ErrorCode::parse(&text("code")),
            description: text("description"),
        }));
    }
    match obj.get("event").and_then(Value::as_str) {
        Some(CLOSED) => match obj.get("session").and_then(Value::as_str).and_then(|s| s.parse().ok()) {
            Some(session) => Ok(GatewayFrame::Closed(session)),
            None => Err(bad("event frame needs a string \"session\"")),
        },
        Some(other) => Err(bad(&format!("unknown event {other:?}"))),
        None => parse_batch(obj, Side::Gateway).map(GatewayFrame::Batch),
    }
}

impl From<ServerMessage> for Message {
    /// What the gateway computed for browsers, addressed to a backend instead (watch answers and
    /// changes of Lua variables a backend watches, errors).
    fn from(msg: ServerMessage) -> Message {
        use super::message::{ErrorReport, PropertyWrite, Update};
        match msg {
            ServerMessage::Update(u) => Message::Update(Update {
                var_id: u.var_id,
                value: u.value,
                properties: (!u.properties.is_empty()).then(|| {
                    u.properties
                        .0
                        .into_iter()
                        .map(|(name, value)| PropertyWrite { name, value, priority: None })
                        .collect()
                }),
            }),
            ServerMessage::Destroy { var_id } => Message::Destroy(var_id),
            ServerMessage::Error(e) => {
                Message::Error(ErrorReport { var_id: e.var_id, code: e.code, description: e.description })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::VarId;
    use serde_json::json;

    #[test]
    fn welcome_shape() {
        let limits = BackendLimits { max_frame_bytes: 16 << 20, session_buffer: 1000, max_variables: 100_000 };
        let w: Value = serde_json::from_str(&encode_welcome(
            "9b1f0c3e5a7d44e2b06c2f8e1d3a5b70",
            "connected",
            &[VendedId(1), VendedId(4)],
            &limits,
        ))
        .unwrap();
        assert_eq!(
            w,
            json!({"welcome":{"protocol":1,"epoch":"9b1f0c3e5a7d44e2b06c2f8e1d3a5b70","mode":"connected",
                "sessions":["1","4"],"limits":{"maxFrameBytes":16777216,"sessionBuffer":1000,"maxVariables":100000}}})
        );
    }

    #[test]
    fn batches_events_errors() {
        assert_eq!(encode_batch(VendedId(5), false, &[]), r#"{"session":"5","messages":[]}"#);
        assert_eq!(
            encode_batch(VendedId(1), true, &[Message::Watch(VarId(1))]),
            r#"{"session":"1","userEvent":true,"messages":[{"type":"watch","data":{"varId":1}}]}"#
        );
        assert_eq!(encode_closed(VendedId(4)), r#"{"session":"4","event":"closed"}"#);
        assert_eq!(
            encode_frame_error(ErrorCode::BadMessage, "x"),
            r#"{"error":{"code":"bad-message","description":"x"}}"#
        );
    }

    #[test]
    fn parse_backend_frames() {
        let b = parse_backend_frame(
            br#"{"session":"1","userEvent":true,"messages":[{"type":"update","data":{"varId":2,"value":1}},{"type":"create","data":{"id":3}}]}"#,
            128,
        )
        .unwrap();
        assert_eq!(b.session, VendedId(1));
        assert!(b.user_event);
        assert!(b.messages[0].is_ok());
        assert_eq!(b.messages[1].as_ref().unwrap_err().code, ErrorCode::BadMessage);
        for bad in [
            &br#"[]"#[..],
            br#"{"session":1,"messages":[]}"#,
            br#"{"session":"1"}"#,
            b"{",
            br#"{"session":"x","messages":[]}"#,
        ] {
            assert_eq!(parse_backend_frame(bad, 128).unwrap_err().code, ErrorCode::BadMessage);
        }
    }

    #[test]
    fn split_batches_keep_order_and_bounds() {
        let msgs: Vec<Message> = (0..10).map(|i| Message::Watch(VarId(i))).collect();
        assert_eq!(encode_batches(VendedId(1), false, &msgs, 1 << 20), vec![encode_batch(VendedId(1), false, &msgs)]);
        let parts = encode_batches(VendedId(1), true, &msgs, 120);
        assert!(parts.len() > 1);
        let mut ids = Vec::new();
        for p in &parts {
            assert!(p.len() <= 120, "{p}");
            let v: Value = serde_json::from_str(p).unwrap();
            assert_eq!(v["userEvent"], true);
            ids.extend(v["messages"].as_array().unwrap().iter().map(|m| m["data"]["varId"].as_i64().unwrap()));
        }
        assert_eq!(ids, (0..10).collect::<Vec<_>>());
        assert_eq!(encode_batches(VendedId(7), false, &[], 10), vec![r#"{"session":"7","messages":[]}"#.to_string()]);
    }

    /// What the gateway encodes, a backend decodes to the same thing.
    #[test]
    fn gateway_frames_round_trip() {
        let limits = BackendLimits { max_frame_bytes: 100, session_buffer: 5, max_variables: 9 };
        let GatewayFrame::Welcome(w) =
            parse_gateway_frame(encode_welcome("ab", "hybrid", &[VendedId(3)], &limits).as_bytes(), 64).unwrap()
        else {
            panic!("a welcome")
        };
        assert_eq!((w.protocol, w.epoch.as_str(), w.mode.as_str()), (PROTOCOL_VERSION, "ab", "hybrid"));
        assert_eq!((w.sessions, w.limits), (vec![VendedId(3)], limits));
        let GatewayFrame::Welcome(w) = parse_gateway_frame(br#"{"welcome":{"protocol":2}}"#, 64).unwrap() else {
            panic!("a welcome")
        };
        assert_eq!((w.protocol, w.limits), (2, BackendLimits::default()));
        assert!(matches!(
            parse_gateway_frame(encode_closed(VendedId(4)).as_bytes(), 64).unwrap(),
            GatewayFrame::Closed(VendedId(4))
        ));
        let GatewayFrame::Error(e) =
            parse_gateway_frame(encode_frame_error(ErrorCode::LimitExceeded, "big").as_bytes(), 64).unwrap()
        else {
            panic!("an error")
        };
        assert_eq!(e, FrameErrorReport { code: Some(ErrorCode::LimitExceeded), description: "big".into() });
        let error = Message::Error(super::super::message::ErrorReport {
            var_id: VarId(2),
            code: ErrorCode::NotFound,
            description: "x".into(),
        });
        let batch = encode_batch(VendedId(2), true, &[Message::Watch(VarId(5)), error.clone()]);
        let GatewayFrame::Batch(b) = parse_gateway_frame(batch.as_bytes(), 64).unwrap() else { panic!("a batch") };
        assert_eq!((b.session, b.user_event), (VendedId(2), true));
        let messages: Vec<Message> = b.messages.into_iter().map(Result::unwrap).collect();
        assert_eq!(messages, vec![Message::Watch(VarId(5)), error]);
        assert!(parse_gateway_frame(br#"{"session":"1","event":"opened"}"#, 64).is_err());
        assert!(parse_gateway_frame(b"[]", 64).is_err());
    }

    /// A browser-bound message re-addressed to a backend encodes exactly as it would for a browser.
    #[test]
    fn server_messages_become_the_same_wire_messages() {
        let mut props = crate::protocol::Properties::default();
        props.set("a", "1");
        for msg in [
            ServerMessage::Update(crate::protocol::UpdateOut {
                var_id: VarId(3),
                value: Some(json!([1])),
                properties: props,
            }),
            ServerMessage::Update(crate::protocol::UpdateOut {
                var_id: VarId(3),
                value: None,
                properties: Default::default(),
            }),
            ServerMessage::Destroy { var_id: VarId(4) },
            ServerMessage::error(VarId(5), ErrorCode::PathFailure, "no"),
        ] {
            assert_eq!(Message::from(msg.clone()).to_wire(), serde_json::to_value(&msg).unwrap());
        }
    }

    #[test]
    fn worker_control_frames() {
        let hello = Hello { capacity: Some(3) };
        assert!(matches!(
            parse_worker_frame(encode_hello(hello).as_bytes(), 64).unwrap(),
            BackendFrame::Hello(h) if h == hello
        ));
        assert_eq!(encode_drain(), r#"{"drain":true}"#);
        assert!(matches!(parse_worker_frame(br#"{"drain":true}"#, 64).unwrap(), BackendFrame::Drain));
        assert!(parse_worker_frame(br#"{"drain":1}"#, 64).is_err());
        assert!(parse_worker_frame(br#"{"hello":{"capacity":-1}}"#, 64).is_err());
        assert!(matches!(
            parse_worker_frame(br#"{"session":"2","messages":[]}"#, 64).unwrap(),
            BackendFrame::Batch(b) if b.session == VendedId(2)
        ));
    }
}
