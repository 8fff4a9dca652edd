//! `ui-gateway loadtest` against a real gateway on an ephemeral port: every session is established and
//! every action completes without an error; a gateway restarted under load sends its tabs through the
//! frontend's reconnect path. Nothing here depends on how long anything takes.

mod common;

use std::time::Duration;

use common::*;
use ui_gateway::config::ServeArgs;
use ui_gateway::loadtest::report::Report;
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

/// Runs `lt` against a gateway started with `serve`; once every session's socket is open, shuts the
/// gateway down (its sockets close with 1001) and starts a new one with the same arguments on the
/// same address. Returns the loadtest's report.
async fn restart_under_load(mut serve: ServeArgs, sessions: usize) -> Report {
    let gw = start(serve.clone()).await;
    serve.listen = gw.addr;
    let mut lt = quick(format!("http://{}", gw.addr));
    lt.sessions = sessions;
    lt.concurrency = sessions as u32;
    lt.actions = 40;
    lt.interval = Duration::from_millis(25);
    lt.pid = None;
    let load = tokio::spawn(async move { run(&lt).await.expect("runs") });
    let until = std::time::Instant::now() + STEP;
    while gw.gateway.live_sockets.count() < sessions {
        assert!(std::time::Instant::now() < until, "the sessions' sockets did not all open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gw.shutdown(STEP).await, "the shutdown finishes");
    let again = start(serve).await;
    let report = load.await.unwrap();
    drop(again);
    report
}

/// Without a registry a shutdown ends every session for good: the tabs reconnect to the restarted
/// gateway and get close 4404, which fails the set-up (if the drop found the session setting up) or
/// every action not yet done, with that cause only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_without_registry_ends_every_session() {
    let report = restart_under_load(args(), 6).await;
    let text = report.text();
    assert!(report.sessions.reconnects.is_empty(), "{text}");
    assert!(!report.passed, "{text}");
    let causes: Vec<_> = report.actions.failures.0.keys().chain(report.sessions.failures.0.keys()).collect();
    assert!(!causes.is_empty() && causes.iter().all(|k| *k == "close-4404"), "{text}");
    assert_eq!(report.sessions.established + report.sessions.failed, 6, "{text}");
    assert_eq!(report.actions.completed + report.actions.failed, report.actions.attempted, "{text}");
    if report.sessions.established > 0 {
        assert!(report.actions.failed > 0, "no session outlives the restart: {text}");
    }
}

/// A `redis-server` child process on a free loopback port, killed when dropped.
struct Redis {
    child: std::process::Child,
    url: String,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Redis {
    /// `None` (with the reason printed) when `redis-server` is not installed.
    async fn start() -> Option<Redis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("SKIPPED: `redis-server` is not installed (apt-get install -y redis-server)");
            return None;
        };
        let redis = Redis { child, url: format!("redis://127.0.0.1:{port}/") };
        let until = std::time::Instant::now() + STEP;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(std::time::Instant::now() < until, "redis-server did not answer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(redis)
    }
}

/// With the registry the restarted gateway restores the sessions under the same ids: every tab
/// reconnects once (its drop: close 1001), re-creates its bindings, and no action fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_registry_every_tab_reconnects_and_no_action_fails() {
    let Some(redis) = Redis::start().await else { return };
    let mut serve = args();
    serve.node_id = Some("0c".parse().unwrap());
    serve.registry = Some(redis.url.clone());
    let report = restart_under_load(serve, 6).await;
    assert_eq!(report.sessions.established, 6, "{}", report.text());
    assert_eq!(report.actions.failed, 0, "{}", report.text());
    assert_eq!(report.actions.completed, 6 * 40, "{}", report.text());
    assert!(report.sessions.lost.is_empty(), "{}", report.text());
    assert_eq!(report.sessions.reconnects.0.get("close-1001"), Some(&6), "{}", report.text());
    assert_eq!(report.sessions.reconnects.total(), 6, "{}", report.text());
    assert!(report.passed, "{}", report.text());
    assert!(report.text().contains("reconnects   6 (close-1001 6)"), "{}", report.text());
}
