//! Graceful shutdown of the real binary (issue 7, docs/deployment.md "Shutdown"): the gateway runs as a child
//! process, gets SIGTERM, and is watched from the outside: browsers, a backend, `/healthz` on a
//! keep-alive connection, the exit status. No assertion on how long shutdown took beyond the 10 s
//! deadline (the test waits up to 30 s for the exit).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Mirror, Ws, STEP};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

struct Gateway {
    child: Child,
    addr: String,
    log: std::path::PathBuf,
}

/// Starts `ui-gateway` on an ephemeral port and reads the URL it prints on stdout (as `.ci/run`'s
/// loadtest smoke does). Its log (stderr) goes to a file.
async fn spawn(extra: &[&str]) -> Gateway {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = std::env::temp_dir().join(format!("uigw-shutdown-{}-{n}.log", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_ui-gateway"))
        .args(["--listen", "127.0.0.1:0", "--log-level", "info"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(STEP, lines.next_line()).await.expect("startup line in time").unwrap();
    let line = line.expect("a startup line on stdout");
    let addr = line.split("http://").nth(1).expect("a URL in the startup line").trim_end_matches('/').to_string();
    // Keep draining stdout so the child never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Gateway { child, addr, log }
}

impl Gateway {
    fn sigterm(&self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the exit (generously: the gateway's own deadline is 10 s) and returns its code.
    async fn exit_code(&mut self) -> i32 {
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the gateway exits after SIGTERM")
            .unwrap();
        status.code().expect("exited, not killed by a signal")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn new_session(&self) -> String {
        let r = common::http().get(format!("http://{}/", self.addr)).send().await.unwrap();
        assert_eq!(r.status(), 302);
        r.headers()["location"].to_str().unwrap().trim_start_matches('/').to_string()
    }

    async fn ws(&self, path: &str) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(format!("ws://{}{path}", self.addr)).await.unwrap();
        Ws { stream }
    }
}

/// SIGTERM with three sessions, their browser tabs and a backend connected (hybrid mode): every tab
/// is closed with 1001; the backend hears `{"session":"N","event":"closed"}` for every live session in
/// ascending order, then 1001; each session is logged destroyed with reason `shutdown`; exit 0.
#[tokio::test]
async fn sigterm_closes_tabs_with_1001_tells_the_backend_and_exits_0() {
    let site = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/adder");
    let mut gw = spawn(&["--mode", "hybrid", "--site", site]).await;
    let mut backend = gw.ws("/backend").await;
    let welcome = backend.recv_json().await;
    assert_eq!(welcome["welcome"]["sessions"], json!([]));
    let mut tabs = Vec::new();
    for _ in 0..3 {
        let id = gw.new_session().await;
        let mut tab = gw.ws(&format!("/ws/{id}")).await;
        tab.send(common::watch(1)).await;
        let mut m = Mirror::default();
        tab.until(&mut m, |m| m.values.contains_key(&1)).await;
        tabs.push(tab);
    }
    gw.sigterm();
    for (i, tab) in tabs.iter_mut().enumerate() {
        assert_eq!(tab.closed().await, 1001, "tab {i}");
    }
    // Batches for the sessions' first frames may come first; then the closed events, then 1001.
    let mut closed = Vec::new();
    let code = loop {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        let msg = tokio::time::timeout(STEP, backend.stream.next()).await.expect("backend frame in time");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v.get("event").is_some() {
                    assert_eq!(v["event"], "closed", "{v}");
                    closed.push(v["session"].as_str().unwrap().to_string());
                }
            }
            Some(Ok(Message::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(_)) => {}
            other => panic!("backend socket ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(closed, ["1", "2", "3"], "closed events for every live session, ascending");
    assert_eq!(code, 1001);
    assert_eq!(gw.exit_code().await, 0, "log:\n{}", gw.log());
    let log = gw.log();
    assert!(log.contains("shutdown started"), "{log}");
    assert_eq!(log.lines().filter(|l| l.contains("session destroyed") && l.contains("shutdown")).count(), 3, "{log}");
    assert!(log.contains("shutdown finished"), "{log}");
}

/// One HTTP/1.1 request on an open keep-alive connection; `None` if the server closed it.
async fn get(tcp: &mut tokio::net::TcpStream, path: &str) -> Option<(u16, String)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .expect("a content-length");
            if buf.len() >= end + 4 + len {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return Some((status, String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string()));
            }
        }
        let n = tokio::time::timeout(STEP, tcp.read(&mut chunk)).await.expect("a response in time").ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// docs/deployment.md "Shutdown": after the signal, `/healthz` on a keep-alive connection that was already
/// open answers 503 `stopping` (the server keeps serving open connections while sockets close; here a
/// tab that does not answer the close frame keeps that phase open for its 2 s grace). Exit 0.
#[tokio::test]
async fn healthz_answers_503_on_open_keep_alive_connections_after_sigterm() {
    let mut gw = spawn(&[]).await;
    let mut tcp = tokio::net::TcpStream::connect(&gw.addr).await.unwrap();
    let (status, body) = get(&mut tcp, "/healthz").await.expect("served");
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["status"], "ok");
    // A tab that is not read, so it does not answer the server's close.
    let id = gw.new_session().await;
    let tab = gw.ws(&format!("/ws/{id}")).await;
    gw.sigterm();
    let mut answers = Vec::new();
    let stopping = loop {
        let (status, body) = get(&mut tcp, "/healthz").await.unwrap_or_else(|| {
            panic!("the keep-alive connection closed before /healthz said 503 (answers so far: {answers:?})")
        });
        if status == 503 {
            break serde_json::from_str::<Value>(&body).unwrap();
        }
        assert_eq!(status, 200);
        answers.push(status);
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(stopping["status"], "stopping", "{stopping}");
    println!("healthz: {} answers of 200 after the signal, then 503 {stopping}", answers.len());
    drop(tab);
    assert_eq!(gw.exit_code().await, 0, "log:\n{}", gw.log());
}

/// The binary's own error texts (issue 17): each says what to fix, and the exit code tells a script
/// whether it was the configuration (2) or the environment (1).
mod cli {
    use std::process::{Command, Output};

    fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ui-gateway"));
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("the binary runs")
    }

    fn stderr(o: &Output) -> String {
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("uigw-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_bad_environment_variable_is_named() {
        let o = run(&["--listen", "127.0.0.1:0"], &[("UI_SESSION_TIMEOUT", "abc")]);
        assert_eq!(o.status.code(), Some(2));
        let e = stderr(&o);
        assert!(e.contains("UI_SESSION_TIMEOUT=\"abc\"") && e.contains("--session-timeout"), "{e}");
        let o = run(&["--listen", "127.0.0.1:0"], &[("UI_MODE", "embeded")]);
        assert_eq!(o.status.code(), Some(2));
        let e = stderr(&o);
        assert!(e.contains("UI_MODE") && e.contains("embedded"), "{e}");
        // A bad flag on the command line is clap's usual message, naming the flag.
        let o = run(&["--session-timeout", "5x"], &[]);
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("'--session-timeout"), "{}", stderr(&o));
    }

    #[test]
    fn a_port_in_use_suggests_port_0() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let o = run(&["--listen", &addr], &[]);
        assert_eq!(o.status.code(), Some(1));
        let e = stderr(&o);
        assert!(e.contains(&format!("cannot listen on {addr}")) && e.contains("--listen 127.0.0.1:0"), "{e}");
    }

    #[test]
    fn a_broken_main_lua_stops_startup_with_file_and_line() {
        let dir = temp("broken");
        std::fs::create_dir_all(dir.join("lua")).unwrap();
        std::fs::write(dir.join("lua/main.lua"), "local App = {}\nfunction App:total(\nlocal x = 1\nend\n").unwrap();
        let o = run(&["--listen", "127.0.0.1:0", dir.to_str().unwrap()], &[]);
        assert_eq!(o.status.code(), Some(1));
        let e = stderr(&o);
        assert!(e.contains("lua/main.lua:3:") && e.contains("--watch"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn new_writes_a_site_once_and_it_starts_by_host_name() {
        let dir = temp("new");
        let o = run(&["new", dir.to_str().unwrap()], &[]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("--watch"));
        assert!(dir.join("lua/main.lua").is_file() && dir.join("html/app.css").is_file());
        let o = run(&["new", dir.to_str().unwrap()], &[]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
        // The site as a positional argument, on a host name.
        let mut child = Command::new(env!("CARGO_BIN_EXE_ui-gateway"))
            .args(["--listen", "localhost:0", dir.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(line.starts_with("ui-gateway serving embedded on http://127.0.0.1:"), "{line}");
        // Both forms of the site at once is refused.
        let o = run(&["--site", "examples/adder", dir.to_str().unwrap()], &[]);
        assert_eq!(o.status.code(), Some(2));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
