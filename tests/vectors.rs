//! Replays the language-neutral parse vectors in `protocol/vectors/browser-parse.json`.

use serde_json::{json, Value};
use ui_gateway::protocol::{parse_client_frame, FrameLimits};

#[test]
fn browser_parse_vectors() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol/vectors/browser-parse.json")).unwrap();
    let file: Value = serde_json::from_str(&text).unwrap();
    let cases = file["cases"].as_array().unwrap();
    assert!(cases.len() >= 45, "the vector file holds the agreed cases");
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut limits = FrameLimits::default();
        if let Some(l) = case.get("limits") {
            if let Some(n) = l.get("maxMessages").and_then(Value::as_u64) {
                limits.max_messages = n as usize;
            }
            if let Some(n) = l.get("maxDepth").and_then(Value::as_u64) {
                limits.max_depth = n as usize;
            }
        }
        let got = match parse_client_frame(case["frame"].as_str().unwrap().as_bytes(), &limits) {
            Err(e) => json!({"frameError": {"code": e.code.as_str()}}),
            Ok(frame) => json!({
                "userEvent": frame.user_event,
                "messages": frame.messages.iter().map(|m| match m {
                    Ok(m) => json!({"ok": m.to_canonical()}),
                    Err(e) => json!({"error": {"varId": e.var_id.0, "code": e.code.as_str()}}),
                }).collect::<Vec<_>>(),
            }),
        };
        if got != case["expect"] {
            failures.push(format!("{name}:\n  expected {}\n  got      {got}", case["expect"]));
        }
    }
    assert!(failures.is_empty(), "{} of {} vectors failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
