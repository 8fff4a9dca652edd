//! The `/backend` link over real sockets: the worked examples of PROTOCOL.md B13 (connected)
//! and docs/hybrid-mode.md (hybrid), authentication, the one-backend rule, frame errors, outage and replay.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use ui_gateway::config::Mode;

const COUNTER_VIEWDEF: &str =
    r#"<template><span ui-value="count"></span><button ui-action="increment()">+</button></template>"#;

fn connected_args() -> ui_gateway::config::ServeArgs {
    let mut a = args();
    a.site = Some(site(&[("viewdefs/Counter.DEFAULT.html", COUNTER_VIEWDEF)]));
    a.mode = Mode::Connected;
    a
}

fn batch(session: &str, messages: Value) -> Value {
    json!({"session": session, "messages": messages})
}

/// Connects a backend and checks the welcome.
async fn backend(gw: &ui_gateway::gateway::RunningGateway, sessions: Value) -> Ws {
    let mut k = connect_backend(gw, &[]).await.unwrap();
    let welcome = k.recv_json().await;
    assert_eq!(welcome["welcome"]["protocol"], 1);
    assert_eq!(welcome["welcome"]["sessions"], sessions);
    assert_eq!(welcome["welcome"]["epoch"].as_str().unwrap().len(), 32);
    assert_eq!(welcome["welcome"]["limits"]["sessionBuffer"], 1000);
    k
}

async fn counter_bootstrap(b: &mut Ws, k: &mut Ws) {
    b.send(watch(1)).await;
    assert_eq!(k.recv_json().await, batch("1", json!([{"type":"watch","data":{"varId":1}}])));
    k.send(batch("1", json!([{"type":"create","data":{"id":1,"value":{"obj":1},"properties":{"type":"Counter"}}}])))
        .await;
    let viewdefs = json!({"Counter.DEFAULT": COUNTER_VIEWDEF}).to_string();
    assert_eq!(
        b.recv().await,
        vec![
            json!({"type":"update","data":{"varId":1,"properties":{"viewdefs":viewdefs}}}),
            json!({"type":"update","data":{"varId":1,"value":{"obj":1},"properties":{"type":"Counter"}}}),
        ]
    );
    b.send(creates(&[
        (2, 1, json!({"path":"count","access":"r"})),
        (3, 1, json!({"path":"increment()","access":"action"})),
    ]))
    .await;
}

