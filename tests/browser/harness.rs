//! Browser test harness: a real gateway on an ephemeral port, a chromedriver child process driving a
//! headless Chromium (Debian `chromium` + `chromium-driver`), DOM-condition waits, WebSocket frames
//! observed through Chromium's DevTools `Network.webSocketFrame*` events (chromedriver's performance
//! log), and screenshots under `target/screenshots/`.
//!
//! Waiting is always on a condition (polled), never a fixed sleep; no assertion reads a clock.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use ui_gateway::config::ServeArgs;
use ui_gateway::gateway::RunningGateway;

/// How long any awaited condition may take (generous: CI machines are slow, Chromium starts cold).
pub const STEP: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Gateway arguments for a site under `examples/` (None = the built-in demo).
pub fn site_args(site: Option<&str>) -> ServeArgs {
    ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        site: site.map(|s| repo().join("examples").join(s)),
        ..Default::default()
    }
}

pub async fn gateway(site: Option<&str>) -> RunningGateway {
    RunningGateway::start(&site_args(site)).await.expect("gateway starts")
}

pub async fn gateway_with(args: ServeArgs) -> RunningGateway {
    RunningGateway::start(&args).await.expect("gateway starts")
}

/// A gateway serving the site `dir` with `--watch`.
pub async fn watching(dir: &std::path::Path) -> RunningGateway {
    let mut args = site_args(None);
    args.site = Some(dir.to_path_buf());
    args.watch = true;
    gateway_with(args).await
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn find_program(names: &[&str]) -> String {
    for n in names {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = PathBuf::from(dir).join(n);
            if p.is_file() {
                return p.display().to_string();
            }
        }
    }
    panic!("none of {names:?} found on PATH: install the Debian packages chromium and chromium-driver");
}

/// One headless Chromium behind its own chromedriver. Dropping it ends both.
pub struct Browser {
    pub client: Client,
    driver: Child,
    /// Performance-log entries already read (the log is drained on every read).
    log: Vec<Value>,
}

