//! Protocol messages (`{"type":T,"data":{…}}`), shared by the browser and the backend protocol.
//!
//! Parsing works on an already-decoded `serde_json::Value` and checks every field's JSON type itself, so
//! each failure maps to the exact error code and `varId` the spec asks for (serde's derive would only say
//! "invalid type"). `"value": null` and an absent `value` stay distinct (`Some(Null)` vs `None`).

use serde_json::{Map, Value};

use super::code::ErrorCode;
use super::priority::{split_suffix, Priority};
use crate::ids::VarId;

/// Largest id magnitude accepted: JSON integers must stay exact in a double.
pub const MAX_ID: i64 = (1 << 53) - 1;

/// Lowest id a backend may use for its own variables (PROTOCOL.md B5).
pub const MIN_BACKEND_ID: i64 = -((1 << 32) - 1);

/// Who sent the message: the rules for `create` and for values differ.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    Browser,
    Backend,
    /// A gateway forwarding browser messages to a backend (what a backend client reads): the browser's
    /// rules, plus `error` messages.
    Gateway,
}

impl Side {
    /// Whether creates follow the browser's rules (ids ≥ 2 under a parent, with a path).
    fn browser_rules(self) -> bool {
        matches!(self, Side::Browser | Side::Gateway)
    }
}

/// One property assignment as received: suffix stripped, its priority kept apart.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PropertyWrite {
    pub name: String,
    /// `""` deletes the property.
    pub value: String,
    /// Set when the name carried a `:high`/`:med`/`:medium`/`:low` suffix.
    pub priority: Option<Priority>,
}

/// `create`: a new variable named `id` under `parent_id`.
#[derive(Clone, PartialEq, Debug)]
pub struct Create {
    pub id: VarId,
    /// `None` for a root (absent, `null` or `0`).
    pub parent_id: Option<VarId>,
    /// With the `?query` of `path` already split off and merged in.
    pub properties: Vec<PropertyWrite>,
    /// The creator's initial value (backend-owned variables); ignored for browser creates.
    pub value: Option<Value>,
    pub nowatch: bool,
    pub unbound: bool,
}

impl Create {
    /// The `path` property, if any.
    pub fn path(&self) -> Option<&str> {
        self.properties.iter().find(|p| p.name == "path").map(|p| p.value.as_str())
    }
}

/// `update`: properties first, then the value if the key was present.
#[derive(Clone, PartialEq, Debug)]
pub struct Update {
    pub var_id: VarId,
    /// `None`: no `value` key (properties only). `Some(Null)`: write nil / invoke an action.
    pub value: Option<Value>,
    pub properties: Option<Vec<PropertyWrite>>,
}

/// `error`, as a backend sends it.
#[derive(Clone, PartialEq, Debug)]
pub struct ErrorReport {
    pub var_id: VarId,
    pub code: ErrorCode,
    pub description: String,
}

/// One inbound protocol message.
#[derive(Clone, PartialEq, Debug)]
pub enum Message {
    Create(Create),
    Update(Update),
    Destroy(VarId),
    Watch(VarId),
    Unwatch(VarId),
    /// Only from a backend; browsers may not send `error`.
    Error(ErrorReport),
}

