//! Browser frame parsing and server frame encoding (PROTOCOL.md A3, A6).
//!
//! `cargo bench --bench protocol`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;
use ui_gateway::ids::VarId;
use ui_gateway::protocol::{
    encode_server_frame, parse_client_frame, FrameLimits, Properties, ServerMessage, UpdateOut,
};

fn bench_parse(c: &mut Criterion) {
    let limits = FrameLimits::default();
    let mut group = c.benchmark_group("protocol/parse");
    let action = r#"{"userEvent":true,"messages":[{"type":"update","data":{"varId":3,"value":null}}]}"#;
    let write = r#"{"userEvent":false,"messages":[{"type":"update","data":{"varId":2,"value":"Call Bob"}}]}"#;
    // The Adder's bootstrap creates.
    let creates = json!({"userEvent":false,"messages":[
        {"type":"create","data":{"id":2,"parentId":1,"properties":{"path":"a","elementId":"ui-1"}}},
        {"type":"create","data":{"id":3,"parentId":1,"properties":{"path":"b","elementId":"ui-2"}}},
        {"type":"create","data":{"id":4,"parentId":1,"properties":{"path":"compute()","access":"r","elementId":"ui-3"}}},
        {"type":"create","data":{"id":5,"parentId":1,"properties":{"path":"clear()","access":"action","elementId":"ui-4"}}}]})
    .to_string();
    for (name, text) in [("action", action), ("value_write", write), ("four_creates", creates.as_str())] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| black_box(parse_client_frame(black_box(text.as_bytes()), &limits).expect("valid")))
        });
    }
    group.finish();
}

fn update(id: i64, value: serde_json::Value, props: &[(&str, &str)]) -> ServerMessage {
    let mut properties = Properties::default();
    for (k, v) in props {
        properties.set(k, v);
    }
    ServerMessage::Update(UpdateOut { var_id: VarId(id), value: Some(value), properties })
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("protocol/encode");
    let one = vec![update(2, json!(42), &[])];
    // The Adder's create replies.
    let replies = vec![
        update(2, json!(""), &[("path", "a"), ("elementId", "ui-1")]),
        update(3, json!(""), &[("path", "b"), ("elementId", "ui-2")]),
        update(4, json!(""), &[("path", "compute()"), ("access", "r"), ("elementId", "ui-3")]),
    ];
    let list = vec![update(6, json!((1..=50).map(|n| json!({ "obj": n })).collect::<Vec<_>>()), &[])];
    for (name, frame) in [("one_update", &one), ("three_replies", &replies), ("list_of_50_refs", &list)] {
        group.throughput(Throughput::Bytes(encode_server_frame(frame).len() as u64));
        group.bench_function(name, |b| b.iter(|| black_box(encode_server_frame(black_box(frame)))));
    }
    group.finish();
}

criterion_group!(benches, bench_parse, bench_encode);
criterion_main!(benches);
