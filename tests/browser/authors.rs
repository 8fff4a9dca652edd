//! Errors where an author looks, and the waiting state of connected mode (issue 17): the dev panel
//! names the variable, its path and the message for a throwing method, a binding to a missing path
//! and a missing viewdef; production pages show a neutral line instead; every one of them is a console
//! error in both; a connected page before any backend says it is waiting until variable 1 arrives.

use super::harness::*;

const APP_LUA: &str = r#"
Poll = session:prototype("Poll", {votes = 1})
function Poll:vote() self.votes = self.votes + self.weight end
Option = session:prototype("Option", {name = "Zig"})
session:createAppVariable(Poll:new({option = Option:new()}))
"#;
/// `vote()` throws (no `weight`), `totl()` names no method, `vots` is a misspelt field (nil: silent in
/// production, "did you mean" in development), and `Option` has a viewdef only under a namespace the
/// view does not ask for.
const APP_VIEW: &str = r#"<template><div class="poll">
  <span class="votes" ui-value="votes"></span>
  <span class="vots" ui-value="vots"></span>
  <button class="vote" ui-action="vote()">Vote</button>
  <span class="total" ui-value="totl()"></span>
  <div class="opt" ui-view="option"></div>
</div></template>"#;
const OPTION_VIEW: &str = r#"<template><span class="name" ui-value="name"></span></template>"#;

fn app_site() -> std::path::PathBuf {
    temp_site(&[
        ("lua/main.lua", APP_LUA),
        ("viewdefs/Poll.DEFAULT.html", APP_VIEW),
        ("viewdefs/Option.listitem.html", OPTION_VIEW),
    ])
}

