//! 10,000-session churn (issue 7): in one process, sessions are created over HTTP, some get a browser
//! WebSocket that bootstraps (watch 1, a child variable, an action), and all are destroyed again, in
//! rounds. The process's RSS is read before (after a warm-up round) and after; only a generous bound
//! is asserted, so the test cannot be flaky yet catches a leak of everything (about 100 KiB per
//! session would exceed it).
//!
//! Ignored in a plain `cargo test` (it takes a while in a debug build); CI runs it with
//! `cargo test --test churn -- --include-ignored`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use ui_gateway::gateway::RunningGateway;
use ui_gateway::session::EndReason;

const SESSIONS: usize = 10_000;
const ROUND: usize = 500;
/// One session in this many gets a WebSocket.
const CONNECT_EVERY: usize = 5;
const BOUND_KIB: u64 = 64 * 1024;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One round: `n` sessions created over HTTP (a few at a time), every `CONNECT_EVERY`-th bootstrapped
/// over a WebSocket and closed again, then all destroyed; returns when they are all gone.
async fn round(gw: &Arc<RunningGateway>, n: usize) {
    let limit = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let gw = gw.clone();
        let permit = limit.clone().acquire_owned().await.unwrap();
        tasks.spawn(async move {
            let _permit = permit;
            let id = new_session(&gw).await;
            if i % CONNECT_EVERY == 0 {
                let mut ws = connect(&gw, &id, None).await.unwrap();
                let mut m = demo_counter(&mut ws).await;
                ws.send(set(3, serde_json::Value::Null, true)).await;
                ws.until(&mut m, |m| m.value(2) == json!(1)).await;
                ws.stream.close(None).await.unwrap();
            }
            id
        });
    }
    let ids: Vec<String> = tasks.join_all().await;
    for id in &ids {
        assert!(gw.gateway.sessions.destroy_session(&id.parse().unwrap(), EndReason::Destroyed));
    }
    // Destroyed sessions' tasks and sockets wind down asynchronously.
    let deadline = Instant::now() + Duration::from_secs(60);
    while gw.gateway.live_sockets.count() > 0 || gw.gateway.sessions.count() > 0 {
        assert!(Instant::now() < deadline, "sessions or sockets left after the round");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10,000 sessions: run with --include-ignored (CI does)"]
async fn ten_thousand_sessions_churn_without_leaking() {
    // All sessions come from 127.0.0.1, faster than any per-client rate meant for the public.
    let mut a = args();
    a.max_sessions_per_client = 0;
    a.session_rate = None;
    let gw = Arc::new(start(a).await);
    let started = Instant::now();
    round(&gw, ROUND).await;
    // Let the allocator and the runtime settle after the warm-up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    for _ in 0..SESSIONS / ROUND {
        round(&gw, ROUND).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_kib();
    let created = gw.gateway.sessions.vended_ids();
    assert!(created.is_empty());
    println!(
        "churn: RSS before {before} KiB after {after} KiB ({} sessions after a warm-up of {ROUND}, one in \
         {CONNECT_EVERY} with a WebSocket; {:?})",
        SESSIONS,
        started.elapsed()
    );
    assert!(after <= before + BOUND_KIB, "RSS grew from {before} KiB to {after} KiB over {SESSIONS} sessions");
}
