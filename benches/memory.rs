//! Memory figures (BENCHMARKS.md, and the issue's per-session targets), printed, not timed.
//!
//! A counting global allocator tracks live heap bytes. Lua allocates through mlua's allocator, which uses
//! the global one, so the count covers the Lua heap as well; `used_memory()` gives the Lua part.
//!
//! - **P6**: an Adder-sized app (1 prototype, 2 number fields, 1 method), variable 1 and 5 browser
//!   variables: Lua state + tracker heap after a full collection. Target < 64 KiB.
//! - A Contacts session as `GET /` leaves it, averaged over 100 sessions (no collection forced: what
//!   the session really holds).
//! - An idle Tasks session after its first render (the `tasks.json` loadtest scenario's bindings), the
//!   same way, averaged over 100 sessions.
//! - An idle browser WebSocket: a real gateway in this process; only allocations made on the gateway's
//!   runtime threads are counted. Sessions are created over HTTP first, then N sockets are opened and
//!   bootstrapped with `watch 1`; the growth ÷ N is the per-socket cost.
//!
//! Full collection: the sandbox keeps `collectgarbage("collect")` from scripts and `LuaBackend` does not
//! expose `Lua::gc_collect`, so the bench asks for more memory than the state's limit: Lua runs a full
//! (emergency) collection before it gives up with `lua-memory`, and the state lives on.
//!
//! `cargo bench --bench memory`

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

use common::create;
use futures::{SinkExt, StreamExt};
use ui_gateway::ids::{VarId, VendedId};
use ui_gateway::loadtest::scenario::{Scenario, WATCH_APP};
use ui_gateway::lua::{LuaBackend, LuaConfig};
use ui_gateway::site::Site;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Whether allocations on a thread count: all threads unless a thread opts out.
static ONLY_MARKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

thread_local! {
    static MARKED: Cell<bool> = const { Cell::new(false) };
}

