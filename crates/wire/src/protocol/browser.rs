//! Browser frames: parsing the three inbound forms and encoding server frames (always a JSON array).

use serde::Serialize;
use serde_json::Value;

use super::code::ErrorCode;
use super::message::{parse_message, Message, MessageError, Side};
use crate::ids::VarId;

/// Per-frame limits (PROTOCOL.md A15).
#[derive(Clone, Copy, Debug)]
pub struct FrameLimits {
    pub max_messages: usize,
    pub max_depth: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits { max_messages: 10_000, max_depth: 128 }
    }
}

/// A parsed inbound browser frame. Each message parsed on its own: a bad one does not spoil the rest.
#[derive(Debug)]
pub struct ClientFrame {
    pub user_event: bool,
    pub messages: Vec<Result<Message, MessageError>>,
}

/// A frame refused as a whole (answered with one `error`, `varId` 0; nothing processed).
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{code}: {description}")]
pub struct FrameError {
    pub code: ErrorCode,
    pub description: String,
}

impl FrameError {
    fn bad(description: impl Into<String>) -> Self {
        FrameError { code: ErrorCode::BadMessage, description: description.into() }
    }

    /// The `error` message that answers this frame.
    pub fn to_message(&self) -> ServerMessage {
        ServerMessage::error(VarId::NONE, self.code, self.description.clone())
    }
}

/// Parses one WebSocket message (text, or binary holding UTF-8 JSON).
pub fn parse_client_frame(bytes: &[u8], limits: &FrameLimits) -> Result<ClientFrame, FrameError> {
    let value = decode_json(bytes, limits.max_depth)?;
    let (user_event, messages) = match value {
        Value::Object(mut obj) => {
            if let Some(messages) = obj.remove("messages") {
                let Value::Array(messages) = messages else {
                    return Err(FrameError::bad("\"messages\" is not an array"));
                };
                (obj.get("userEvent").and_then(Value::as_bool).unwrap_or(false), messages)
            } else if obj.contains_key("type") {
                (false, vec![Value::Object(obj)])
            } else {
                return Err(FrameError::bad("frame has neither \"messages\" nor \"type\""));
            }
        }
        Value::Array(messages) => (false, messages),
        _ => return Err(FrameError::bad("frame is not an object or an array")),
    };
    if messages.len() > limits.max_messages {
        return Err(FrameError {
            code: ErrorCode::LimitExceeded,
            description: format!("{} messages in one frame (limit {})", messages.len(), limits.max_messages),
        });
    }
    let messages = messages.iter().map(|m| parse_message(m, Side::Browser)).collect();
    Ok(ClientFrame { user_event, messages })
}

/// Decodes JSON after checking its nesting depth, so a hostile frame can neither overflow the stack
/// nor dodge the depth limit. Shared with the backend link.
pub(crate) fn decode_json(bytes: &[u8], max_depth: usize) -> Result<Value, FrameError> {
    if nesting_depth(bytes) > max_depth {
        return Err(FrameError::bad(format!("JSON nested deeper than {max_depth}")));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| FrameError::bad("frame is not valid UTF-8"))?;
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    let value = Value::deserialize(&mut de).map_err(|e| FrameError::bad(format!("invalid JSON: {e}")))?;
    de.end().map_err(|e| FrameError::bad(format!("invalid JSON: {e}")))?;
    Ok(value)
}

use serde::Deserialize;

/// Deepest array/object nesting in a JSON text (the outermost container is depth 1). Brackets inside
/// strings do not count. Works on invalid JSON too: it bounds what the parser would recurse into.
pub fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// One message of a server frame.
#[derive(Clone, PartialEq, Debug, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "lowercase")]
pub enum ServerMessage {
    Update(UpdateOut),
    Destroy {
        #[serde(rename = "varId")]
        var_id: VarId,
    },
    Error(ErrorOut),
}

/// Outbound `update`: `value` present iff it changed (or a full-state reply); only changed properties.
#[derive(Clone, PartialEq, Debug, Serialize, Default)]
pub struct UpdateOut {
    #[serde(rename = "varId")]
    pub var_id: VarId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Properties::is_empty")]
    pub properties: Properties,
}

