//! Backend frames (backend protocol §3–§4): the welcome, batches both ways, events and frame errors.

use serde_json::{json, Map, Value};

use super::browser::{decode_json, FrameError};
use super::code::ErrorCode;
use super::message::{parse_message, Message, MessageError, Side};
use crate::ids::VendedId;

/// Protocol version spoken on `/backend`.
pub const PROTOCOL_VERSION: u64 = 1;

/// Limits announced in the welcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendLimits {
    pub max_frame_bytes: usize,
    pub session_buffer: usize,
    pub max_variables: usize,
}

/// The first frame on a backend connection.
pub fn encode_welcome(epoch: &str, mode: &str, sessions: &[VendedId], limits: &BackendLimits) -> String {
    let sessions: Vec<String> = sessions.iter().map(|s| s.to_string()).collect();
    json!({"welcome": {
        "protocol": PROTOCOL_VERSION,
        "epoch": epoch,
        "mode": mode,
        "sessions": sessions,
        "limits": {
            "maxFrameBytes": limits.max_frame_bytes,
            "sessionBuffer": limits.session_buffer,
            "maxVariables": limits.max_variables,
        }
    }})
    .to_string()
}

/// A gateway→backend batch.
pub fn encode_batch(session: VendedId, user_event: bool, messages: &[Message]) -> String {
    let mut obj = Map::new();
    obj.insert("session".into(), session.to_string().into());
    if user_event {
        obj.insert("userEvent".into(), true.into());
    }
    obj.insert("messages".into(), Value::Array(messages.iter().map(Message::to_wire).collect()));
    Value::Object(obj).to_string()
}

/// `{"session":"N","event":"closed"}`: the session is gone; the last frame for that id in the epoch.
pub fn encode_closed(session: VendedId) -> String {
    json!({"session": session.to_string(), "event": "closed"}).to_string()
}

/// A frame error: the backend frame could not be read at all.
pub fn encode_frame_error(code: ErrorCode, description: &str) -> String {
    json!({"error": {"code": code.as_str(), "description": description}}).to_string()
}

/// A backend→gateway batch, messages parsed one by one.
#[derive(Debug)]
pub struct BackendBatch {
    pub session: VendedId,
    pub user_event: bool,
    pub messages: Vec<Result<Message, MessageError>>,
}

/// Parses a backend frame: an object with a string `session` and an array `messages`.
pub fn parse_backend_frame(bytes: &[u8], max_depth: usize) -> Result<BackendBatch, FrameError> {
    let bad = |d: &str| FrameError { code: ErrorCode::BadMessage, description: d.to_string() };
    let Value::Object(mut obj) = decode_json(bytes, max_depth)? else {
        return Err(bad("backend frame is not a JSON object"));
    };
    let session = match obj.get("session") {
        Some(Value::String(s)) => s.parse::<VendedId>().map_err(|_| bad("\"session\" is not a vended id"))?,
        _ => return Err(bad("backend frame needs a string \"session\"")),
    };
    let Some(Value::Array(messages)) = obj.remove("messages") else {
        return Err(bad("backend frame needs an array \"messages\""));
    };
    let user_event = obj.get("userEvent").and_then(Value::as_bool).unwrap_or(false);
    let messages = messages.iter().map(|m| parse_message(m, Side::Backend)).collect();
    Ok(BackendBatch { session, user_event, messages })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::VarId;

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
}
