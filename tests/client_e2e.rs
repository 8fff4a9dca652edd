//! End to end: the real gateway in connected (or hybrid) mode, the example backends run in-process
//! through the client library (or the Python example as a subprocess), and scripted browser tabs.
//! Nothing here waits on wall-clock time: every step waits for a state, bounded by `STEP`.

#[allow(dead_code)]
#[path = "../examples/counter_backend/main.rs"]
mod counter;
#[allow(dead_code)]
#[path = "../examples/dashboard_backend/main.rs"]
mod dashboard;
#[allow(dead_code)]
#[path = "../examples/todo_backend/main.rs"]
mod todo;

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::{json, Value};
use ui_gateway::config::{Mode, ServeArgs};
use ui_gateway::gateway::RunningGateway;
use ui_gateway_client::{Client, ClientConfig, ClientError, RunningClient};

const TOKEN: &str = "e2e-backend-token-0123456789";

fn example_site(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

fn gateway_args(mode: Mode, site: PathBuf) -> ServeArgs {
    let mut a = args();
    a.mode = mode;
    a.site = Some(site);
    a.backend_token = Some(TOKEN.to_string());
    a
}

fn client(gw: &RunningGateway) -> Client {
    Client::new(ClientConfig::new(format!("ws://{}/backend", gw.addr)).with_token(TOKEN))
}

/// Opens a session and a tab, watches variable 1 and waits for its type.
async fn open_tab(gw: &RunningGateway, id: Option<&str>, ty: &str) -> (String, Ws, Mirror) {
    let id = match id {
        Some(id) => id.to_string(),
        None => new_session(gw).await,
    };
    let mut tab = connect(gw, &id, None).await.unwrap();
    let mut m = Mirror::default();
    tab.send(watch(1)).await;
    tab.until(&mut m, |m| m.prop(1, "type") == Some(ty)).await;
    (id, tab, m)
}

#[tokio::test]
async fn counter_backend_end_to_end_with_two_tabs_and_a_backend_restart() {
    let gw = start(gateway_args(Mode::Connected, example_site("counter_backend/site"))).await;
    let backend: RunningClient = client(&gw).connected(counter::app).start().unwrap();
    let (id, mut b, mut mb) = open_tab(&gw, None, "Counter").await;
    assert!(mb.viewdefs.contains("Counter.DEFAULT"));
    b.send(creates(&[
        (2, 1, json!({"path":"count","access":"r"})),
        (3, 1, json!({"path":"increment()","access":"action"})),
    ]))
    .await;
    b.until(&mut mb, |m| m.value(2) == json!(0)).await;
    b.send(set(3, Value::Null, true)).await;
    b.until(&mut mb, |m| m.value(2) == json!(1)).await;

    // A second tab of the same session shares the counter.
    let (_, mut c, mut mc) = open_tab(&gw, Some(&id), "Counter").await;
    c.send(creates(&[
        (2, 1, json!({"path":"count","access":"r"})),
        (3, 1, json!({"path":"increment()","access":"action"})),
    ]))
    .await;
    c.until(&mut mc, |m| m.value(2) == json!(1)).await;
    c.send(set(3, Value::Null, true)).await;
    c.until(&mut mc, |m| m.value(2) == json!(2)).await;
    b.until(&mut mb, |m| m.value(2) == json!(2)).await;

    // The backend stops: the tabs are told; a click while it is away is buffered; a new backend
    // process (fresh state) rebuilds the UI from the replay and applies the buffered click.
    backend.shutdown().await.unwrap();
    b.until(&mut mb, |m| m.errors.get(&1).map(String::as_str) == Some("backend-unavailable")).await;
    b.send(set(3, Value::Null, true)).await;
    let backend = client(&gw).connected(counter::app).start().unwrap();
    b.until(&mut mb, |m| m.value(2) == json!(1) && !m.errors.contains_key(&1)).await;
    c.until(&mut mc, |m| m.value(2) == json!(1)).await;
    backend.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_wrong_token_is_reported_not_retried() {
    let gw = start(gateway_args(Mode::Connected, example_site("counter_backend/site"))).await;
    let config = ClientConfig::new(format!("ws://{}/backend", gw.addr)).with_token("wrong-backend-token-0123456789");
    let result = Client::new(config).connected(counter::app).run().await;
    assert!(matches!(result, Err(ClientError::Refused { status: 401 })), "{result:?}");
}

#[tokio::test]
async fn todo_backend_end_to_end() {
    let gw = start(gateway_args(Mode::Connected, example_site("todo_backend/site"))).await;
    let backend = client(&gw).connected(todo::app).start().unwrap();
    let (_, mut b, mut m) = open_tab(&gw, None, "TodoApp").await;
    b.send(creates(&[
        (2, 1, json!({"path":"newText","access":"rw"})),
        (3, 1, json!({"path":"items","access":"r"})),
        (4, 1, json!({"path":"remaining()","access":"r"})),
        (5, 1, json!({"path":"add()","access":"action"})),
        (6, 3, json!({"path":"0","access":"r"})),
        (7, 6, json!({"path":"text","access":"r"})),
        (8, 6, json!({"path":"done","access":"rw"})),
    ]))
    .await;
    b.until(&mut m, |m| {
        m.value(4) == json!(1) && m.value(7) == json!("milk") && m.value(3).as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    b.until(&mut m, |m| m.prop(6, "type") == Some("TodoItem")).await;
    // The gateway delivers a type's viewdefs with the type.
    assert!(m.viewdefs.contains("TodoItem.DEFAULT"));
    let milk = m.value(3)[0].clone();
    // Type a text and add it: the list grows, the text clears, old items keep their ids.
    b.send(set(2, json!("bread"), false)).await;
    b.send(set(5, Value::Null, true)).await;
    b.until(&mut m, |m| m.value(3).as_array().is_some_and(|a| a.len() == 3) && m.value(2) == json!("")).await;
    b.until(&mut m, |m| m.value(4) == json!(2)).await;
    assert_eq!(m.value(3)[0], milk);
    // Tick milk off through the item's own variable.
    b.send(set(8, json!(true), true)).await;
    b.until(&mut m, |m| m.value(4) == json!(1)).await;
    backend.shutdown().await.unwrap();
}

#[tokio::test]
async fn dashboard_hybrid_end_to_end() {
    let gw = start(gateway_args(Mode::Hybrid, example_site("dashboard_backend/site"))).await;
    let backend = client(&gw).hybrid(dashboard::app).start().unwrap();
    let (_, mut b, mut m) = open_tab(&gw, None, "Dashboard").await;
    b.send(creates(&[
        (2, 1, json!({"path":"processes","access":"r"})),
        (3, 1, json!({"path":"paused","access":"r"})),
        (4, 1, json!({"path":"toggle()","access":"action"})),
        (5, 1, json!({"path":"samples","access":"r"})),
    ]))
    .await;
    // The backend's client variables write live data into the Lua-owned dashboard.
    b.until(&mut m, |m| m.value(2).as_i64().is_some_and(|n| n > 0)).await;
    // Lua-owned state flows back: pausing is seen by the backend, which stops sampling.
    b.send(set(4, Value::Null, true)).await;
    b.until(&mut m, |m| m.value(3) == json!(true)).await;
    backend.shutdown().await.unwrap();
}

/// Whether `python3` with the `websockets` package is available (CI installs it).
fn python_ready() -> bool {
    std::process::Command::new("python3").args(["-c", "import websockets"]).output().is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn python_backend_drives_the_tasks_app() {
    if !python_ready() {
        eprintln!("SKIPPED python_backend_drives_the_tasks_app: `python3 -c 'import websockets'` fails (pip install websockets)");
        return;
    }
    let gw = start(gateway_args(Mode::Connected, example_site("tasks"))).await;
    // The Tasks driver on the Python client library (clients/python), used from the source tree.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut child = tokio::process::Command::new("python3")
        .arg(root.join("examples/python/tasks.py"))
        .env("PYTHONPATH", root.join("clients/python/src"))
        .env("UI_BACKEND_URL", format!("ws://{}/backend", gw.addr))
        .env("UI_BACKEND_TOKEN", TOKEN)
        .kill_on_drop(true)
        .spawn()
        .expect("python3 starts");
    let (_, mut b, mut m) = open_tab(&gw, None, "TasksApp").await;
    assert!(m.viewdefs.contains("TasksApp.DEFAULT"));
    b.send(creates(&[
        (2, 1, json!({"path":"newName","access":"rw"})),
        (3, 1, json!({"path":"remaining()","access":"r"})),
        (4, 1, json!({"path":"addTask()","access":"action"})),
        (5, 1, json!({"path":"filteredTasks()","access":"r","wrapper":"lua.ViewList","scrollOnOutput":"true"})),
        (6, 1, json!({"path":"filter","access":"rw"})),
    ]))
    .await;
    b.until(&mut m, |m| m.value(3) == json!(2) && m.prop(5, "type") == Some("lua.ViewList")).await;
    assert_eq!(m.prop(5, "fallbackNamespace"), Some("list-item"));
    // The list's items, as the built-in lua.ViewList viewdef binds them.
    b.send(creates(&[(7, 5, json!({"path":"items","access":"r","fallbackNamespace":"list-item"}))])).await;
    b.until(&mut m, |m| m.value(7).as_array().is_some_and(|a| a.len() == 3)).await;
    b.send(creates(&[
        (8, 7, json!({"path":"0","access":"r","fallbackNamespace":"list-item"})),
        (9, 8, json!({"path":"item","access":"r","fallbackNamespace":"list-item"})),
        (10, 9, json!({"path":"name","access":"r"})),
        (11, 9, json!({"path":"completed","access":"rw"})),
    ]))
    .await;
    b.until(&mut m, |m| {
        m.prop(8, "type") == Some("lua.ViewListItem")
            && m.prop(9, "type") == Some("Task")
            && m.value(10) == json!("Buy milk")
    })
    .await;
    // Add a task, complete one, filter.
    b.send(set(2, json!("Read book"), false)).await;
    b.send(set(4, Value::Null, true)).await;
    b.until(&mut m, |m| m.value(7).as_array().is_some_and(|a| a.len() == 4) && m.value(3) == json!(3)).await;
    b.until(&mut m, |m| m.value(2) == json!("")).await;
    b.send(set(11, json!(true), true)).await;
    b.until(&mut m, |m| m.value(3) == json!(2)).await;
    b.send(set(6, json!("done"), true)).await;
    b.until(&mut m, |m| m.value(7).as_array().is_some_and(|a| a.len() == 2)).await;
    child.kill().await.ok();
}

// ---------------------------------------------------------------------------------------------
// worker pools: real worker processes (the `counter` example), the real load generator
// ---------------------------------------------------------------------------------------------

/// The `counter` example binary, built once for these tests (the workers must be real processes to
/// be killed and signalled).
fn counter_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "--quiet", "-p", "ui-gateway-client", "--example", "counter"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "the counter example builds");
            // target/debug/deps/client_e2e-… → target/debug/examples/counter
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().join("examples").join("counter")
        })
        .clone()
}

/// Starts a counter worker process against `gw`; `env` adds worker settings.
fn spawn_worker(gw: &RunningGateway, env: &[(&str, &str)]) -> tokio::process::Child {
    let mut cmd = tokio::process::Command::new(counter_binary());
    cmd.env("UI_BACKEND_URL", format!("ws://{}/backend", gw.addr))
        .env("UI_BACKEND_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("the counter worker starts")
}

/// Waits until the gateway's pool has `n` workers.
async fn workers(gw: &RunningGateway, n: usize) {
    let hub = gw.gateway.backend.clone().expect("a backend link");
    tokio::time::timeout(STEP * 4, async {
        while hub.worker_count() != n {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the pool did not reach {n} workers (has {})", hub.worker_count()));
}

/// The load generator as a process: `sessions` counter sessions clicking `actions` times each;
/// succeeds only with no failed action.
fn loadtest(gw: &RunningGateway, sessions: usize, actions: usize) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ui-gateway"))
        .args(["loadtest", "--target", &format!("http://{}", gw.addr)])
        .args(["--sessions", &sessions.to_string(), "--concurrency", "10"])
        .args(["--actions", &actions.to_string(), "--interval", "40ms", "--max-error-rate", "0"])
        .kill_on_drop(true)
        .spawn()
        .expect("the load generator starts")
}

fn handovers(gw: &RunningGateway) -> f64 {
    let text = ui_gateway::metrics::metrics().render(gw.gateway.sessions.count());
    text.lines()
        .filter(|l| l.starts_with("ui_backend_handovers_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Two worker processes share the sessions; one is SIGKILLed while 40 sessions click: its sessions
/// move to the other through the replay and the load generator sees no failed action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_hands_its_sessions_to_the_other() {
    let gw = start(gateway_args(Mode::Connected, example_site("counter_backend/site"))).await;
    let hub = gw.gateway.backend.clone().unwrap();
    let mut a = spawn_worker(&gw, &[]);
    workers(&gw, 1).await;
    let mut b = spawn_worker(&gw, &[]);
    workers(&gw, 2).await;
    let before = handovers(&gw);
    let mut load = loadtest(&gw, 40, 40);
    // Both workers hold sessions before one dies.
    tokio::time::timeout(STEP * 4, async {
        while hub.load().iter().filter(|(_, n, _)| *n > 0).count() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("sessions spread over both workers");
    a.start_kill().unwrap();
    let _ = a.wait().await;
    let status = tokio::time::timeout(STEP * 12, load.wait()).await.expect("the load finishes").unwrap();
    assert!(status.success(), "the load generator saw failed actions: {status}");
    assert!(handovers(&gw) > before, "sessions were handed over");
    assert_eq!(hub.worker_count(), 1);
    b.start_kill().unwrap();
}

/// A worker told SIGTERM drains: it gets no new sessions, and it exits by itself once its drain time
/// is over; its sessions then move to the other worker and keep counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_worker_takes_no_new_sessions_and_exits_after_its_sessions_moved() {
    let gw = start(gateway_args(Mode::Connected, example_site("counter_backend/site"))).await;
    let hub = gw.gateway.backend.clone().unwrap();
    let mut old = spawn_worker(&gw, &[("UI_BACKEND_WORKER", "v1"), ("UI_BACKEND_DRAIN_TIMEOUT", "3")]);
    workers(&gw, 1).await;
    // A session on the old worker, clicked once.
    let counter_vars = creates(&[
        (2, 1, json!({"path":"count","access":"r"})),
        (3, 1, json!({"path":"increment()","access":"action"})),
    ]);
    let (_, mut tab, mut m) = open_tab(&gw, None, "Counter").await;
    tab.send(counter_vars.clone()).await;
    tab.send(set(3, Value::Null, true)).await;
    tab.until(&mut m, |m| m.value(2) == json!(1)).await;

    let mut new = spawn_worker(&gw, &[("UI_BACKEND_WORKER", "v2")]);
    workers(&gw, 2).await;
    nix_kill(&old, "TERM");
    tokio::time::timeout(STEP, async {
        while !hub.load().iter().any(|(name, _, draining)| name == "v1" && *draining) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the old worker announced its drain");
    // New sessions go to the new worker only.
    for _ in 0..3 {
        let (_, mut t, mut tm) = open_tab(&gw, None, "Counter").await;
        t.send(counter_vars.clone()).await;
        t.until(&mut tm, |m| m.value(2) == json!(0)).await;
    }
    let load: std::collections::HashMap<String, usize> = hub.load().into_iter().map(|(n, s, _)| (n, s)).collect();
    assert_eq!((load["v1"], load["v2"]), (1, 3), "{load:?}");
    // The old worker leaves when its drain time is over; the session moves and keeps working (its
    // state is rebuilt by the new worker, as after any backend restart).
    let status = tokio::time::timeout(STEP * 4, old.wait()).await.expect("the drained worker exits").unwrap();
    assert!(status.success(), "{status}");
    workers(&gw, 1).await;
    tab.until(&mut m, |m| m.value(2) == json!(0)).await;
    assert!(!m.errors.contains_key(&1), "no backend-unavailable during the move: {:?}", m.errors);
    tab.send(set(3, Value::Null, true)).await;
    tab.until(&mut m, |m| m.value(2) == json!(1)).await;
    new.start_kill().unwrap();
}

/// Sends a signal by name to a child process (`kill -s NAME PID`).
fn nix_kill(child: &tokio::process::Child, signal: &str) {
    let pid = child.id().expect("the child runs").to_string();
    let status = std::process::Command::new("kill").args(["-s", signal, &pid]).status().expect("kill runs");
    assert!(status.success());
}

/// One client serving two gateways (a cluster): one link to each, sessions kept apart per link even
/// though both gateways vend the same ids.
#[tokio::test]
async fn one_client_serves_two_gateways() {
    let one = start(gateway_args(Mode::Connected, example_site("counter_backend/site"))).await;
    let two = start(gateway_args(Mode::Connected, example_site("counter_backend/site"))).await;
    let config = ClientConfig::new(format!("ws://{}/backend", one.addr))
        .with_gateway(format!("ws://{}/backend", two.addr))
        .with_token(TOKEN);
    let backend = Client::new(config).connected(counter::app).start().unwrap();
    let counter_vars = creates(&[
        (2, 1, json!({"path":"count","access":"r"})),
        (3, 1, json!({"path":"increment()","access":"action"})),
    ]);
    let (id1, mut a, mut ma) = open_tab(&one, None, "Counter").await;
    let (id2, mut b, mut mb) = open_tab(&two, None, "Counter").await;
    assert_eq!(id1.len(), id2.len());
    a.send(counter_vars.clone()).await;
    b.send(counter_vars).await;
    a.send(set(3, Value::Null, true)).await;
    a.until(&mut ma, |m| m.value(2) == json!(1)).await;
    a.send(set(3, Value::Null, true)).await;
    a.until(&mut ma, |m| m.value(2) == json!(2)).await;
    // Session "1" of the second gateway is another session: its count is its own.
    b.until(&mut mb, |m| m.value(2) == json!(0)).await;
    b.send(set(3, Value::Null, true)).await;
    b.until(&mut mb, |m| m.value(2) == json!(1)).await;
    assert_eq!(one.gateway.backend.as_ref().unwrap().worker_count(), 1);
    assert_eq!(two.gateway.backend.as_ref().unwrap().worker_count(), 1);
    backend.shutdown().await.unwrap();
}

/// A worker that stops reading is closed with 1013 once its send queue is full, and its sessions move
/// to the other worker, which rebuilds them from the replay; the browser never hears of an outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_stops_reading_is_closed_and_its_sessions_move() {
    let mut a = gateway_args(Mode::Connected, example_site("counter_backend/site"));
    a.backend_queue_bytes = 256 << 10;
    let gw = start(a).await;
    let bearer = format!("Bearer {TOKEN}");
    // The stalled worker connects first, so it is the older one and gets the first session.
    let mut stalled = connect_backend(&gw, &[("authorization", bearer.as_str())]).await.unwrap();
    assert!(stalled.recv_json().await.get("welcome").is_some());
    let backend = client(&gw).connected(counter::app).start().unwrap();
    workers(&gw, 2).await;

    let id = new_session(&gw).await;
    let mut tab = connect(&gw, &id, None).await.unwrap();
    let mut m = Mirror::default();
    tab.send(watch(1)).await;
    let open = stalled.recv_json().await;
    let vended = open["session"].as_str().unwrap().to_string();
    stalled
        .send(json!({"session": vended, "messages": [
            {"type":"create","data":{"id":1,"value":{"obj":1},"properties":{"type":"Counter"}}}]}))
        .await;
    tab.until(&mut m, |m| m.prop(1, "type") == Some("Counter")).await;
    tab.send(creates(&[
        (2, 1, json!({"path":"count","access":"r"})),
        (3, 1, json!({"path":"increment()","access":"action"})),
    ]))
    .await;
    // The stalled worker reads nothing from now on; the browser keeps writing (each write goes to it).
    for n in 0..300 {
        tab.send(set(1, json!(format!("{n:05}{}", "x".repeat(100_000))), false)).await;
    }
    assert_eq!(stalled.closed().await, 1013);
    workers(&gw, 1).await;
    // The other worker took the session: a click counts from its fresh state.
    tab.send(set(3, Value::Null, true)).await;
    tab.until(&mut m, |m| m.value(2) == json!(1)).await;
    assert!(!m.errors.contains_key(&1), "no backend-unavailable during the move: {:?}", m.errors);
    backend.shutdown().await.unwrap();
}

/// The about page of [`url_paths_from_a_backend`].
struct About {
    title: String,
}
ui_gateway_client::ui_object!(About { fields { title } });

/// URL paths from a connected backend (PROTOCOL.md B9.2), the way the page's router drives them: a
/// deep link opens on the path's presenter, writing `path` (Back/Forward) switches presenter, the
/// backend's `navigate` moves `path`, and an unknown path shows the default view.
#[tokio::test]
async fn url_paths_from_a_backend() {
    use std::sync::{Arc, Mutex};
    use ui_gateway_client::{Obj, Session, SessionHandle};
    type App = Obj<counter::Counter>;
    let gw = start(gateway_args(Mode::Connected, example_site("counter_backend/site"))).await;
    let handles: Arc<Mutex<Vec<SessionHandle<App>>>> = Arc::default();
    let seen = handles.clone();
    let backend = client(&gw)
        .connected(move |s: &mut Session| {
            s.register_url_path("/about", Obj::new(About { title: "About".into() }));
            seen.lock().unwrap().push(s.handle::<App>());
            counter::app(s)
        })
        .start()
        .unwrap();
    let (_, mut b, mut m) = open_tab(&gw, None, "Counter").await;
    assert_eq!(m.prop(1, "urlPaths"), Some("on"));
    // The router's variables for a tab opened at /<id>/about/.
    let page = |url: &str| {
        creates(&[
            (2, 1, json!({"path":"uiUrl..","access":"r","wrapper":"lua.UrlPage","urlPath":url})),
            (3, 2, json!({"path":"presenter","access":"r"})),
            (4, 2, json!({"path":"path","access":"rw"})),
        ])
    };
    b.send(page("/about/")).await;
    b.until(&mut m, |m| m.prop(3, "type") == Some("About") && m.value(4) == json!("/about")).await;
    assert_eq!(m.prop(2, "type"), Some("lua.UrlPage"));
    // Back to the app's address: the root shows.
    b.send(set(4, json!("/"), true)).await;
    b.until(&mut m, |m| m.prop(3, "type") == Some("Counter")).await;
    // The backend navigates: the page's path moves (the router pushes it) and the presenter follows.
    let handle = handles.lock().unwrap()[0].clone();
    handle.run(|_, s| s.navigate("about")).unwrap();
    b.until(&mut m, |m| m.value(4) == json!("/about") && m.prop(3, "type") == Some("About")).await;
    // A second tab deep-linked to an unknown path shows the default view.
    let (_, mut c, mut mc) = open_tab(&gw, None, "Counter").await;
    c.send(page("/no/such/page")).await;
    c.until(&mut mc, |m| m.prop(3, "type") == Some("Counter") && m.value(4) == json!("/no/such/page")).await;
    backend.shutdown().await.unwrap();
}