/// Outbound `error`.
#[derive(Clone, PartialEq, Debug, Serialize)]
pub struct ErrorOut {
    #[serde(rename = "varId")]
    pub var_id: VarId,
    pub code: ErrorCode,
    pub description: String,
}

/// A site file the gateway refused or skipped when it (re)loaded the site: a Lua file that does not
/// compile or a `main.lua` that fails at load (the last good code keeps running), a viewdef file that
/// was not loaded. In development the gateway tells every page, so the author sees it where they look
/// (docs/attributes.md "Errors on the page") and not only in the terminal.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct SiteProblem {
    /// The file, relative to the site directory (`lua/main.lua`, `viewdefs/option.html`).
    pub file: String,
    /// What is wrong and what happens meanwhile, one sentence for the author.
    pub message: String,
}

/// Ordered property map for outbound updates (`""` = deleted).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Properties(pub Vec<(String, String)>);

impl Properties {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets a property, replacing an earlier value of the same name.
    pub fn set(&mut self, name: &str, value: &str) {
        if let Some(slot) = self.0.iter_mut().find(|(n, _)| n == name) {
            slot.1 = value.to_string();
        } else {
            self.0.push((name.to_string(), value.to_string()));
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl Serialize for Properties {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for VarId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.0)
    }
}

impl ServerMessage {
    pub fn error(var_id: VarId, code: ErrorCode, description: impl Into<String>) -> Self {
        ServerMessage::Error(ErrorOut { var_id, code, description: description.into() })
    }

    /// The site's current problems as a variable-1 update carrying only the `siteProblems` property:
    /// JSON text of the whole list, `[]` when the last one is gone. Each such update replaces the
    /// page's previous list.
    pub fn site_problems(problems: &[SiteProblem]) -> Self {
        let mut properties = Properties::default();
        let list = serde_json::to_string(problems).expect("site problems always serialize");
        properties.set(super::property::name::SITE_PROBLEMS, &list);
        ServerMessage::Update(UpdateOut { var_id: VarId::APP, value: None, properties })
    }

    pub fn from_message_error(e: &MessageError) -> Self {
        ServerMessage::error(e.var_id, e.code, e.description.clone())
    }