impl Message {
    /// The wire name of the message type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::Create(_) => "create",
            Message::Update(_) => "update",
            Message::Destroy(_) => "destroy",
            Message::Watch(_) => "watch",
            Message::Unwatch(_) => "unwatch",
            Message::Error(_) => "error",
        }
    }

    /// The variable the message is about (`id` for create).
    pub fn var_id(&self) -> VarId {
        match self {
            Message::Create(c) => c.id,
            Message::Update(u) => u.var_id,
            Message::Destroy(id) | Message::Watch(id) | Message::Unwatch(id) => *id,
            Message::Error(e) => e.var_id,
        }
    }

    /// The message as it is forwarded on the wire: suffixes stripped, `?query` merged, unknown fields
    /// gone. Used for gateway→backend batches.
    pub fn to_wire(&self) -> Value {
        self.encode(false)
    }

    /// The canonical form used by the parse conformance vectors (`protocol/vectors/browser-parse.json`):
    /// like [`Message::to_wire`] plus a `priorities` map for suffixed property names.
    pub fn to_canonical(&self) -> Value {
        self.encode(true)
    }

    fn encode(&self, canonical: bool) -> Value {
        let mut data = Map::new();
        match self {
            Message::Create(c) => {
                data.insert("id".into(), c.id.0.into());
                if let Some(p) = c.parent_id {
                    data.insert("parentId".into(), p.0.into());
                }
                insert_properties(&mut data, &c.properties, canonical, canonical);
                if let Some(v) = &c.value {
                    data.insert("value".into(), v.clone());
                }
                if canonical || c.nowatch {
                    data.insert("nowatch".into(), c.nowatch.into());
                }
                if canonical || c.unbound {
                    data.insert("unbound".into(), c.unbound.into());
                }
            }
            Message::Update(u) => {
                data.insert("varId".into(), u.var_id.0.into());
                if let Some(v) = &u.value {
                    data.insert("value".into(), v.clone());
                }
                if let Some(props) = &u.properties {
                    insert_properties(&mut data, props, true, canonical);
                }
            }
            Message::Destroy(id) | Message::Watch(id) | Message::Unwatch(id) => {
                data.insert("varId".into(), id.0.into());
            }
            Message::Error(e) => {
                data.insert("varId".into(), e.var_id.0.into());
                data.insert("code".into(), e.code.as_str().into());
                data.insert("description".into(), e.description.clone().into());
            }
        }
        let mut msg = Map::new();
        msg.insert("type".into(), self.type_name().into());
        msg.insert("data".into(), Value::Object(data));
        Value::Object(msg)
    }
}

fn insert_properties(data: &mut Map<String, Value>, props: &[PropertyWrite], always: bool, priorities: bool) {
    if props.is_empty() && !always {
        return;
    }
    let map: Map<String, Value> = props.iter().map(|p| (p.name.clone(), Value::String(p.value.clone()))).collect();
    data.insert("properties".into(), Value::Object(map));
    if priorities {
        let prio: Map<String, Value> = props
            .iter()
            .filter_map(|p| p.priority.map(|pr| (p.name.clone(), Value::String(pr.as_str().into()))))
            .collect();
        if !prio.is_empty() {
            data.insert("priorities".into(), Value::Object(prio));
        }
    }
}

/// Why one message was refused: goes back to its sender as an `error` message.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{code}: {description}")]
pub struct MessageError {
    pub var_id: VarId,
    pub code: ErrorCode,
    pub description: String,
}

impl MessageError {
    pub fn new(var_id: VarId, code: ErrorCode, description: impl Into<String>) -> Self {
        MessageError { var_id, code, description: description.into() }
    }
}

/// Parses one message of a frame.
pub fn parse_message(raw: &Value, side: Side) -> Result<Message, MessageError> {
    let Some(obj) = raw.as_object() else {
        return Err(bad(VarId::NONE, "message is not an object"));
    };
    let data = obj.get("data");
    // The id to report errors against: varId (id for create) when it is an integer.
    let hint = data
        .and_then(|d| d.as_object())
        .and_then(|d| d.get("varId").or_else(|| d.get("id")))
        .and_then(as_id)
        .map(VarId)
        .unwrap_or(VarId::NONE);
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(bad(hint, "\"type\" is not a string")),
        None => return Err(bad(hint, "message has no \"type\"")),
    };
    let data = match data {
        Some(Value::Object(d)) => d,
        Some(_) => return Err(bad(hint, "\"data\" is not an object")),
        None => return Err(bad(hint, "message has no \"data\"")),
    };
    match ty {
        "create" => parse_create(data, side).map(Message::Create),
        "update" => parse_update(data, side).map(Message::Update),
        "destroy" => required_id(data, "varId").map(Message::Destroy),
        "watch" => required_id(data, "varId").map(Message::Watch),
        "unwatch" => required_id(data, "varId").map(Message::Unwatch),
        "error" if side != Side::Browser => parse_error(data).map(Message::Error),
        other => Err(bad(hint, format!("unknown message type {other:?}"))),
    }
}

