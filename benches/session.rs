//! Session-level costs without the network:
//! - one full action round trip inside a session: frame text in → parse → session actor (apply, Lua,
//!   detection, assembly, user-event flush) → frame text out of the connection's sink;
//! - session creation: Lua state + `main.lua` + variable 1 (and the settling pass), no HTTP.
//!
//! `cargo bench --bench session`

mod common;

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{example_config, session_config};
use criterion::{criterion_group, criterion_main, Criterion};
use tokio::sync::mpsc;
use ui_gateway::ids::{ConnId, SessionId, VendedId};
use ui_gateway::loadtest::scenario::{Scenario, WATCH_APP};
use ui_gateway::lua::{LuaBackend, LuaConfig};
use ui_gateway::protocol::{parse_client_frame, FrameLimits};
use ui_gateway::session::{Activity, Clock, ConnSink, Outbound, Session, SessionConfig, SessionHandle};
use ui_gateway::site::Site;

struct Client {
    session: SessionHandle,
    rx: mpsc::UnboundedReceiver<Outbound>,
    unsent: Arc<AtomicUsize>,
    conn: ConnId,
    limits: FrameLimits,
}

impl Client {
    /// One frame in, the next frame out (its text length).
    async fn round_trip(&mut self, text: &str) -> usize {
        let frame = parse_client_frame(text.as_bytes(), &self.limits);
        self.session.frame(self.conn, frame).await.expect("session alive");
        match self.rx.recv().await {
            Some(Outbound::Frame(out)) => {
                self.unsent.fetch_sub(out.len(), Ordering::AcqRel);
                out.len()
            }
            other => panic!("expected a frame, got {other:?}"),
        }
    }
}

/// A spawned session with one connection that has run the scenario's bootstrap.
async fn connected(config: Arc<SessionConfig>, scenario: &Scenario) -> Client {
    let activity = Arc::new(Activity::new(Clock::new()));
    let (session, _stop) = Session::new(SessionId::generate(), VendedId(1), config, activity).spawn();
    std::mem::forget(_stop);
    let (tx, rx) = mpsc::unbounded_channel();
    let unsent = Arc::new(AtomicUsize::new(0));
    let conn = ConnId(1);
    assert!(session.connect(conn, ConnSink::new(tx, unsent.clone(), 16 << 20)).await.unwrap());
    let mut client = Client { session, rx, unsent, conn, limits: FrameLimits::default() };
    client.round_trip(WATCH_APP).await;
    client.round_trip(&scenario.setup_frame()).await;
    client
}

fn scenario(name: &str) -> Scenario {
    Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/scenarios").join(name)).unwrap()
}

fn bench_round_trip(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("session/action_round_trip");
    let cases = [
        ("demo", session_config(Site::builtin()), scenario("demo.json")),
        ("adder", example_config("adder"), scenario("adder.json")),
        ("tasks", example_config("tasks"), scenario("tasks.json")),
    ];
    for (name, config, scenario) in cases {
        let mut client = rt.block_on(connected(config, &scenario));
        let frames = scenario.action_frames();
        let mut k = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                let frame = &frames[k % frames.len()];
                k += 1;
                black_box(rt.block_on(client.round_trip(frame)))
            })
        });
    }
    group.finish();
}

fn bench_creation(c: &mut Criterion) {
    let mut group = c.benchmark_group("session/create");
    let clock = Clock::new();
    for (name, config) in [
        ("demo", session_config(Site::builtin())),
        ("adder", example_config("adder")),
        ("tasks", example_config("tasks")),
    ] {
        let probe = Session::new(SessionId::generate(), VendedId(1), config.clone(), Arc::new(Activity::new(clock)));
        assert!(probe.lua().is_some_and(|l| l.tracker().exists(ui_gateway::ids::VarId::APP)), "{name}: variable 1");
        let mut n = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                n += 1;
                black_box(Session::new(
                    SessionId::generate(),
                    VendedId(n),
                    config.clone(),
                    Arc::new(Activity::new(clock)),
                ))
            })
        });
    }
    // The bare Lua state (sandbox, session API, prelude), without main.lua.
    group.bench_function("lua_state_only", |b| {
        b.iter(|| black_box(LuaBackend::new(VendedId(1), &LuaConfig::default(), Default::default()).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench_round_trip, bench_creation);
criterion_main!(benches);