    /// The variable this message is about.
    pub fn var_id(&self) -> VarId {
        match self {
            ServerMessage::Update(u) => u.var_id,
            ServerMessage::Destroy { var_id } => *var_id,
            ServerMessage::Error(e) => e.var_id,
        }
    }
}

/// Encodes a server frame: a JSON array of one or more messages, never `[]`.
pub fn encode_server_frame(messages: &[ServerMessage]) -> String {
    debug_assert!(!messages.is_empty(), "server frames are never empty");
    serde_json::to_string(messages).expect("server messages always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(s: &str) -> Result<ClientFrame, FrameError> {
        parse_client_frame(s.as_bytes(), &FrameLimits::default())
    }

    #[test]
    fn three_forms() {
        let f = parse(r#"{"userEvent":true,"messages":[{"type":"watch","data":{"varId":1}}]}"#).unwrap();
        assert!(f.user_event);
        assert_eq!(f.messages.len(), 1);
        let f = parse(r#"  {"type":"watch","data":{"varId":1}} "#).unwrap();
        assert!(!f.user_event);
        assert_eq!(f.messages[0].as_ref().unwrap(), &Message::Watch(VarId(1)));
        let f = parse(r#"[{"type":"watch","data":{"varId":1}},{"type":"unwatch","data":{"varId":1}}]"#).unwrap();
        assert_eq!(f.messages.len(), 2);
    }

    #[test]
    fn user_event_must_be_boolean() {
        let f = parse(r#"{"userEvent":"yes","messages":[]}"#).unwrap();
        assert!(!f.user_event);
    }

    #[test]
    fn empty_frames_are_noops() {
        assert!(parse(r#"{"messages":[]}"#).unwrap().messages.is_empty());
        assert!(parse("[]").unwrap().messages.is_empty());
    }

    #[test]
    fn malformed_frames() {
        for bad in ["", "{", "nope", "42", "\"x\"", "null", "{}", r#"{"messages":{}}"#, r#"{"a":1}"#, "[] []"] {
            assert_eq!(parse(bad).unwrap_err().code, ErrorCode::BadMessage, "{bad}");
        }
        assert_eq!(
            parse_client_frame(&[0xff, b'[', b']'], &FrameLimits::default()).unwrap_err().code,
            ErrorCode::BadMessage
        );
    }

    #[test]
    fn a_bad_message_does_not_spoil_the_frame() {
        let f = parse(r#"[{"type":"watch","data":{"varId":1}},{"type":"poll","data":{}},7]"#).unwrap();
        assert!(f.messages[0].is_ok());
        assert_eq!(f.messages[1].as_ref().unwrap_err().code, ErrorCode::BadMessage);
        assert_eq!(f.messages[2].as_ref().unwrap_err().code, ErrorCode::BadMessage);
    }

    #[test]
    fn limits() {
        let limits = FrameLimits { max_messages: 2, max_depth: 4 };
        let three = r#"[{"type":"watch","data":{"varId":1}},{"type":"watch","data":{"varId":1}},{"type":"watch","data":{"varId":1}}]"#;
        assert_eq!(parse_client_frame(three.as_bytes(), &limits).unwrap_err().code, ErrorCode::LimitExceeded);
        let deep = r#"[{"type":"update","data":{"varId":2,"value":[[1]]}}]"#;
        assert_eq!(parse_client_frame(deep.as_bytes(), &limits).unwrap_err().code, ErrorCode::BadMessage);
        let ok = r#"[{"type":"update","data":{"varId":2,"value":[]}}]"#;
        assert!(parse_client_frame(ok.as_bytes(), &limits).is_ok());
        // A very deep frame is refused without recursing.
        let hostile = "[".repeat(100_000);
        assert_eq!(parse(&hostile).unwrap_err().code, ErrorCode::BadMessage);
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(nesting_depth(br#"{"a":"[[[[\"{{"}"#), 1);
        assert_eq!(nesting_depth(b"[[],[[]]]"), 3);
        assert_eq!(nesting_depth(b"1"), 0);
    }

    #[test]
    fn site_problems_are_a_variable_1_property_holding_the_whole_list() {
        let problem = SiteProblem { file: "lua/main.lua".into(), message: "lua/main.lua does not compile".into() };
        assert_eq!(
            encode_server_frame(&[ServerMessage::site_problems(&[problem])]),
            r#"[{"type":"update","data":{"varId":1,"properties":{"siteProblems":"[{\"file\":\"lua/main.lua\",\"message\":\"lua/main.lua does not compile\"}]"}}}]"#
        );
        assert_eq!(
            encode_server_frame(&[ServerMessage::site_problems(&[])]),
            r#"[{"type":"update","data":{"varId":1,"properties":{"siteProblems":"[]"}}}]"#
        );
    }

    #[test]
    fn server_frames_are_arrays() {
        let mut props = Properties::default();
        props.set("type", "Adder");
        let frame = encode_server_frame(&[
            ServerMessage::Update(UpdateOut { var_id: VarId(1), value: Some(json!({"obj":1})), properties: props }),
            ServerMessage::Update(UpdateOut { var_id: VarId(4), value: Some(Value::Null), ..Default::default() }),
            ServerMessage::Destroy { var_id: VarId(3) },
            ServerMessage::error(VarId(0), ErrorCode::BadMessage, "x<y"),
        ]);
        assert_eq!(
            frame,
            r#"[{"type":"update","data":{"varId":1,"value":{"obj":1},"properties":{"type":"Adder"}}},{"type":"update","data":{"varId":4,"value":null}},{"type":"destroy","data":{"varId":3}},{"type":"error","data":{"varId":0,"code":"bad-message","description":"x<y"}}]"#
        );
    }
}