fn bad(var_id: VarId, description: impl Into<String>) -> MessageError {
    MessageError::new(var_id, ErrorCode::BadMessage, description)
}

/// A JSON integer within ±(2^53 − 1).
fn as_id(v: &Value) -> Option<i64> {
    let n = v.as_i64()?;
    // `unsigned_abs`: `i64::MIN.abs()` overflows (a panic in debug builds, accepted in release).
    (n.unsigned_abs() <= MAX_ID.unsigned_abs()).then_some(n)
}

fn required_id(data: &Map<String, Value>, key: &str) -> Result<VarId, MessageError> {
    match data.get(key) {
        None => Err(bad(VarId::NONE, format!("missing \"{key}\""))),
        Some(v) => as_id(v).map(VarId).ok_or_else(|| bad(VarId::NONE, format!("\"{key}\" is not an integer id"))),
    }
}

fn optional_bool(data: &Map<String, Value>, key: &str, id: VarId) -> Result<bool, MessageError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(id, format!("\"{key}\" is not a boolean"))),
    }
}

/// Reads a `properties` object: string values only, suffixes stripped, later duplicates win.
fn parse_properties(v: &Value, id: VarId) -> Result<Vec<PropertyWrite>, MessageError> {
    let Value::Object(map) = v else {
        return Err(bad(id, "\"properties\" is not an object"));
    };
    let mut out: Vec<PropertyWrite> = Vec::with_capacity(map.len());
    for (name, value) in map {
        let Value::String(value) = value else {
            return Err(bad(id, format!("property {name:?} is not a string")));
        };
        let (name, priority) = split_suffix(name);
        set_property(&mut out, name, value.clone(), priority);
    }
    Ok(out)
}

fn set_property(props: &mut Vec<PropertyWrite>, name: &str, value: String, priority: Option<Priority>) {
    if let Some(existing) = props.iter_mut().find(|p| p.name == name) {
        existing.value = value;
        existing.priority = priority.or(existing.priority);
    } else {
        props.push(PropertyWrite { name: name.to_string(), value, priority });
    }
}

/// Splits `path?k=v&flag` into the path and its query properties: `%XX`-decoded, no `=` → `"true"`,
/// priority suffixes stripped, later duplicates win, a `path` key ignored. The one implementation of
/// the query grammar: the tracker uses it for Lua and backend creates too.
pub fn split_query(full: &str) -> (&str, Vec<PropertyWrite>) {
    let Some((path, query)) = full.split_once('?') else { return (full, Vec::new()) };
    let mut props = Vec::new();
    for item in query.split('&').filter(|i| !i.is_empty()) {
        let (key, value) = item.split_once('=').unwrap_or((item, "true"));
        let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy().into_owned();
        let (key, priority) = split_suffix(&key);
        if key.is_empty() || key == "path" {
            continue;
        }
        set_property(&mut props, key, value, priority);
    }
    (path, props)
}

/// Splits the `path` property's `?query` into properties (which override the map).
pub fn split_path_query(props: &mut Vec<PropertyWrite>) {
    let Some(idx) = props.iter().position(|p| p.name == "path") else { return };
    let full = props[idx].value.clone();
    let (path, query) = split_query(&full);
    props[idx].value = path.to_string();
    for p in query {
        set_property(props, &p.name, p.value, p.priority);
    }
}

