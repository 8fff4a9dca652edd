//! The Adder worked example (`protocol/vectors/gateway-browser-worked-example.json` is its vector), step
//! by step, over a real socket.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn adder_site() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/adder"))
}

async fn bootstrap(ws: &mut Ws, expect_viewdefs: bool) {
    ws.send(watch(1)).await;
    let frame = ws.recv().await;
    // The site's own file, as delivered (the server trims it); its styling is free to change.
    let template = std::fs::read_to_string(adder_site().join("viewdefs/Adder.DEFAULT.html")).unwrap();
    let template = template.trim();
    let mut expected =
        vec![json!({"type":"update","data":{"varId":1,"value":{"obj":1},"properties":{"type":"Adder"}}})];
    if expect_viewdefs {
        let viewdefs = json!({"Adder.DEFAULT": template}).to_string();
        expected.insert(0, json!({"type":"update","data":{"varId":1,"properties":{"viewdefs":viewdefs}}}));
    }
    assert_eq!(frame, expected);
    ws.send(json!({"userEvent":false,"messages":[
        {"type":"create","data":{"id":2,"parentId":1,"properties":{"path":"a","elementId":"ui-1"}}},
        {"type":"create","data":{"id":3,"parentId":1,"properties":{"path":"b","elementId":"ui-2"}}},
        {"type":"create","data":{"id":4,"parentId":1,"properties":{"path":"compute()","access":"r","elementId":"ui-3"}}},
        {"type":"create","data":{"id":5,"parentId":1,"properties":{"path":"clear()","access":"action","elementId":"ui-4"}}}]}))
    .await;
    assert_eq!(
        ws.recv().await,
        vec![
            json!({"type":"update","data":{"varId":2,"value":"","properties":{"path":"a","elementId":"ui-1"}}}),
            json!({"type":"update","data":{"varId":3,"value":"","properties":{"path":"b","elementId":"ui-2"}}}),
            json!({"type":"update","data":{"varId":4,"value":"","properties":{"path":"compute()","access":"r","elementId":"ui-3"}}}),
        ]
    );
}

#[tokio::test]
async fn worked_example_one_tab_then_a_second() {
    let mut a = args();
    a.site = Some(adder_site());
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut tab_a = connect(&gw, &id, None).await.unwrap();
    bootstrap(&mut tab_a, true).await;

    // 5: typing 2 into a: no echo, compute() still "".
    tab_a.send(json!({"userEvent":false,"messages":[{"type":"update","data":{"varId":2,"value":"2"}}]})).await;
    tab_a.quiet(Duration::from_millis(150)).await;
    // 6: typing 3 into b: compute() becomes 5.
    tab_a.send(json!({"userEvent":false,"messages":[{"type":"update","data":{"varId":3,"value":"3"}}]})).await;
    assert_eq!(tab_a.recv().await, vec![json!({"type":"update","data":{"varId":4,"value":5}})]);
    // 7: Clear, a user event: everything resets at once.
    tab_a.send(json!({"userEvent":true,"messages":[{"type":"update","data":{"varId":5,"value":null}}]})).await;
    assert_eq!(
        tab_a.recv().await,
        vec![
            json!({"type":"update","data":{"varId":2,"value":""}}),
            json!({"type":"update","data":{"varId":3,"value":""}}),
            json!({"type":"update","data":{"varId":4,"value":""}}),
        ]
    );

    // A second tab uses the same client ids and gets the viewdefs again.
    let mut tab_b = connect(&gw, &id, None).await.unwrap();
    bootstrap(&mut tab_b, true).await;
    // A's write reaches B under B's own id 2; A gets no echo.
    tab_a.send(json!({"userEvent":false,"messages":[{"type":"update","data":{"varId":2,"value":"7"}}]})).await;
    assert_eq!(tab_b.recv().await, vec![json!({"type":"update","data":{"varId":2,"value":"7"}})]);
    tab_a.quiet(Duration::from_millis(150)).await;

    // B closes: only B's variables go; A keeps working.
    drop(tab_b);
    tab_a.send(json!({"userEvent":true,"messages":[{"type":"update","data":{"varId":3,"value":"1"}}]})).await;
    assert_eq!(tab_a.recv().await, vec![json!({"type":"update","data":{"varId":4,"value":8}})]);
}

#[tokio::test]
async fn browser_create_and_destroy_rules() {
    let mut a = args();
    a.site = Some(adder_site());
    let gw = start(a).await;
    let id = new_session(&gw).await;
    let mut ws = connect(&gw, &id, None).await.unwrap();
    bootstrap(&mut ws, true).await;
    ws.send(json!({"userEvent":true,"messages":[
        {"type":"create","data":{"id":2,"parentId":1,"properties":{"path":"a"}}},
        {"type":"create","data":{"id":9,"parentId":77,"properties":{"path":"a"}}},
        {"type":"create","data":{"id":10,"parentId":1,"properties":{"path":"save(_)","access":"r"}}},
        {"type":"create","data":{"id":11,"parentId":1,"properties":{"path":"delete(x)"}}},
        {"type":"update","data":{"varId":4,"value":"9"}},
        {"type":"update","data":{"varId":2,"properties":{"path":"b","note":"kept"}}},
        {"type":"destroy","data":{"varId":99}}]}))
        .await;
    let frame = ws.recv().await;
    let errors: Vec<(i64, &str)> = frame
        .iter()
        .filter(|m| m["type"] == "error")
        .map(|m| (m["data"]["varId"].as_i64().unwrap(), m["data"]["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        vec![
            (2, "id-in-use"),
            (9, "not-found"),
            (10, "access-denied"),
            (11, "bad-message"),
            (4, "access-denied"),
            (2, "access-denied")
        ]
    );
    // Destroying its own variable: the creator gets the notice; the id can be reused afterwards.
    ws.send(json!({"userEvent":true,"messages":[{"type":"destroy","data":{"varId":3}}]})).await;
    assert_eq!(ws.recv().await, vec![json!({"type":"destroy","data":{"varId":3}})]);
    ws.send(
        json!({"userEvent":true,"messages":[{"type":"create","data":{"id":3,"parentId":1,"properties":{"path":"b"}}}]}),
    )
    .await;
    assert_eq!(ws.recv().await, vec![json!({"type":"update","data":{"varId":3,"value":"","properties":{"path":"b"}}})]);
}
