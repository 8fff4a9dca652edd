//! Session creations per second over HTTP: `GET /` (which builds the session: Lua state, `main.lua`,
//! variable 1) answered with the redirect, from 4 keep-alive client connections, for a few seconds.
//! The gateway runs in this process on its own multi-thread runtime; the clients on another.
//!
//! `cargo bench --bench http_create` (env `CREATE_SITE` = an example name, default `tasks`;
//! `CREATE_CONNECTIONS`, default 4; `CREATE_SECONDS`, default 5).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ui_gateway::config::ServeArgs;
use ui_gateway::gateway::RunningGateway;
use ui_gateway::loadtest::http::{HttpPool, Target};

fn main() {
    let site = std::env::var("CREATE_SITE").unwrap_or_else(|_| "tasks".into());
    let connections: usize = std::env::var("CREATE_CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let seconds: u64 = std::env::var("CREATE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let server = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let client = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let args = ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        site: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples").join(&site)),
        max_sessions: 0,
        // Every creation comes from 127.0.0.1, far faster than a per-client rate meant for the public.
        max_sessions_per_client: 0,
        session_rate: None,
        log_level: "warn".into(),
        ..Default::default()
    };
    let gw = server.block_on(RunningGateway::start(&args)).expect("gateway starts");
    let addr = gw.addr;
    let created = client.block_on(async move {
        let target = Target::resolve(&format!("http://{addr}")).await.unwrap();
        let pool = Arc::new(HttpPool::new(target));
        let done = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..connections)
            .map(|_| {
                let (pool, done, count) = (pool.clone(), done.clone(), count.clone());
                tokio::spawn(async move {
                    while !done.load(Ordering::Relaxed) {
                        let answer = pool.get("/").await.expect("GET /");
                        assert_eq!(answer.status.as_u16(), 302);
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        done.store(true, Ordering::Relaxed);
        let n = count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
        for t in tasks {
            t.await.unwrap();
        }
        n
    });
    println!(
        "session creations over HTTP ({site}, {connections} keep-alive connections, {seconds} s): {created:.0}/s \
         ({} sessions live; target ≥ 4,000/s for tasks)",
        gw.gateway.sessions.count()
    );
    server.shutdown_background();
}