fn parse_create(data: &Map<String, Value>, side: Side) -> Result<Create, MessageError> {
    let id = match data.get("id").and_then(as_id) {
        Some(0) | None => return Err(bad(VarId::NONE, "\"id\" must be a non-zero integer")),
        Some(n) => VarId(n),
    };
    match side {
        _ if side.browser_rules() && id.0 <= 1 => {
            return Err(MessageError::new(id, ErrorCode::AccessDenied, "browsers create ids ≥ 2 only"))
        }
        Side::Backend if id.0 >= 2 => return Err(bad(id, "backends may not create ids ≥ 2")),
        Side::Backend if id.0 < MIN_BACKEND_ID => return Err(bad(id, "backend ids must lie in -1 … -(2^32-1)")),
        _ => {}
    }
    let parent_id = match data.get("parentId") {
        None | Some(Value::Null) => None,
        Some(v) => match as_id(v) {
            Some(0) => None,
            Some(n) => Some(VarId(n)),
            None => return Err(bad(id, "\"parentId\" is not an integer id")),
        },
    };
    if side.browser_rules() && parent_id.is_none() {
        return Err(MessageError::new(id, ErrorCode::AccessDenied, "browsers cannot create roots"));
    }
    let mut properties = match data.get("properties") {
        Some(v) => parse_properties(v, id)?,
        None if side.browser_rules() => return Err(bad(id, "create needs \"properties\" with a path")),
        None => Vec::new(),
    };
    split_path_query(&mut properties);
    if side.browser_rules() && properties.iter().all(|p| p.name != "path" || p.value.is_empty()) {
        return Err(bad(id, "create needs a non-empty \"path\""));
    }
    let value = data.get("value").cloned();
    if side == Side::Backend {
        if let Some(v) = &value {
            check_backend_value(v, id)?;
        }
    }
    Ok(Create {
        id,
        parent_id,
        properties,
        value,
        nowatch: optional_bool(data, "nowatch", id)?,
        unbound: optional_bool(data, "unbound", id)?,
    })
}

fn parse_update(data: &Map<String, Value>, side: Side) -> Result<Update, MessageError> {
    let var_id = required_id(data, "varId")?;
    let properties = match data.get("properties") {
        None => None,
        Some(v) => Some(parse_properties(v, var_id)?),
    };
    let value = data.get("value").cloned();
    if side == Side::Backend {
        if let Some(v) = &value {
            check_backend_value(v, var_id)?;
        }
    }
    Ok(Update { var_id, value, properties })
}

fn parse_error(data: &Map<String, Value>) -> Result<ErrorReport, MessageError> {
    let var_id = match data.get("varId") {
        None => VarId::NONE,
        Some(v) => as_id(v).map(VarId).ok_or_else(|| bad(VarId::NONE, "\"varId\" is not an integer id"))?,
    };
    let code = match data.get("code") {
        Some(Value::String(s)) => {
            ErrorCode::parse(s).ok_or_else(|| bad(var_id, format!("unknown error code {s:?}")))?
        }
        _ => return Err(bad(var_id, "\"code\" must be a string")),
    };
    let description = match data.get("description") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad(var_id, "\"description\" is not a string")),
    };
    Ok(ErrorReport { var_id, code, description })
}