impl Browser {
    pub async fn launch() -> Browser {
        let port = free_port();
        let driver = Command::new(find_program(&["chromedriver"]))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--no-first-run", "--disable-extensions",
                         "--disable-background-networking", "--disable-features=Translate"],
            }),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"performance": "ALL", "browser": "ALL"}));
        caps.insert("pageLoadStrategy".into(), json!("normal"));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + STEP;
        let client = loop {
            let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            builder.capabilities(caps.clone());
            match builder.connect(&url).await {
                Ok(c) => break c,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(POLL).await; // chromedriver still starting: poll, not a wait for time
                }
                Err(e) => panic!("cannot start a WebDriver session: {e}"),
            }
        };
        Browser { client, driver, log: Vec::new() }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigation");
    }

    pub async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// Runs a script (`return …` for a value) with `arguments`.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    pub async fn eval(&self, expr: &str) -> Value {
        self.js(&format!("return ({expr});"), vec![]).await
    }

    /// Polls a JavaScript expression until it is truthy.
    pub async fn wait(&self, expr: &str) {
        let deadline = tokio::time::Instant::now() + STEP;
        let script = format!("try {{ return !!({expr}); }} catch (e) {{ return false; }}");
        loop {
            if self.js(&script, vec![]).await == Value::Bool(true) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let html = self.eval("document.documentElement.outerHTML").await;
                panic!("condition not met in time: {expr}\npage: {}", html.as_str().unwrap_or(""));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The client is connected and has nothing in flight (`ui-busy` gone).
    pub async fn settle(&self) {
        self.wait(
            "window.uiGateway && uiGateway.state === 'open' && !document.documentElement.hasAttribute('ui-busy')",
        )
        .await;
    }

    /// The first element matching `css`, once it is not inside hidden (not yet revealed) content.
    pub async fn find(&self, css: &str) -> Element {
        self.wait(&format!(
            "(() => {{ const e = document.querySelector({css:?}); return e && !e.closest('.ui-new-view'); }})()"
        ))
        .await;
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                return e;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("no element {css}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types into an element (WebDriver focuses it first); keys like Enter are `\u{E007}`.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.find(css).await.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Blurs whatever has focus (a real `blur` event).
    pub async fn blur(&self) {
        self.js("document.activeElement && document.activeElement.blur();", vec![]).await;
    }

    pub async fn text(&self, css: &str) -> String {
        let v = self
            .js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", vec![json!(css)])
            .await;
        v.as_str().unwrap_or_else(|| panic!("no element {css}")).trim().to_string()
    }

    pub async fn value(&self, css: &str) -> String {
        let v = self
            .js("const e = document.querySelector(arguments[0]); return e ? e.value : null;", vec![json!(css)])
            .await;
        v.as_str().unwrap_or_else(|| panic!("no element {css}")).to_string()
    }

    pub async fn count(&self, css: &str) -> usize {
        self.js("return document.querySelectorAll(arguments[0]).length;", vec![json!(css)]).await.as_u64().unwrap()
            as usize
    }

    /// The visible texts of every match of `css` (hidden no-flash content excluded).
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let v = self
            .js(
                "return [...document.querySelectorAll(arguments[0])].filter(e => !e.closest('.ui-new-view')).map(e => e.textContent.trim());",
                vec![json!(css)],
            )
            .await;
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    }

    pub async fn store_size(&self) -> u64 {
        self.eval("window.uiGateway.store.size").await.as_u64().unwrap()
    }

    pub async fn screenshot(&self, name: &str) {
        let dir = repo().join("target").join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Drains chromedriver's performance log into `self.log`.
    async fn pull_log(&mut self) {
        let v = self.client.issue_cmd(GetLog("performance")).await.expect("performance log");
        for entry in v.as_array().cloned().unwrap_or_default() {
            if let Some(msg) = entry.get("message").and_then(Value::as_str) {
                if let Ok(parsed) = serde_json::from_str::<Value>(msg) {
                    self.log.push(parsed);
                }
            }
        }
    }

    /// Every WebSocket frame observed so far, in order: (socket request id, sent?, payload JSON).
    pub async fn frames(&mut self) -> Vec<Frame> {
        self.pull_log().await;
        let mut out = Vec::new();
        for e in &self.log {
            let m = &e["message"];
            let sent = match m["method"].as_str() {
                Some("Network.webSocketFrameSent") => true,
                Some("Network.webSocketFrameReceived") => false,
                _ => continue,
            };
            let p = &m["params"];
            let payload = p["response"]["payloadData"].as_str().unwrap_or("");
            out.push(Frame {
                socket: p["requestId"].as_str().unwrap_or("").to_string(),
                webview: e["webview"].as_str().unwrap_or("").to_string(),
                sent,
                json: serde_json::from_str(payload).unwrap_or(Value::Null),
            });
        }
        out
    }

    /// Frames the page sent, in order.
    pub async fn sent(&mut self) -> Vec<Value> {
        self.frames().await.into_iter().filter(|f| f.sent).map(|f| f.json).collect()
    }

    /// Request ids of the WebSockets opened so far, in order.
    pub async fn sockets(&mut self) -> Vec<String> {
        self.pull_log().await;
        self.log
            .iter()
            .filter(|e| e["message"]["method"] == "Network.webSocketCreated")
            .map(|e| e["message"]["params"]["requestId"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Browser console errors logged so far (drained).
    pub async fn console_errors(&self) -> Vec<String> {
        self.console_at(&["SEVERE"]).await
    }

    /// The console's errors and warnings since the last read (reading the log empties it).
    pub async fn console_errors_and_warnings(&self) -> Vec<String> {
        self.console_at(&["SEVERE", "WARNING"]).await
    }

    async fn console_at(&self, levels: &[&str]) -> Vec<String> {
        let v = self.client.issue_cmd(GetLog("browser")).await.expect("browser log");
        v.as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|e| levels.iter().any(|l| e["level"] == *l))
            .map(|e| e["message"].as_str().unwrap_or("").to_string())
            .collect()
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
        drop(self.driver);
    }
}

#[derive(Debug, Clone)]
pub struct Frame {
    pub socket: String,
    pub webview: String,
    pub sent: bool,
    pub json: Value,
}

/// The messages of a client frame (`{"userEvent":…, "messages":[…]}`).
pub fn messages(frame: &Value) -> Vec<Value> {
    frame["messages"].as_array().cloned().unwrap_or_default()
}

/// chromedriver's log endpoint (`POST /session/{id}/se/log`), which the W3C command set lacks.
#[derive(Debug)]
struct GetLog(&'static str);

impl WebDriverCompatibleCommand for GetLog {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or("")))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": self.0}).to_string()))
    }
}

/// `GET /` without following the redirect: (status, Location, Set-Cookie).
pub async fn get_root(gw: &RunningGateway) -> (u16, String, String) {
    let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = c.get(format!("http://{}/", gw.addr)).send().await.unwrap();
    let header = |n: &str| r.headers().get(n).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (r.status().as_u16(), header("location"), header("set-cookie"))
}

/// Opens `/` in the browser and waits for the app to settle; returns the session URL.
pub async fn open_app(b: &Browser, gw: &RunningGateway) -> String {
    b.goto(&format!("http://{}/", gw.addr)).await;
    b.settle().await;
    b.url().await
}

pub const ENTER: &str = "\u{E007}";
pub const ESCAPE: &str = "\u{E00C}";
pub const CONTROL: &str = "\u{E009}";

impl Browser {
    /// Replaces a text field's content the way a user would (select all, type) and leaves it.
    pub async fn fill(&self, css: &str, text: &str) {
        self.fill_no_blur(css, text).await;
        self.blur().await;
    }

    /// Replaces a text field's content and keeps the focus in it.
    pub async fn fill_no_blur(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        el.click().await.unwrap_or_else(|e| panic!("focus {css}: {e}"));
        self.js("document.querySelector(arguments[0]).select();", vec![json!(css)]).await;
        if text.is_empty() {
            el.send_keys("\u{E003}").await.unwrap(); // Backspace deletes the selection
        } else {
            el.send_keys(text).await.unwrap();
        }
    }

    /// Number of frames the page has sent so far.
    pub async fn sent_count(&mut self) -> usize {
        self.sent().await.len()
    }

    /// Waits until the page has sent more than `n` frames and returns the new ones.
    pub async fn sent_after(&mut self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let all = self.sent().await;
            if all.len() > n {
                return all[n..].to_vec();
            }
            if tokio::time::Instant::now() > deadline {
                panic!("no frame sent after the first {n}");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// JavaScript: the visible rows (`.task` elements outside hidden no-flash content) by name.
pub const TASK_JS: &str =
    "const rows = () => [...document.querySelectorAll('.task')].filter(r => !r.closest('.ui-new-view'));
 const names = () => rows().map(r => r.querySelector('.task-name').textContent);
 const row = (n) => rows().find(r => r.querySelector('.task-name').textContent === n);";

impl Browser {
    /// Marks the first element matching `inner` inside the element `finder_js` returns (a JS
    /// expression), then clicks it with a real WebDriver click.
    pub async fn click_within(&self, prelude: &str, finder_js: &str, inner: &str) {
        self.wait(&format!("(() => {{ {prelude} return {finder_js}; }})()")).await;
        self.js(
            &format!(
                "{prelude} document.querySelectorAll('[data-test-target]').forEach(e => e.removeAttribute('data-test-target'));
                 const host = {finder_js}; const el = arguments[0] ? host.querySelector(arguments[0]) : host;
                 el.setAttribute('data-test-target', '');"
            ),
            vec![json!(inner)],
        )
        .await;
        self.click("[data-test-target]").await;
    }

    /// Task names as shown, in order.
    pub async fn task_names(&self) -> Vec<String> {
        let v = self.js(&format!("{TASK_JS} return names();"), vec![]).await;
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    }

    /// Waits until the visible task names are exactly `names`.
    pub async fn wait_tasks(&self, names: &[&str]) {
        let want = serde_json::to_string(names).unwrap();
        self.wait(&format!("(() => {{ {TASK_JS} return JSON.stringify(names()) === {want:?}; }})()")).await;
    }

    pub async fn click_task(&self, name: &str, inner: &str) {
        self.click_within(TASK_JS, &format!("row({name:?})"), inner).await;
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.find(css).await.select_by_value(value).await.unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }
}

/// JavaScript: the visible contact rows by name.
pub const CONTACT_JS: &str = "const rows = () => [...document.querySelectorAll('.contact-row')].filter(r => !r.closest('.ui-new-view') && !r.closest('[hidden]'));
 const names = () => rows().map(r => r.querySelector('.contact-name').textContent);
 const row = (n) => rows().find(r => r.querySelector('.contact-name').textContent === n);";

impl Browser {
    pub async fn wait_contacts(&self, names: &[&str]) {
        let want = serde_json::to_string(names).unwrap();
        self.wait(&format!("(() => {{ {CONTACT_JS} return JSON.stringify(names()) === {want:?}; }})()")).await;
    }

    pub async fn click_contact(&self, name: &str, inner: &str) {
        self.click_within(CONTACT_JS, &format!("row({name:?})"), inner).await;
    }
}

/// A TCP relay in front of the gateway: the browser talks to it, and `cut()` drops every open
/// connection at once (a real network cut; DevTools offline emulation does not close WebSockets).
pub struct Relay {
    pub addr: std::net::SocketAddr,
    conns: std::sync::Arc<parking_lot_free::Conns>,
    accept: tokio::task::JoinHandle<()>,
}

mod parking_lot_free {
    /// Open relayed connections (their copy tasks).
    #[derive(Default)]
    pub struct Conns(pub std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>);
}

impl Relay {
    pub async fn start(target: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = std::sync::Arc::new(parking_lot_free::Conns::default());
        let c = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.0.lock().unwrap().push(task);
            }
        });
        Relay { addr, conns, accept }
    }

    /// Drops every relayed connection; new ones are still accepted.
    pub fn cut(&self) {
        for t in self.conns.0.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// A throwaway site directory with the given files (relative path → content).
pub fn temp_site(files: &[(&str, &str)]) -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("uigw-browser-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, content) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

/// Installs an observer recording whether `<html ui-disconnected>` ever appears.
pub const WATCH_DISCONNECTED: &str = "window.__sawDisconnected = false;
 new MutationObserver(() => { if (document.documentElement.hasAttribute('ui-disconnected')) window.__sawDisconnected = true; })
   .observe(document.documentElement, {attributes: true, attributeFilter: ['ui-disconnected']});";

/// The session id in a page URL (`http://host/<id>`).
pub fn session_of(url: &str) -> String {
    url.trim_end_matches('/').rsplit('/').next().unwrap().to_string()
}

/// The server's variable count for a session (`/<id>/variables.json`, docs/deployment.md "HTTP routes").
pub async fn server_vars(gw_addr: std::net::SocketAddr, session: &str) -> usize {
    let r = reqwest::get(format!("http://{gw_addr}/{session}/variables.json")).await.unwrap();
    assert_eq!(r.status(), 200, "variables.json must be served to a local client");
    r.json::<Value>().await.unwrap().as_array().unwrap().len()
}

impl Browser {
    /// Waits until the server's variable count for `session` is `n` (the count settles after the
    /// page's frames are processed, so it is polled like a DOM condition).
    pub async fn wait_server_vars(&self, gw_addr: std::net::SocketAddr, session: &str, n: usize) {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let now = server_vars(gw_addr, session).await;
            if now == n {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("server variable count is {now}, expected {n}");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
