//! Property tests (issue 7): the browser frame parser, the path grammar and value JSON, on generated
//! input. The checks themselves live in `ui_gateway_tracker::fuzzing` (re-exported as `ui_gateway::fuzzing`), shared with the cargo-fuzz targets in
//! `tests/fuzz/`. Case counts are kept small so the whole file runs in a few seconds.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use ui_gateway::fuzzing;
use ui_gateway::protocol::{parse_client_frame, ErrorCode, FrameLimits};
use ui_gateway::tracker::path::parse_path;
use ui_gateway::tracker::{Path, Segment};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Any JSON value: scalars (including big and fractional numbers, unicode strings), arrays, objects.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        (-5i64..5).prop_map(|i| Value::from(i as f64)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z]{1,4}|obj|type|data|varId|messages", inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Value JSON proper: no objects but `{"obj":1}` (the one object the check registers).
fn value_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        Just(json!({"obj": 1})),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| prop::collection::vec(inner, 0..5).prop_map(Value::Array))
}

fn id() -> impl Strategy<Value = i64> {
    prop_oneof![-3i64..40, Just((1i64 << 53) - 1), Just(-((1i64 << 53) - 1))]
}

fn property_name() -> impl Strategy<Value = String> {
    "(type|priority|namespace|elementId|[a-oq-z]{1,5})(:high|:med|:medium|:low|:other)?"
}

fn path_text() -> impl Strategy<Value = String> {
    "[a-z]{1,3}(\\.([a-z]{1,3}|[0-9]|\\.|[a-z]\\(\\)))*(\\?(wrapper=W|flag|p:high=1|a%20b=%41)(&[a-z]=[a-z0-9]{0,2}){0,2})?"
}

fn properties() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((property_name(), ".{0,8}"), 0..4)
        .prop_map(|kv| kv.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

/// A message a browser may legitimately send (ids and field types valid).
fn valid_message() -> impl Strategy<Value = Value> {
    prop_oneof![
        (prop_oneof![Just("watch"), Just("unwatch"), Just("destroy")], id())
            .prop_map(|(t, id)| json!({"type": t, "data": {"varId": id}})),
        (id(), prop::option::of(value_json()), prop::option::of(properties())).prop_map(|(id, value, props)| {
            let mut data = Map::new();
            data.insert("varId".into(), id.into());
            if let Some(v) = value {
                data.insert("value".into(), v);
            }
            if let Some(p) = props {
                data.insert("properties".into(), Value::Object(p));
            }
            json!({"type": "update", "data": data})
        }),
        (2i64..50, 1i64..50, path_text(), properties(), any::<bool>()).prop_map(|(id, parent, path, mut props, w)| {
            props.insert("path".into(), Value::String(path));
            let mut data = json!({"id": id, "parentId": parent, "properties": props});
            if w {
                // The legacy frontend adds fields the gateway ignores.
                data["widget"] = json!({"x": 1});
            }
            json!({"type": "create", "data": data})
        }),
    ]
}

/// One of the three frame forms around valid messages.
fn valid_frame() -> impl Strategy<Value = Value> {
    (prop::collection::vec(valid_message(), 0..6), 0..3u8, any::<bool>()).prop_map(
        |(messages, form, user_event)| match (form, messages.len()) {
            (0, 1) => messages.into_iter().next().unwrap(),
            (1, _) => Value::Array(messages),
            _ => json!({"userEvent": user_event, "messages": messages}),
        },
    )
}

fn segment() -> impl Strategy<Value = Segment> {
    let name = "[a-zA-Z_@$][a-zA-Z0-9_@$-]{0,5}|0[0-9]{1,3}";
    prop_oneof![
        name.prop_map(Segment::Name),
        any::<u32>().prop_map(Segment::Index),
        name.prop_map(Segment::Call),
        name.prop_map(Segment::CallArg),
        Just(Segment::Up),
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    /// The frame parser never panics on arbitrary bytes and only refuses with typed errors.
    #[test]
    fn frame_parser_survives_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzzing::fuzz_browser_frame(&bytes);
    }

    /// … nor on arbitrary text made of JSON's punctuation.
    #[test]
    fn frame_parser_survives_json_like_text(text in "[\\[\\]{}\":,0-9a-zA-Z \\\\.eE+-]{0,120}") {
        fuzzing::fuzz_browser_frame(text.as_bytes());
    }

    /// The path parser never panics on arbitrary strings; what it accepts prints back to itself.
    #[test]
    fn path_parser_survives_arbitrary_text(text in ".{0,40}") {
        fuzzing::fuzz_path(text.as_bytes());
    }

    #[test]
    fn path_parser_survives_grammar_soup(text in "[a-z0-9._()?&=%:]{0,30}") {
        fuzzing::fuzz_path(text.as_bytes());
    }
}

proptest! {
    #![proptest_config(config(500))]

    /// Arbitrary JSON as a frame: parsed or refused with a typed error, never a panic; what parses
    /// round-trips.
    #[test]
    fn frame_parser_on_arbitrary_json(v in any_json()) {
        let text = v.to_string();
        fuzzing::fuzz_browser_frame(text.as_bytes());
        // An arbitrary value wrapped as a message list: each message parses or gets its own error.
        let wrapped = json!({"messages": [v.clone(), {"type": "update", "data": v}]}).to_string();
        let frame = parse_client_frame(wrapped.as_bytes(), &FrameLimits::default()).unwrap();
        prop_assert_eq!(frame.messages.len(), 2);
        for m in &frame.messages {
            if let Err(e) = m {
                prop_assert!(matches!(e.code, ErrorCode::BadMessage | ErrorCode::AccessDenied), "{:?}", e);
            }
        }
        fuzzing::check_frame_round_trip(&frame);
    }

    /// Valid frames in any of the three forms parse completely, and parse → serialize → parse is the
    /// identity.
    #[test]
    fn valid_frames_round_trip(v in valid_frame()) {
        let text = v.to_string();
        let frame = parse_client_frame(text.as_bytes(), &FrameLimits::default()).unwrap();
        for m in &frame.messages {
            prop_assert!(m.is_ok(), "{:?} in {}", m, text);
        }
        fuzzing::check_frame_round_trip(&frame);
    }

    /// Generated paths print as text that parses back to the same segments.
    #[test]
    fn paths_round_trip(segments in prop::collection::vec(segment(), 1..8)) {
        let path = Path { segments };
        let text = path.to_string();
        prop_assert_eq!(parse_path(&text).unwrap(), path, "{}", text);
    }

    /// Value JSON survives browser → host value → snapshot → wire exactly (numbers normalised).
    #[test]
    fn value_json_round_trips(v in value_json()) {
        fuzzing::check_value_round_trip(&v);
    }

    /// Any JSON as a written value: converted or refused with a typed error; plain objects become
    /// object references.
    #[test]
    fn any_json_as_a_value(v in any_json()) {
        fuzzing::check_value_round_trip(&v);
    }
}

#[test]
fn numbers_normalise_as_the_protocol_says() {
    let n = |v: Value| match v {
        Value::Number(n) => fuzzing::normalise_number(&n),
        _ => unreachable!(),
    };
    assert_eq!(n(json!(3.0)), json!(3));
    assert_eq!(n(json!(-0.0)), json!(0));
    assert_eq!(n(json!(2.5)), json!(2.5));
    assert_eq!(n(json!(1e300)), json!(1e300));
    assert_eq!(n(json!(u64::MAX)), json!(18446744073709551615.0));
}