/// Backend values are value JSON proper: no plain objects, only `{"obj":N}` with N ≥ 1.
fn check_backend_value(v: &Value, id: VarId) -> Result<(), MessageError> {
    match v {
        Value::Array(items) => items.iter().try_for_each(|i| check_backend_value(i, id)),
        Value::Object(map) => {
            let ok = map.len() == 1 && map.get("obj").and_then(Value::as_u64).is_some_and(|n| n >= 1);
            if ok {
                Ok(())
            } else {
                Err(bad(id, "a backend value may only hold {\"obj\":N} objects"))
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn browser(v: Value) -> Result<Message, MessageError> {
        parse_message(&v, Side::Browser)
    }

    fn code_of(r: Result<Message, MessageError>) -> (i64, ErrorCode) {
        let e = r.expect_err("expected an error");
        (e.var_id.0, e.code)
    }

    #[test]
    fn simple_messages() {
        assert_eq!(browser(json!({"type":"watch","data":{"varId":1}})).unwrap(), Message::Watch(VarId(1)));
        assert_eq!(browser(json!({"type":"unwatch","data":{"varId":-3}})).unwrap(), Message::Unwatch(VarId(-3)));
        assert_eq!(browser(json!({"type":"destroy","data":{"varId":7,"x":1}})).unwrap(), Message::Destroy(VarId(7)));
    }

    #[test]
    fn structural_errors() {
        assert_eq!(code_of(browser(json!(5))), (0, ErrorCode::BadMessage));
        assert_eq!(code_of(browser(json!({"data":{"varId":3}}))), (3, ErrorCode::BadMessage));
        assert_eq!(code_of(browser(json!({"type":"watch"}))), (0, ErrorCode::BadMessage));
        assert_eq!(code_of(browser(json!({"type":"watch","data":[]}))), (0, ErrorCode::BadMessage));
        assert_eq!(code_of(browser(json!({"type":7,"data":{"varId":2}}))), (2, ErrorCode::BadMessage));
        for t in ["error", "get", "getObjects", "poll", "Watch"] {
            assert_eq!(code_of(browser(json!({"type":t,"data":{"varId":4}}))), (4, ErrorCode::BadMessage));
        }
        assert_eq!(code_of(browser(json!({"type":"watch","data":{"varId":"1"}}))), (0, ErrorCode::BadMessage));
        assert_eq!(code_of(browser(json!({"type":"watch","data":{"varId":1.5}}))), (0, ErrorCode::BadMessage));
        assert_eq!(
            code_of(browser(json!({"type":"watch","data":{"varId":9007199254740992_i64}}))),
            (0, ErrorCode::BadMessage)
        );
        // Review L2: the most negative i64 has no `abs()`; it is out of range like any other.
        for id in [i64::MIN, i64::MIN + 1, -9007199254740992_i64] {
            assert_eq!(code_of(browser(json!({"type":"watch","data":{"varId":id}}))), (0, ErrorCode::BadMessage));
        }
        assert!(browser(json!({"type":"watch","data":{"varId":-9007199254740991_i64}})).is_ok());
    }

    #[test]
    fn update_keeps_null_distinct_from_absent() {
        let Message::Update(u) = browser(json!({"type":"update","data":{"varId":2,"value":null}})).unwrap() else {
            panic!()
        };
        assert_eq!(u.value, Some(Value::Null));
        let Message::Update(u) = browser(json!({"type":"update","data":{"varId":2,"properties":{"a":"b"}}})).unwrap()
        else {
            panic!()
        };
        assert_eq!(u.value, None);
        assert_eq!(u.properties.unwrap()[0].name, "a");
    }

    #[test]
    fn update_property_errors() {
        let r = browser(json!({"type":"update","data":{"varId":2,"properties":{"a":1}}}));
        assert_eq!(code_of(r), (2, ErrorCode::BadMessage));
        let r = browser(json!({"type":"update","data":{"varId":2,"properties":"a"}}));
        assert_eq!(code_of(r), (2, ErrorCode::BadMessage));
    }

    #[test]
    fn create_rules_in_order() {
        let c = |d: Value| browser(json!({"type":"create","data":d}));
        assert_eq!(code_of(c(json!({"parentId":1,"properties":{"path":"a"}}))), (0, ErrorCode::BadMessage));
        assert_eq!(code_of(c(json!({"id":0,"parentId":1,"properties":{"path":"a"}}))), (0, ErrorCode::BadMessage));
        assert_eq!(code_of(c(json!({"id":"2","parentId":1,"properties":{"path":"a"}}))), (0, ErrorCode::BadMessage));
        assert_eq!(code_of(c(json!({"id":1,"parentId":1,"properties":{"path":"a"}}))), (1, ErrorCode::AccessDenied));
        assert_eq!(code_of(c(json!({"id":-2,"parentId":1,"properties":{"path":"a"}}))), (-2, ErrorCode::AccessDenied));
        assert_eq!(code_of(c(json!({"id":2,"properties":{"path":"a"}}))), (2, ErrorCode::AccessDenied));
        assert_eq!(code_of(c(json!({"id":2,"parentId":0,"properties":{"path":"a"}}))), (2, ErrorCode::AccessDenied));
        assert_eq!(code_of(c(json!({"id":2,"parentId":"1","properties":{"path":"a"}}))), (2, ErrorCode::BadMessage));
        assert_eq!(code_of(c(json!({"id":2,"parentId":1}))), (2, ErrorCode::BadMessage));
        assert_eq!(code_of(c(json!({"id":2,"parentId":1,"properties":{}}))), (2, ErrorCode::BadMessage));
        assert_eq!(code_of(c(json!({"id":2,"parentId":1,"properties":{"path":""}}))), (2, ErrorCode::BadMessage));
        assert_eq!(code_of(c(json!({"id":2,"parentId":1,"properties":{"path":"?a=b"}}))), (2, ErrorCode::BadMessage));
        assert_eq!(
            code_of(c(json!({"id":2,"parentId":1,"properties":{"path":"a"},"nowatch":"yes"}))),
            (2, ErrorCode::BadMessage)
        );
    }

    #[test]
    fn create_splits_query_and_suffixes() {
        let m = browser(json!({"type":"create","data":{"id":2,"parentId":1,"widget":{},"value":3,
            "properties":{"path":"x?wrapper=W&flag&a=%20b","wrapper":"old","elementId:high":"e1","a:b":"c"}}}))
        .unwrap();
        assert_eq!(
            m.to_canonical(),
            json!({"type":"create","data":{"id":2,"parentId":1,
                "properties":{"path":"x","wrapper":"W","elementId":"e1","a:b":"c","flag":"true","a":" b"},
                "priorities":{"elementId":"high"},"value":3,"nowatch":false,"unbound":false}})
        );
        let Message::Create(c) = m else { panic!() };
        assert_eq!(c.path(), Some("x"));
    }

    #[test]
    fn backend_create_rules() {
        let c = |d: Value| parse_message(&json!({"type":"create","data":d}), Side::Backend);
        assert!(c(json!({"id":1,"value":{"obj":1},"properties":{"type":"Counter"}})).is_ok());
        assert!(c(json!({"id":-1,"parentId":1,"properties":{"path":"price"}})).is_ok());
        assert_eq!(code_of(c(json!({"id":2}))), (2, ErrorCode::BadMessage));
        assert_eq!(code_of(c(json!({"id":-4294967296_i64}))), (-4294967296, ErrorCode::BadMessage));
        assert_eq!(code_of(c(json!({"id":1,"value":{"a":1}}))), (1, ErrorCode::BadMessage));
        assert_eq!(code_of(c(json!({"id":1,"value":[{"obj":0}]}))), (1, ErrorCode::BadMessage));
        let m = c(json!({"id":-1,"parentId":0})).unwrap();
        assert_eq!(m.to_wire(), json!({"type":"create","data":{"id":-1}}));
    }

    #[test]
    fn backend_error_messages() {
        let m = parse_message(
            &json!({"type":"error","data":{"varId":3,"code":"path-failure","description":"nil"}}),
            Side::Backend,
        )
        .unwrap();
        assert_eq!(m.to_wire(), json!({"type":"error","data":{"varId":3,"code":"path-failure","description":"nil"}}));
        let r = parse_message(&json!({"type":"error","data":{"varId":3,"code":"nope"}}), Side::Backend);
        assert_eq!(code_of(r), (3, ErrorCode::BadMessage));
    }

    #[test]
    fn wire_form_of_forwarded_create() {
        let m =
            browser(json!({"type":"create","data":{"id":2,"parentId":1,"properties":{"path":"count","access":"r"}}}))
                .unwrap();
        let Message::Create(mut c) = m else { panic!() };
        c.nowatch = true;
        assert_eq!(
            Message::Create(c).to_wire().to_string(),
            r#"{"type":"create","data":{"id":2,"parentId":1,"properties":{"path":"count","access":"r"},"nowatch":true}}"#
        );
    }
}
