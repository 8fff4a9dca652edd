//! `ui-gateway loadtest` against a real gateway on an ephemeral port: every session is established and
//! every action completes without an error. Nothing here depends on how long anything takes.

mod common;

use std::time::Duration;

use common::*;
use ui_gateway::loadtest::{run, LoadtestArgs};

fn quick(target: String) -> LoadtestArgs {
    LoadtestArgs {
        target,
        sessions: 8,
        concurrency: 4,
        actions: 5,
        interval: Duration::from_millis(5),
        timeout: STEP,
        pid: Some(std::process::id()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_demo_scenario_completes_every_action() {
    let gw = start(args()).await;
    let sessions_at_start = gw.gateway.sessions.count();
    let report = run(&quick(format!("http://{}", gw.addr))).await.expect("runs");
    assert_eq!(report.sessions.established, 8, "{}", report.text());
    assert_eq!(report.actions.completed, 40, "{}", report.text());
    assert_eq!(report.actions.failed, 0);
    assert!(report.errors.is_empty(), "{}", report.text());
    assert!(report.sessions.lost.is_empty(), "{}", report.text());
    assert_eq!(report.error_rate, 0.0);
    assert!(report.passed);
    assert_eq!(report.actions.round_trip.samples, 40);
    assert!(report.rss.is_some());
    // Every session sent watch, creates and 5 actions, and got an answer to each.
    assert_eq!(report.frames.sent, 8 * 7);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["actions"]["completed"], 40);
    // The server saw 8 sessions, and the run removed them at the end (DELETE /<id>).
    let removal = &report.sessions.removal;
    assert_eq!((removal.removed, removal.already_gone, removal.kept), (8, 0, 0), "{}", report.text());
    assert!(removal.failures.is_empty(), "{}", report.text());
    assert_eq!(json["sessions"]["removal"]["removed"], 8);
    assert!(report.text().contains("8 sessions removed"), "{}", report.text());
    assert_eq!(gw.gateway.sessions.count(), sessions_at_start, "the gateway is back to where it started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adder_scenario_with_cycled_values() {
    let mut a = args();
    a.site = Some(std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/adder")));
    let gw = start(a).await;
    let mut lt = quick(format!("http://{}", gw.addr));
    lt.scenario = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/scenarios/adder.json").into());
    lt.keep_sessions = true;
    let report = run(&lt).await.expect("runs");
    assert_eq!(report.actions.completed, 40, "{}", report.text());
    assert!(report.errors.is_empty() && report.passed, "{}", report.text());
    // --keep-sessions: nothing deleted, all 8 still on the server.
    assert_eq!((report.sessions.removal.kept, report.sessions.removal.removed), (8, 0));
    assert_eq!(gw.gateway.sessions.count(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_by_cause() {
    // The demo scenario against the Adder site: `count` does not exist there.
    let mut a = args();
    a.site = Some(std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/adder")));
    let gw = start(a).await;
    let mut lt = quick(format!("http://{}", gw.addr));
    lt.sessions = 2;
    lt.actions = 1;
    let report = run(&lt).await.expect("runs");
    assert!(!report.passed, "{}", report.text());
    assert!(report.errors.0.contains_key("path-failure"), "{}", report.text());

    // At capacity: GET / answers 503. One set-up at a time, so the first session holds its WebSocket
    // (and so cannot be evicted) when the others ask.
    let mut a = args();
    a.max_sessions = 1;
    let gw = start(a).await;
    let mut lt = quick(format!("http://{}", gw.addr));
    lt.concurrency = 1;
    lt.sessions = 3;
    lt.actions = 1;
    let report = run(&lt).await.expect("runs");
    assert_eq!(report.sessions.established, 1, "{}", report.text());
    assert_eq!(report.sessions.failures.0.get("http-503"), Some(&2), "{}", report.text());
    assert!(!report.passed);
}

#[tokio::test]
async fn usage_errors() {
    for target in ["https://127.0.0.1:1", "ftp://x", "http://127.0.0.1:1/base"] {
        let lt = LoadtestArgs { target: target.into(), ..Default::default() };
        assert!(run(&lt).await.is_err(), "{target}");
    }
    let lt = LoadtestArgs { scenario: Some("/nonexistent/scenario.json".into()), ..Default::default() };
    assert!(run(&lt).await.unwrap_err().to_string().contains("cannot read"));
}