#[tokio::test]
async fn connected_worked_example_with_a_second_tab_and_a_backend_restart() {
    let gw = start(connected_args()).await;
    let mut k = backend(&gw, json!([])).await;
    let id = new_session(&gw).await;
    let mut b = connect(&gw, &id, None).await.unwrap();
    counter_bootstrap(&mut b, &mut k).await;
    assert_eq!(
        k.recv_json().await,
        batch(
            "1",
            json!([
                {"type":"create","data":{"id":2,"parentId":1,"properties":{"path":"count","access":"r"},"nowatch":true}},
                {"type":"watch","data":{"varId":2}},
                {"type":"create","data":{"id":3,"parentId":1,"properties":{"path":"increment()","access":"action"},"nowatch":true}},
                {"type":"watch","data":{"varId":3}}
            ])
        )
    );
    k.send(batch("1", json!([{"type":"update","data":{"varId":2,"value":0}}]))).await;
    assert_eq!(b.recv().await, vec![json!({"type":"update","data":{"varId":2,"value":0}})]);
    // Click: forwarded with userEvent; the flagged reply reaches the browser at once.
    b.send(set(3, Value::Null, true)).await;
    assert_eq!(
        k.recv_json().await,
        json!({"session":"1","userEvent":true,"messages":[{"type":"update","data":{"varId":3,"value":null}}]})
    );
    k.send(json!({"session":"1","userEvent":true,"messages":[{"type":"update","data":{"varId":2,"value":1}}]})).await;
    assert_eq!(b.recv().await, vec![json!({"type":"update","data":{"varId":2,"value":1}})]);

    // A second tab: its 2 and 3 are the session's 4 and 5; its watch(1) is answered from the mirror.
    let mut c = connect(&gw, &id, None).await.unwrap();
    c.send(watch(1)).await;
    let frame = c.recv().await;
    assert_eq!(frame.len(), 2, "{frame:?}");
    assert_eq!(frame[1], json!({"type":"update","data":{"varId":1,"value":{"obj":1},"properties":{"type":"Counter"}}}));
    c.send(creates(&[(2, 1, json!({"path":"count","access":"r"}))])).await;
    assert_eq!(
        k.recv_json().await,
        batch(
            "1",
            json!([
                {"type":"create","data":{"id":4,"parentId":1,"properties":{"path":"count","access":"r"},"nowatch":true}},
                {"type":"watch","data":{"varId":4}}
            ])
        )
    );
    k.send(batch("1", json!([{"type":"update","data":{"varId":4,"value":1}}]))).await;
    assert_eq!(c.recv().await, vec![json!({"type":"update","data":{"varId":2,"value":1}})]);
    // C leaves: the backend hears destroy of what C created.
    drop(c);
    assert_eq!(k.recv_json().await, batch("1", json!([{"type":"destroy","data":{"varId":4}}])));

    // The backend goes away: B is told once, its click is buffered.
    drop(k);
    assert_eq!(
        b.recv().await,
        vec![
            json!({"type":"error","data":{"varId":1,"code":"backend-unavailable","description":"backend disconnected"}})
        ]
    );
    b.send(set(3, Value::Null, true)).await;
    b.quiet(Duration::from_millis(100)).await;
    // A new backend gets the welcome with session 1 and the replay in the spec's order.
    let mut k2 = backend(&gw, json!(["1"])).await;
    assert_eq!(
        k2.recv_json().await,
        batch(
            "1",
            json!([
                {"type":"watch","data":{"varId":1}},
                {"type":"create","data":{"id":2,"parentId":1,"properties":{"path":"count","access":"r"},"nowatch":true}},
                {"type":"watch","data":{"varId":2}},
                {"type":"create","data":{"id":3,"parentId":1,"properties":{"path":"increment()","access":"action"},"nowatch":true}},
                {"type":"watch","data":{"varId":3}},
                {"type":"update","data":{"varId":3,"value":null}}
            ])
        )
    );
    k2.send(batch(
        "1",
        json!([
            {"type":"create","data":{"id":1,"value":{"obj":1},"properties":{"type":"Counter"}}},
            {"type":"update","data":{"varId":2,"value":1}}
        ]),
    ))
    .await;
    let mut m = Mirror::default();
    b.until(&mut m, |m| m.value(2) == json!(1) && m.values.contains_key(&1)).await;
    gw.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn one_backend_at_a_time_and_auth_rules() {
    // A pool of one: a second worker finds the pool full (4409).
    let mut pool_of_one = connected_args();
    pool_of_one.max_backends = 1;
    let gw = start(pool_of_one).await;
    let mut k = backend(&gw, json!([])).await;
    let mut second = connect_backend(&gw, &[]).await.unwrap();
    assert_eq!(second.closed().await, 4409);
    // The first is unaffected: a batch for an unknown session is answered with `closed`.
    k.send(batch("99", json!([]))).await;
    assert_eq!(k.recv_json().await, json!({"session":"99","event":"closed"}));
    // Malformed frames get a frame error; the connection stays.
    k.send_raw("{not json").await;
    assert_eq!(k.recv_json().await["error"]["code"], "bad-message");
    k.send(json!({"messages": []})).await;
    assert_eq!(k.recv_json().await["error"]["code"], "bad-message");
    k.send(batch("99", json!([]))).await;
    assert_eq!(k.recv_json().await["event"], "closed");

    // Local without a token is fine (above); with Origin it is not local.
    let http = http();
    let url = format!("http://{}/backend", gw.addr);
    let upgrade = |r: reqwest::RequestBuilder| {
        r.header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    };
    let r = upgrade(http.get(&url).header("origin", "http://evil.example")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = upgrade(http.get(&url).header("x-forwarded-for", "1.2.3.4")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = http.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 405);
    gw.shutdown(Duration::from_secs(2)).await;

    // With a token: missing or wrong → 401 even on loopback.
    let mut a = connected_args();
    a.backend_token = Some("0123456789abcdef-token".into());
    let gw = start(a).await;
    let url = format!("http://{}/backend", gw.addr);
    let r = upgrade(http.get(&url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = upgrade(http.get(&url).header("authorization", "Bearer wrong-token-0000000")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let mut k = connect_backend(&gw, &[("authorization", "Bearer 0123456789abcdef-token")]).await.unwrap();
    assert_eq!(k.recv_json().await["welcome"]["mode"], "connected");
    gw.shutdown(Duration::from_secs(2)).await;

    // Embedded mode has no /backend.
    let gw = start(args()).await;
    let r = upgrade(http.get(format!("http://{}/backend", gw.addr))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    gw.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn closed_events_on_expiry_and_shutdown() {
    let gw = start(connected_args()).await;
    let mut k = backend(&gw, json!([])).await;
    let one = new_session(&gw).await;
    let _two = new_session(&gw).await;
    let _three = new_session(&gw).await;
    let id: ui_gateway::ids::SessionId = one.parse().unwrap();
    gw.gateway.sessions.destroy_session(&id, ui_gateway::session::EndReason::Timeout);
    assert_eq!(k.recv_json().await, json!({"session":"1","event":"closed"}));
    k.send(batch("1", json!([{"type":"watch","data":{"varId":1}}]))).await;
    assert_eq!(k.recv_json().await, json!({"session":"1","event":"closed"}));
    let gw_done = tokio::spawn(gw.shutdown(Duration::from_secs(5)));
    assert_eq!(k.recv_json().await, json!({"session":"2","event":"closed"}));
    assert_eq!(k.recv_json().await, json!({"session":"3","event":"closed"}));
    assert_eq!(k.closed().await, 1001);
    assert!(gw_done.await.unwrap());
}

const QUOTE_LUA: &str = r#"
Quote = session:prototype("Quote", {symbol = "ACME", price = 0, note = ""})
session:createAppVariable(session:create(Quote))
"#;

#[tokio::test]
async fn hybrid_worked_example() {
    let mut a = args();
    a.site = Some(site(&[
        ("lua/main.lua", QUOTE_LUA),
        ("viewdefs/Quote.DEFAULT.html", "<template><span ui-value=\"price\"></span></template>"),
    ]));
    a.mode = Mode::Hybrid;
    let gw = start(a).await;
    let mut k = backend(&gw, json!([])).await;
    let id = new_session(&gw).await;
    let mut b = connect(&gw, &id, None).await.unwrap();
    b.send(watch(1)).await;
    assert_eq!(k.recv_json().await, batch("1", json!([])));
    let frame = b.recv().await;
    assert_eq!(frame[1], json!({"type":"update","data":{"varId":1,"value":{"obj":1},"properties":{"type":"Quote"}}}));
    b.send(creates(&[
        (2, 1, json!({"path":"symbol","access":"r"})),
        (3, 1, json!({"path":"price","access":"r"})),
        (4, 1, json!({"path":"note"})),
    ]))
    .await;
    let mut m = Mirror::default();
    b.until(&mut m, |m| m.value(3) == json!(0)).await;
    k.quiet(Duration::from_millis(100)).await;
    k.send(batch(
        "1",
        json!([
            {"type":"create","data":{"id":-1,"parentId":1,"properties":{"path":"price","access":"rw"},"nowatch":true}},
            {"type":"create","data":{"id":-2,"parentId":1,"properties":{"path":"note","access":"r"}}},
            {"type":"update","data":{"varId":-1,"value":101.5}}
        ]),
    ))
    .await;
    assert_eq!(k.recv_json().await, batch("1", json!([{"type":"update","data":{"varId":-2,"value":""}}])));
    b.until(&mut m, |m| m.value(3) == json!(101.5)).await;
    // The browser writes note: Lua sets it, the backend's client variable -2 reports it.
    b.send(set(4, json!("buy"), false)).await;
    assert_eq!(k.recv_json().await, batch("1", json!([{"type":"update","data":{"varId":-2,"value":"buy"}}])));
    // The backend may not create var 1 (Lua's) nor send viewdefs.
    k.send(batch(
        "1",
        json!([
            {"type":"create","data":{"id":1,"value":null}},
            {"type":"update","data":{"varId":1,"properties":{"viewdefs":"{}"}}}
        ]),
    ))
    .await;
    let reply = k.recv_json().await;
    let codes: Vec<&str> =
        reply["messages"].as_array().unwrap().iter().map(|m| m["data"]["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["id-in-use", "access-denied"]);
    // The lua property runs in hybrid mode; a failure returns as lua-error on variable 1.
    k.send(batch(
        "1",
        json!([{"type":"update","data":{"varId":1,"properties":{"lua":"session:getApp().symbol = 'XYZ'"}}}]),
    ))
    .await;
    b.until(&mut m, |m| m.value(2) == json!("XYZ")).await;
    k.send(batch("1", json!([{"type":"update","data":{"varId":1,"properties":{"lua":"error('nope')"}}}]))).await;
    let reply = k.recv_json().await;
    assert_eq!(reply["messages"][0]["data"]["varId"], 1);
    assert_eq!(reply["messages"][0]["data"]["code"], "lua-error");
    // The backend leaves: its client variables go, the browser sees no error (var 1 is Lua's).
    drop(k);
    b.quiet(Duration::from_millis(200)).await;
    let items: Vec<Value> =
        http().get(format!("http://{}/{id}/variables.json", gw.addr)).send().await.unwrap().json().await.unwrap();
    let ids: Vec<i64> = items.iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4], "the backend's client variables went with it");
    let mut k2 = backend(&gw, json!(["1"])).await;
    assert_eq!(k2.recv_json().await, batch("1", json!([])));
    b.send(set(4, json!("sell"), false)).await;
    k2.quiet(Duration::from_millis(100)).await;
    b.quiet(Duration::from_millis(50)).await;
    gw.shutdown(Duration::from_secs(2)).await;
}