/// The dev panel's entries as "title\ndetail" strings.
async fn problems(b: &Browser) -> Vec<String> {
    let v = b.eval("window.uiGateway.problems().map(p => p.title + '\\n' + p.detail)").await;
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn dev_overlay_names_variable_path_and_message() {
    let mut args = site_args(None);
    args.site = Some(app_site());
    args.dev = true;
    let gw = gateway_with(args).await;
    let b = Browser::launch().await;
    open_app(&b, &gw).await;
    b.wait("document.querySelector('.votes')?.textContent === '1'").await;
    // The bad bindings and the missing viewdef are in the panel without any click.
    b.wait("document.querySelectorAll('#ui-dev-errors li').length === 3").await;
    let p = problems(&b).await;
    let typo = p.iter().find(|s| s.contains("(path \"vots\")")).unwrap_or_else(|| panic!("{p:?}"));
    assert!(typo.starts_with("path-failure in variable"), "{typo}");
    assert!(typo.contains("did you mean `votes` or `vote()`?"), "{typo}");
    assert_eq!(b.eval("document.querySelector('.vots').classList.contains('ui-error')").await, true);
    let bad_path = p.iter().find(|s| s.contains("totl()")).unwrap_or_else(|| panic!("{p:?}"));
    assert!(bad_path.starts_with("path-failure in variable"), "{bad_path}");
    assert!(bad_path.contains("totl is not a function"), "{bad_path}");
    let viewdef = p.iter().find(|s| s.contains("no viewdef for type Option")).unwrap_or_else(|| panic!("{p:?}"));
    assert!(viewdef.contains("(path \"option\")"), "{viewdef}");
    assert!(viewdef.contains("Tried viewdefs/Option.DEFAULT.html"), "{viewdef}");
    assert!(viewdef.contains("the page has: Option.listitem"), "{viewdef}");

    // A throwing method: the panel names the action's path and the Lua message with file and line.
    b.click(".vote").await;
    b.wait("document.querySelectorAll('#ui-dev-errors li').length === 4").await;
    let p = problems(&b).await;
    let thrown = p.iter().find(|s| s.contains("(path \"vote()\")")).unwrap_or_else(|| panic!("{p:?}"));
    assert!(thrown.starts_with("lua-error in variable"), "{thrown}");
    assert!(thrown.contains("lua/main.lua:3:"), "{thrown}");
    assert!(thrown.contains("arithmetic on a nil value (field 'weight')"), "{thrown}");
    let text = b.text("#ui-dev-errors").await;
    assert!(text.contains("lua/main.lua:3:"), "the panel is visible text: {text}");
    b.screenshot("dev-overlay").await;

    // Every problem is a console error too.
    let console = b.console_errors().await.join("\n");
    assert!(console.contains("totl is not a function"), "{console}");
    assert!(console.contains("did you mean `votes`"), "{console}");
    assert!(console.contains("weight"), "{console}");
    assert!(console.contains("Option.DEFAULT.html"), "{console}");

    // Dismiss clears the panel; the page keeps working.
    b.click("#ui-dev-errors header button").await;
    b.wait("document.getElementById('ui-dev-errors') === null").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn production_shows_a_neutral_message_and_no_overlay() {
    let mut args = site_args(None);
    args.site = Some(app_site());
    let gw = gateway_with(args).await;
    let b = Browser::launch().await;
    open_app(&b, &gw).await;
    b.wait("document.querySelector('.votes')?.textContent === '1'").await;
    assert_eq!(b.eval("document.querySelector('meta[name=\"ui-gateway-dev\"]') === null").await, true);
    // A misspelt field is a plain nil in production: no error on the element.
    assert_eq!(b.eval("document.querySelector('.vots').classList.contains('ui-error')").await, false);
    b.click(".vote").await;
    b.wait("document.querySelector('.vote').classList.contains('ui-error')").await;
    b.wait("document.querySelector('#ui-status')?.textContent.includes('Something went wrong')").await;
    let status = b.text("#ui-status").await;
    assert!(!status.contains("weight") && !status.contains("lua/main.lua"), "no details for visitors: {status}");
    assert_eq!(b.count("#ui-dev-errors").await, 0);
    assert!(problems(&b).await.is_empty());
    let console = b.console_errors().await.join("\n");
    assert!(console.contains("weight"), "the console still has the details: {console}");
    b.screenshot("production-error").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn connected_page_waits_for_the_application() {
    let site = temp_site(&[("viewdefs/App.DEFAULT.html", "<template><p class=\"hello\">hello</p></template>")]);
    let mut args = site_args(None);
    args.site = Some(site);
    args.mode = ui_gateway::config::Mode::Connected;
    let gw = gateway_with(args).await;
    let b = Browser::launch().await;
    open_app(&b, &gw).await;
    b.wait("document.querySelector('#ui-status')?.textContent === 'Waiting for the application…'").await;
    assert!(b.console_errors().await.is_empty(), "waiting is not an error");
    // The message stays (no 10 s toast) until a backend creates variable 1.
    let backend = backend_creating_the_app(gw.addr).await;
    b.wait("document.querySelector('.hello')?.textContent === 'hello'").await;
    b.wait("document.getElementById('ui-status').hidden").await;
    b.screenshot("connected-waiting-done").await;
    b.close().await;
    drop(backend);
}

/// A minimal backend (PROTOCOL.md part B): connects to `/backend` and answers the first `watch` of
/// variable 1 it hears (the page's, buffered while no backend was there) by creating it as an `App`.
async fn backend_creating_the_app(
    addr: std::net::SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/backend")).await.expect("backend connects");
    loop {
        let msg = tokio::time::timeout(STEP, ws.next()).await.expect("a frame in time").expect("open").unwrap();
        let Message::Text(text) = msg else { continue };
        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
        let Some(session) = frame["session"].as_str() else { continue };
        let watches_app = frame["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["type"] == "watch" && m["data"]["varId"] == 1));
        if watches_app {
            let create = serde_json::json!({"session": session, "messages": [
                {"type":"create","data":{"id":1,"value":{"obj":1},"properties":{"type":"App"}}}
            ]});
            ws.send(Message::Text(create.to_string().into())).await.unwrap();
            return ws;
        }
    }
}

/// A site without html/ gets the built-in shell's base stylesheet (a system font, not the browser's
/// serif default), and the scaffold of `ui-gateway new` works in a real page: typing a name and Enter
/// adds a row through lua.ViewList.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn base_stylesheet_and_the_scaffold_in_a_page() {
    let gw = gateway(Some("hello")).await;
    let b = Browser::launch().await;
    open_app(&b, &gw).await;
    b.wait("getComputedStyle(document.body).fontFamily.includes('system-ui')").await;
    b.wait("getComputedStyle(document.querySelector('[ui-app]')).backgroundColor === 'rgb(255, 255, 255)'").await;
    b.settle().await;
    b.screenshot("hello-base-style").await;
    b.close().await;

    let dir = std::env::temp_dir().join(format!("uigw-browser-scaffold-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ui_gateway::scaffold::create(&dir).unwrap();
    let mut args = site_args(None);
    args.site = Some(dir.clone());
    let gw = gateway_with(args).await;
    let b = Browser::launch().await;
    open_app(&b, &gw).await;
    b.wait(
        "document.querySelectorAll('.item').length === 1 && document.querySelector('.left-count').textContent === '1'",
    )
    .await;
    b.type_into(".new-name", "Milk\u{E007}").await;
    b.wait(
        "document.querySelectorAll('.item').length === 2 && document.querySelector('.left-count').textContent === '2'",
    )
    .await;
    b.wait("document.querySelectorAll('.item-name')[1].textContent === 'Milk'").await;
    b.settle().await;
    b.screenshot("scaffold").await;
    assert!(b.console_errors().await.is_empty());
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// URL paths (examples/hello): a deep link opens the registered presenter, navigation inside the app
/// pushes the address, Back and Forward move between the pages, and an unknown path shows the
/// default view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn url_paths_deep_link_navigation_and_back() {
    let gw = gateway(Some("hello")).await;
    let b = Browser::launch().await;
    let url = open_app(&b, &gw).await;
    b.wait("document.querySelector('.greeting')?.textContent === 'Hello, world!'").await;
    b.fill("input", "Ada").await;
    b.wait("document.querySelector('.greeting').textContent === 'Hello, Ada!'").await;

    // Navigation inside the app: the address follows.
    b.click(".about").await;
    b.wait("document.querySelector('.about-greeting')?.textContent === 'Hello, Ada!'").await;
    b.wait("location.pathname.endsWith('/about')").await;
    // Back: the greeting again, at the session's own address; Forward: About again.
    b.client.back().await.unwrap();
    b.wait("document.querySelector('.greeting')?.textContent === 'Hello, Ada!'").await;
    assert_eq!(b.url().await, url);
    b.client.forward().await.unwrap();
    b.wait("document.querySelector('.about-page') !== null && location.pathname.endsWith('/about')").await;
    b.click(".back").await;
    b.wait("document.querySelector('.greeting') !== null && !location.pathname.endsWith('/about')").await;

    // A deep link in a new page load opens on the presenter of the path, with the session's state.
    b.goto(&format!("{url}/about")).await;
    b.wait("document.querySelector('.about-greeting')?.textContent === 'Hello, Ada!'").await;
    b.screenshot("url-path-deep-link").await;
    // An unknown path shows the default view.
    b.goto(&format!("{url}/no/such/page")).await;
    b.wait("document.querySelector('.greeting')?.textContent === 'Hello, Ada!'").await;
    assert!(b.console_errors().await.is_empty());
    b.close().await;
}

/// With --watch, a main.lua that does not load is shown on the page (file and line), and a save that
/// fixes it brings the app up in the same page, without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn watch_shows_a_broken_main_lua_and_recovers_on_save() {
    let dir = temp_site(&[
        ("lua/main.lua", "App = session:prototype('App', {n = 1})\nsession:createAppVariable(App:new(\n"),
        ("viewdefs/App.DEFAULT.html", "<template><b class=\"n\" ui-value=\"n\"></b></template>"),
    ]);
    let gw = watching(&dir).await;
    let b = Browser::launch().await;
    open_app(&b, &gw).await;
    b.wait("document.querySelector('#ui-dev-errors')?.textContent.includes('The app did not start')").await;
    let text = b.text("#ui-dev-errors").await;
    assert!(text.contains("lua/main.lua:3:"), "{text}");
    b.screenshot("watch-broken-main").await;
    std::fs::write(
        dir.join("lua/main.lua"),
        "App = session:prototype('App', {n = 1})\nsession:createAppVariable(App:new())\n",
    )
    .unwrap();
    b.wait("document.querySelector('.n')?.textContent === '1'").await;
    b.wait("document.getElementById('ui-dev-errors') === null").await;
    b.close().await;
}

/// With --watch, a save that does not compile is in the dev panel of every open page (and of a page
/// opened meanwhile), with Lua's file and line, while the page runs the last good code; the next good
/// save removes the entry. A viewdef file skipped for its name is named by the panel's entry for the
/// viewdef it would have been.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn watch_shows_a_refused_save_in_the_panel_until_fixed() {
    const MAIN: &str = "App = session:prototype('App', {n = 1})\nfunction App:inc() self.n = self.n + 1 end\n\
        Option = session:prototype('Option', {name = 'Zig'})\n\
        if not session:getApp() then session:createAppVariable(App:new({option = Option:new()})) end\n";
    let dir = temp_site(&[
        ("lua/main.lua", MAIN),
        ("viewdefs/App.DEFAULT.html", "<template><b class=\"n\" ui-value=\"n\"></b><button class=\"inc\" ui-action=\"inc()\">+</button><i class=\"opt\" ui-view=\"option\"></i></template>"),
        ("viewdefs/option.html", "<template><span ui-value=\"name\"></span></template>"),
    ]);
    let gw = watching(&dir).await;
    let b = Browser::launch().await;
    open_app(&b, &gw).await;
    b.wait("document.querySelector('.n')?.textContent === '1'").await;
    // The skipped file is in the panel at once, and the entry for the Option nothing can show names it.
    b.wait("window.uiGateway.problems().some(p => p.title.includes('viewdefs/option.html: name is not Type.namespace.html'))").await;
    b.wait("window.uiGateway.problems().some(p => p.title.startsWith('no viewdef for type Option'))").await;
    let p = problems(&b).await;
    let missing = p.iter().find(|s| s.starts_with("no viewdef for type Option")).unwrap();
    assert!(
        missing.contains("not loaded:\nviewdefs/option.html: name is not Type.namespace.html; skipped"),
        "{missing}"
    );

    std::fs::write(dir.join("lua/main.lua"), "App = session:prototype('App', {n = 1})\nfunction App:inc(\n").unwrap();
    b.wait("window.uiGateway.problems().some(p => p.title.startsWith('lua/main.lua does not compile'))").await;
    let text = b.text("#ui-dev-errors").await;
    assert!(text.contains("lua/main.lua:3:"), "Lua's file and line are on the page: {text}");
    assert!(text.contains("the page runs the last good code until you fix it"), "{text}");
    let console = b.console_errors().await.join("\n");
    assert!(console.contains("lua/main.lua does not compile"), "{console}");
    b.screenshot("watch-refused-save").await;
    // The last good code runs.
    b.click(".inc").await;
    b.wait("document.querySelector('.n')?.textContent === '2'").await;
    // A page opened now shows it too.
    let b2 = Browser::launch().await;
    open_app(&b2, &gw).await;
    b2.wait("document.querySelector('.n')?.textContent === '1'").await;
    b2.wait("window.uiGateway.problems().some(p => p.title.startsWith('lua/main.lua does not compile'))").await;

    // A save that fixes it removes the entry on both pages; the skipped viewdef stays listed.
    std::fs::write(dir.join("lua/main.lua"), format!("{MAIN}App.fixed = true\n")).unwrap();
    for page in [&b, &b2] {
        page.wait("!window.uiGateway.problems().some(p => p.title.includes('lua/main.lua'))").await;
        let p = problems(page).await;
        assert!(p.iter().any(|s| s.contains("viewdefs/option.html")), "{p:?}");
    }
    b2.close().await;
    b.close().await;
}

/// The poll of the getting-started walk (`examples/poll`), as a user drives it: votes change the
/// counts, the total and the leader; typing an option and pressing Enter adds a row and clears the
/// input; nothing goes to the console as an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn poll_example_votes_and_adds_an_option_with_enter() {
    let gw = gateway(Some("poll")).await;
    let b = Browser::launch().await;
    open_app(&b, &gw).await;
    b.wait("document.querySelectorAll('.option-name').length === 3").await;
    assert_eq!(b.texts(".option-name").await, ["Lua", "Rust", "Python"]);
    assert_eq!(b.text(".leader").await, "no votes yet");

    b.click(".option:nth-child(1) .vote").await;
    b.click(".option:nth-child(1) .vote").await;
    b.click(".option:nth-child(3) .vote").await;
    b.wait("document.querySelector('.total').textContent === '3'").await;
    assert_eq!(b.texts(".option-votes").await, ["2", "0", "1"]);
    assert_eq!(b.text(".leader").await, "Lua");

    b.type_into(".new-option", &format!("Zig{ENTER}")).await;
    b.wait("document.querySelectorAll('.option-name').length === 4").await;
    b.wait("document.querySelector('.new-option').value === ''").await;
    for _ in 0..3 {
        b.click(".option:nth-child(4) .vote").await;
    }
    b.wait("document.querySelector('.leader').textContent === 'Zig'").await;
    assert_eq!(b.text(".total").await, "6");
    b.screenshot("poll-example").await;
    // Nothing for the author to chase: no errors, and no warnings either (each ViewList row used to
    // warn "ui-viewdef on a ui-view element is ignored" about the frontend's own marker).
    let console = b.console_errors_and_warnings().await;
    assert!(console.is_empty(), "{console:?}");
    b.close().await;
}