fn counts() -> bool {
    !ONLY_MARKED.load(Ordering::Relaxed) || MARKED.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counts() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counts() {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counts() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counts() {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

/// Forces a full collection (see the module comment).
fn full_gc(lua: &LuaBackend) {
    let e = lua.eval::<()>("local s = string.rep('x', 1024 * 1024 * 1024)").unwrap_err();
    assert_eq!(e.code, ui_gateway::protocol::ErrorCode::LuaMemory, "{e:?}");
}

const ADDER_SIZED: &str = r#"
Adder = session:prototype("Adder", {a = 0, b = 0})
function Adder:sum() return self.a + self.b end
session:createAppVariable(Adder:new())
"#;

fn p6() {
    let config = LuaConfig::default();
    // Warm up process-wide lazies (thread locals, mlua statics) outside the measurement.
    drop(LuaBackend::new(VendedId(0), &config, Default::default()).unwrap());
    let before = live();
    let mut lua = LuaBackend::new(VendedId(1), &config, Default::default()).unwrap();
    full_gc(&lua);
    let (state, state_lua) = ((live() - before) as f64, lua.used_memory() as f64);
    lua.load_main(ADDER_SIZED).unwrap();
    lua.tracker_mut().set_active(VarId::APP, true);
    for (id, path, access) in
        [(2, "a", None), (3, "b", None), (4, "sum()", Some("r")), (5, "a", Some("r")), (6, "b", Some("r"))]
    {
        create(&mut lua, id, 1, path, access);
    }
    lua.begin_phase();
    lua.tracker_mut().detect_changes();
    full_gc(&lua);
    let total = (live() - before) as f64;
    let lua_heap = lua.used_memory() as f64;
    println!(
        "P6 Adder-sized app, var 1 + 5 browser variables: Lua state + tracker {} (Lua heap {}, Rust side {}); target < 64 KiB: {}",
        kib(total),
        kib(lua_heap),
        kib(total - lua_heap),
        if total < 65536.0 { "met" } else { "NOT met" }
    );
    println!(
        "   of which the bare state (sandbox, session API, prelude; no main.lua): {} (Lua heap {}, Rust side {})",
        kib(state),
        kib(state_lua),
        kib(state - state_lua)
    );
    drop(lua);
}

fn tasks_session() {
    let site = Site::load(&common::example("tasks")).unwrap();
    let config = LuaConfig::default();
    let sources = site.lua_sources.clone();
    let main = site.main_lua.clone().unwrap();
    let scenario =
        Scenario::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/scenarios/tasks.json")).unwrap();
    drop(LuaBackend::new(VendedId(0), &config, sources.clone()).unwrap());
    const N: usize = 100;
    let before = live();
    let mut sessions = Vec::with_capacity(N);
    let mut lua_total = 0usize;
    for n in 0..N {
        let mut lua = LuaBackend::new(VendedId(n as u64 + 1), &config, sources.clone()).unwrap();
        lua.load_main_file(&main).unwrap();
        lua.tracker_mut().set_active(VarId::APP, true);
        for (i, b) in scenario.bindings.iter().enumerate() {
            let parent = b.parent.map_or(1, Scenario::client_id);
            create(&mut lua, Scenario::client_id(i), parent, &b.path, b.access.as_deref());
        }
        lua.begin_phase();
        lua.tracker_mut().detect_changes();
        full_gc(&lua);
        lua_total += lua.used_memory();
        sessions.push(lua);
    }
    let per = (live() - before) as f64 / N as f64;
    let lua_per = lua_total as f64 / N as f64;
    println!(
        "Idle Tasks session after first render ({} bindings), Lua state + tracker: {} per session (Lua heap {}, Rust side {}), mean of {N}",
        scenario.bindings.len(),
        kib(per),
        kib(lua_per),
        kib(per - lua_per)
    );
}

/// A Contacts session as `GET /` leaves it (Lua state, `main.lua`, variable 1, the settling pass; no
/// browser yet), the way `Session::new` builds it, averaged over 100 sessions (issue 19).
fn contacts_session() {
    let site = Site::load(&common::example("contacts")).unwrap();
    let config = LuaConfig::default();
    let main = site.main_lua.clone().unwrap();
    drop(LuaBackend::new(VendedId(0), &config, site.lua_sources.clone()).unwrap());
    const N: usize = 100;
    let before = live();
    let mut sessions = Vec::with_capacity(N);
    let mut lua_total = 0usize;
    for n in 0..N {
        let mut lua = LuaBackend::new(VendedId(n as u64 + 1), &config, site.lua_sources.clone()).unwrap();
        lua.load_main_file(&main).unwrap();
        lua.run_pending_lua();
        lua.begin_phase();
        lua.tracker_mut().detect_changes();
        lua_total += lua.used_memory();
        sessions.push(lua);
    }
    let per = (live() - before) as f64 / N as f64;
    let lua_per = lua_total as f64 / N as f64;
    println!(
        "Contacts session after GET / (no collection forced), Lua state + tracker: {} per session (Lua heap {}, Rust side {}), mean of {N}",
        kib(per),
        kib(lua_per),
        kib(per - lua_per)
    );
}

fn idle_sockets() {
    const N: usize = 500;
    ONLY_MARKED.store(true, Ordering::Relaxed);
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .on_thread_start(|| MARKED.with(|m| m.set(true)))
        .enable_all()
        .build()
        .unwrap();
    let client = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Every session comes from 127.0.0.1: no per-client cap or rate here.
    let args = ui_gateway::config::ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        max_sessions_per_client: 0,
        session_rate: None,
        ..Default::default()
    };
    let gw = server.block_on(async { ui_gateway::gateway::RunningGateway::start(&args).await.unwrap() });
    let addr = gw.addr;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let ids: Vec<String> = client.block_on(async {
        let mut ids = Vec::new();
        for _ in 0..N {
            let r = http.get(format!("http://{addr}/")).send().await.unwrap();
            ids.push(r.headers()["location"].to_str().unwrap().trim_start_matches('/').to_string());
        }
        ids
    });
    let settle = || std::thread::sleep(std::time::Duration::from_millis(300));
    settle();
    let sessions_only = live();
    let sockets = client.block_on(async {
        let mut sockets = Vec::new();
        for id in &ids {
            let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/{id}")).await.unwrap();
            sockets.push(ws);
        }
        sockets
    });
    settle();
    let opened = live();
    let sockets = client.block_on(async move {
        let mut sockets = sockets;
        for ws in sockets.iter_mut() {
            ws.send(tokio_tungstenite::tungstenite::Message::text(WATCH_APP)).await.unwrap();
            ws.next().await.unwrap().unwrap();
        }
        sockets
    });
    settle();
    let watched = live();
    println!(
        "Idle browser WebSocket (server heap, mean of {N}): {} per open socket, {} after `watch 1` (built-in demo); target ≤ 16 KB",
        kib((opened - sessions_only) as f64 / N as f64),
        kib((watched - sessions_only) as f64 / N as f64)
    );
    drop(sockets);
    ONLY_MARKED.store(false, Ordering::Relaxed);
    drop(gw);
    server.shutdown_background();
}

fn main() {
    // `cargo test --benches` runs this with `--test`-like flags too; the figures are cheap either way.
    p6();
    tasks_session();
    contacts_session();
    idle_sockets();
}
