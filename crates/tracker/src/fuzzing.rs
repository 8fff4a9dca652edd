//! Entry points for the cargo-fuzz targets in `tests/fuzz/` and the property tests in
//! `tests/properties.rs` (issue 7). Not part of the supported API.
//!
//! Each `fuzz_*` function takes arbitrary bytes, runs one parser on them and panics only when a property
//! fails: a parser may refuse input with a typed error, never panic, and what it accepts must survive
//! a serialize → parse round trip unchanged.

use serde_json::{Map, Value};

use crate::path::parse_path;
use crate::protocol::{parse_client_frame, ClientFrame, ErrorCode, FrameLimits, Message};
use crate::registry::ObjectRegistry;
use crate::value::snapshot;
use crate::{JValue, JsonResolver, Resolver};

/// Browser frames: parsing never panics, refusals are typed, accepted frames round-trip.
pub fn fuzz_browser_frame(data: &[u8]) {
    for limits in [FrameLimits::default(), FrameLimits { max_messages: 3, max_depth: 4 }] {
        match parse_client_frame(data, &limits) {
            Ok(frame) => check_frame_round_trip(&frame),
            Err(e) => assert!(
                matches!(e.code, ErrorCode::BadMessage | ErrorCode::LimitExceeded),
                "unexpected frame error {e:?}"
            ),
        }
    }
}

/// The accepted messages of a frame, re-encoded as a wrapper frame, parse back to the same messages.
pub fn check_frame_round_trip(frame: &ClientFrame) {
    let text = encode_client_frame(frame);
    let again = parse_client_frame(text.as_bytes(), &FrameLimits { max_messages: usize::MAX, max_depth: usize::MAX })
        .unwrap_or_else(|e| panic!("re-encoded frame refused: {e}\n{text}"));
    assert_eq!(again.user_event, frame.user_event, "{text}");
    let before: Vec<&Message> = frame.messages.iter().filter_map(|m| m.as_ref().ok()).collect();
    let after: Vec<&Message> = again.messages.iter().map(|m| m.as_ref().expect("re-encoded message parses")).collect();
    assert_eq!(before, after, "{text}");
}

/// A client frame as a browser would send it: `{"userEvent":…,"messages":[…]}` with the accepted
/// messages only; property names carry their priority suffix again (`name:high`).
pub fn encode_client_frame(frame: &ClientFrame) -> String {
    let messages: Vec<Value> = frame.messages.iter().filter_map(|m| m.as_ref().ok()).map(encode_message).collect();
    serde_json::json!({"userEvent": frame.user_event, "messages": messages}).to_string()
}

fn encode_message(m: &Message) -> Value {
    let mut v = m.to_canonical();
    let data = v["data"].as_object_mut().expect("messages have data");
    let priorities = data.remove("priorities");
    if let (Some(Value::Object(props)), Some(Value::Object(prio))) = (data.get("properties"), priorities) {
        let renamed: Map<String, Value> = props
            .iter()
            .map(|(name, value)| match prio.get(name).and_then(Value::as_str) {
                Some(p) => (format!("{name}:{p}"), value.clone()),
                None => (name.clone(), value.clone()),
            })
            .collect();
        data.insert("properties".into(), Value::Object(renamed));
    }
    v
}

/// Paths: parsing never panics, refusals are `bad-message`, an accepted path prints as text that
/// parses to the same segments.
pub fn fuzz_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    check_path(text);
    let (path, _query) = crate::protocol::message::split_query(text);
    check_path(path);
}

pub fn check_path(text: &str) {
    match parse_path(text) {
        Ok(path) => {
            let printed = path.to_string();
            let again = parse_path(&printed).unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}: {e}"));
            assert_eq!(again, path, "{text:?} printed as {printed:?}");
        }
        Err(e) => assert_eq!(e.code, ErrorCode::BadMessage, "{text:?}"),
    }
}

/// Value JSON: any JSON (within the browser depth limit) converts to a host value and back without
/// panicking; the result is the input with numbers normalised and plain objects turned into object
/// references. Values nested deeper than 32 are `limit-exceeded`.
pub fn fuzz_value_json(data: &[u8]) {
    if crate::protocol::browser::nesting_depth(data) > 128 {
        return;
    }
    let Ok(json) = serde_json::from_slice::<Value>(data) else { return };
    check_value_round_trip(&json);
}

pub fn check_value_round_trip(json: &Value) {
    let resolver = JsonResolver::new();
    let mut registry: ObjectRegistry<JValue> = ObjectRegistry::new();
    // Object 1 is known, so `{"obj":1}` resolves; any other id is `not-found`.
    let known = JValue::object([]);
    let known_id = registry.acquire(known.identity().expect("objects have an identity"), known);
    let value = match resolver.from_json(json, &registry) {
        Ok(v) => v,
        Err(e) => {
            assert!(matches!(e.code, ErrorCode::LimitExceeded | ErrorCode::NotFound), "{e:?} for {json}");
            return;
        }
    };
    match snapshot(&resolver, &value, &mut registry) {
        Ok(snap) => {
            let out = snap.to_json();
            assert!(same_value(json, &out, known_id.0), "{json} came back as {out}");
        }
        Err(e) => assert_eq!(e.code, ErrorCode::LimitExceeded, "{json}"),
    }
}

/// Whether `out` is what the gateway sends back for the written `input`.
fn same_value(input: &Value, out: &Value, known: u64) -> bool {
    match (input, out) {
        (Value::Number(n), _) => *out == normalise_number(n),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y, known))
        }
        (Value::Object(map), Value::Object(o)) => {
            let out_id = o.get("obj").and_then(Value::as_u64);
            if o.len() != 1 || out_id.is_none_or(|n| n == 0) {
                return false;
            }
            // A reference to a known object keeps its id; a plain table becomes a new object.
            match map.get("obj").and_then(Value::as_u64) {
                Some(n) if map.len() == 1 => out_id == Some(n) && n == known,
                _ => out_id != Some(known),
            }
        }
        _ => input == out,
    }
}

/// Numbers on the wire: integers stay, integral floats within ±2^53 lose their fraction, others stay
/// floats (PROTOCOL.md A5.1).
pub fn normalise_number(n: &serde_json::Number) -> Value {
    if let Some(i) = n.as_i64() {
        return Value::from(i);
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    if !f.is_finite() {
        Value::Null
    } else if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)
    }
}
