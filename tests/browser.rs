//! End-to-end tests in a real headless Chromium. Ignored by default so a plain
//! `cargo test` needs only Rust; CI runs them with `cargo test --test browser -- --include-ignored`.
//!
//! Each test starts its own gateway on an ephemeral port and its own Chromium, waits on DOM
//! conditions and `ui-busy` (never on time), and leaves a screenshot in `target/screenshots/`.

#[allow(dead_code)]
#[path = "../examples/counter_backend/main.rs"]
mod counter;
#[allow(dead_code)]
#[path = "../examples/dashboard_backend/main.rs"]
mod dashboard;
#[path = "browser/harness.rs"]
mod harness;

#[path = "browser/authors.rs"]
mod authors;

use harness::*;
use serde_json::json;

const IGNORE: &str = "needs chromium and chromedriver";

// ---------------------------------------------------------------------------------------------
// Adder, and bootstrap
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn adder() {
    let _ = IGNORE;
    let gw = gateway(Some("adder")).await;

    // `/` answers 302 to `/<32 hex>` and sets the ui-session cookie (on the session page).
    let (status, location, _) = get_root(&gw).await;
    assert_eq!(status, 302);
    let id = location.trim_start_matches('/');
    assert!(id.len() == 32 && id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{location}");

    let mut b = Browser::launch().await;
    let url = open_app(&b, &gw).await;
    let path = url.split(&gw.addr.to_string()).nth(1).unwrap().to_string();
    assert!(path.len() == 33 && path[1..].bytes().all(|c| c.is_ascii_hexdigit()), "{url}");
    let cookie = b.eval("document.cookie").await;
    assert_eq!(cookie.as_str().unwrap(), format!("ui-session={}", &path[1..]));
    b.wait("document.querySelector('h1')?.textContent === 'Simple Adder'").await;

    // the first frame is exactly `watch 1`.
    let sent = b.sent().await;
    assert_eq!(sent[0], json!({"userEvent":false,"messages":[{"type":"watch","data":{"varId":1}}]}));

    // Type 2 and 3, blur each: 5.
    b.fill(".adder-a", "2").await;
    b.fill(".adder-b", "3").await;
    b.wait("document.querySelector('.adder-sum').textContent === '5'").await;
    // A non-number empties the sum; 2.5 + 1 = 3.5.
    b.fill(".adder-a", "x").await;
    b.wait("document.querySelector('.adder-sum').textContent === ''").await;
    b.fill(".adder-a", "2.5").await;
    b.fill(".adder-b", "1").await;
    b.wait("document.querySelector('.adder-sum').textContent === '3.5'").await;
    b.settle().await;

    // Reload: the state lives in the session.
    b.client.refresh().await.unwrap();
    b.settle().await;
    b.wait("document.querySelector('.adder-sum')?.textContent === '3.5'").await;
    assert_eq!(b.value(".adder-a").await, "2.5");
    assert_eq!(b.value(".adder-b").await, "1");

    // Focus and blur without typing: nothing is sent. The next frame is the Clear action alone.
    let n = b.sent_count().await;
    b.click(".adder-a").await;
    b.blur().await;
    b.click(".adder-b").await;
    b.blur().await;
    b.click(".adder .btn").await;
    let after = b.sent_after(n).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["userEvent"], json!(true));
    let msgs = messages(&after[0]);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["type"], "update");
    assert_eq!(msgs[0]["data"]["value"], json!(null));

    // Clear empties both inputs and the sum.
    b.wait("document.querySelector('.adder-a').value === '' && document.querySelector('.adder-b').value === ''").await;
    b.wait("document.querySelector('.adder-sum').textContent === ''").await;
    b.settle().await;
    b.fill(".adder-a", "40").await;
    b.fill(".adder-b", "2").await;
    b.wait("document.querySelector('.adder-sum').textContent === '42'").await;
    assert!(b.count(".ui-error").await == 0);
    b.screenshot("adder").await;
    b.close().await;
}

/// with `--watch`, editing `Adder.DEFAULT.html` changes the open page without a reload; the
/// inputs keep their values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn hot_reload_changes_the_open_page() {
    let adder = repo().join("examples/adder");
    let files: Vec<(String, String)> =
        ["html/app.css", "html/index.html", "lua/main.lua", "viewdefs/Adder.DEFAULT.html"]
            .iter()
            .map(|f| (f.to_string(), std::fs::read_to_string(adder.join(f)).unwrap()))
            .collect();
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(f, t)| (f.as_str(), t.as_str())).collect();
    let dir = temp_site(&borrowed);
    let gw = watching(&dir).await;
    let b = Browser::launch().await;
    open_app(&b, &gw).await;
    b.wait("document.querySelector('h1')?.textContent === 'Simple Adder'").await;
    b.fill(".adder-a", "2").await;
    b.fill(".adder-b", "3").await;
    b.wait("document.querySelector('.adder-sum').textContent === '5'").await;
    b.settle().await;
    b.eval("(window.__beforeReload = true)").await;

    let template = std::fs::read_to_string(dir.join("viewdefs/Adder.DEFAULT.html")).unwrap();
    let edited = template.replace("<h1>Simple Adder</h1>", "<h1>Edited Adder</h1>");
    assert_ne!(edited, template);
    std::fs::write(dir.join("viewdefs/Adder.DEFAULT.html"), edited).unwrap();

    b.wait("document.querySelector('h1')?.textContent === 'Edited Adder'").await;
    assert_eq!(b.eval("window.__beforeReload === true").await, json!(true), "the page was not reloaded");
    b.wait("document.querySelector('.adder-sum').textContent === '5'").await;
    assert_eq!(b.value(".adder-a").await, "2");
    assert_eq!(b.value(".adder-b").await, "3");
    b.screenshot("hot-reload").await;
    b.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// an unknown session URL is a 404 page linking to `/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn unknown_session_shows_the_ended_page() {
    let gw = gateway(Some("adder")).await;
    let r = reqwest::get(format!("http://{}/{}", gw.addr, "0123456789abcdef0123456789abcdef")).await.unwrap();
    assert_eq!(r.status(), 404);
    let b = Browser::launch().await;
    b.goto(&format!("http://{}/0123456789abcdef0123456789abcdef", gw.addr)).await;
    b.wait("document.body.textContent.includes('This session has ended.')").await;
    b.click("a[href='/']").await;
    b.wait("location.pathname.length === 33").await;
    b.settle().await;
    b.wait("document.querySelector('h1')?.textContent === 'Simple Adder'").await;
    b.close().await;
}

// ---------------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------------

async fn task_row_is(b: &Browser, name: &str, completed: bool) {
    b.wait(&format!(
        "(() => {{ {TASK_JS} const r = row({name:?}); return r && r.querySelector('.task-name').classList.contains('completed') === {completed} && r.querySelector('.task-done').checked === {completed}; }})()"
    ))
    .await;
}

async fn left(b: &Browser, n: usize) {
    b.wait(&format!("document.querySelector('.tasks-count')?.textContent === '{n}'")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn tasks() {
    let gw = gateway(Some("tasks")).await;
    let mut b = Browser::launch().await;
    open_app(&b, &gw).await;

    // Three rows, "Write spec" completed and ticked, "2 left".
    b.wait_tasks(&["Buy milk", "Write spec", "Walk dog"]).await;
    task_row_is(&b, "Write spec", true).await;
    task_row_is(&b, "Buy milk", false).await;
    left(&b, 2).await;

    // Enter without blurring adds (sync before event): the input empties, "3 left".
    b.fill_no_blur(".tasks-input", "Call Bob").await;
    let n = b.sent_count().await;
    b.type_into(".tasks-input", ENTER).await;
    b.wait_tasks(&["Buy milk", "Write spec", "Walk dog", "Call Bob"]).await;
    b.wait("document.querySelector('.tasks-input').value === ''").await;
    left(&b, 3).await;
    // The value and the action went in one user-event frame, the value first.
    let frames = b.sent_after(n).await;
    let f = frames.iter().find(|f| f["userEvent"] == json!(true)).expect("a user event frame");
    let msgs = messages(f);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs[0]["data"]["value"], json!("Call Bob"));
    assert_eq!(msgs[1]["data"]["value"], json!(null));

    // The Add button does the same.
    b.fill_no_blur(".tasks-input", "Feed cat").await;
    b.click(".tasks-add").await;
    b.wait_tasks(&["Buy milk", "Write spec", "Walk dog", "Call Bob", "Feed cat"]).await;
    b.wait("document.querySelector('.tasks-input').value === ''").await;
    left(&b, 4).await;

    // Enter on an empty input adds nothing (the next add is the only new row).
    b.settle().await;
    b.type_into(".tasks-input", ENTER).await;
    b.fill_no_blur(".tasks-input", "Water plants").await;
    b.type_into(".tasks-input", ENTER).await;
    b.wait_tasks(&["Buy milk", "Write spec", "Walk dog", "Call Bob", "Feed cat", "Water plants"]).await;
    left(&b, 5).await;

    // Escape after typing empties the input.
    b.fill_no_blur(".tasks-input", "Never mind").await;
    b.type_into(".tasks-input", ESCAPE).await;
    b.wait("document.querySelector('.tasks-input').value === ''").await;
    b.settle().await;

    // Tick "Buy milk": completed, counter drops, still ticked after a reload.
    b.click_task("Buy milk", ".task-done").await;
    task_row_is(&b, "Buy milk", true).await;
    left(&b, 4).await;
    b.settle().await;
    b.client.refresh().await.unwrap();
    b.settle().await;
    b.wait_tasks(&["Buy milk", "Write spec", "Walk dog", "Call Bob", "Feed cat", "Water plants"]).await;
    task_row_is(&b, "Buy milk", true).await;
    left(&b, 4).await;

    // Filters: active shows unticked rows and ticking one removes it; done; all.
    b.select(".tasks-filter", "active").await;
    b.wait_tasks(&["Walk dog", "Call Bob", "Feed cat", "Water plants"]).await;
    b.click_task("Feed cat", ".task-done").await;
    b.wait_tasks(&["Walk dog", "Call Bob", "Water plants"]).await;
    left(&b, 3).await;
    b.select(".tasks-filter", "done").await;
    b.wait_tasks(&["Buy milk", "Write spec", "Feed cat"]).await;
    b.select(".tasks-filter", "all").await;
    b.wait_tasks(&["Buy milk", "Write spec", "Walk dog", "Call Bob", "Feed cat", "Water plants"]).await;

    // Delete "Walk dog": the row goes, the counter updates.
    b.click_task("Walk dog", ".task-delete").await;
    b.wait_tasks(&["Buy milk", "Write spec", "Call Bob", "Feed cat", "Water plants"]).await;
    left(&b, 2).await;
    b.settle().await;

    // Adding and deleting a task 20 times leaves the client's store size and the server's variable
    // count where they were.
    let session = session_of(&b.url().await);
    let size = b.store_size().await;
    let vars = server_vars(gw.addr, &session).await;
    for i in 0..20 {
        let name = format!("Temp {i}");
        b.fill_no_blur(".tasks-input", &name).await;
        b.type_into(".tasks-input", ENTER).await;
        b.wait_tasks(&["Buy milk", "Write spec", "Call Bob", "Feed cat", "Water plants", &name]).await;
        b.click_task(&name, ".task-delete").await;
        b.wait_tasks(&["Buy milk", "Write spec", "Call Bob", "Feed cat", "Water plants"]).await;
        b.settle().await;
    }
    assert_eq!(b.store_size().await, size);
    b.wait_server_vars(gw.addr, &session, vars).await;

    // After adding 30 tasks the list is scrolled to the bottom.
    for i in 0..30 {
        b.fill_no_blur(".tasks-input", &format!("Chore {i}")).await;
        b.type_into(".tasks-input", ENTER).await;
        b.wait(&format!("(() => {{ {TASK_JS} return names().includes('Chore {i}'); }})()")).await;
    }
    b.settle().await;
    b.wait("(() => { const l = document.querySelector('.tasks-list'); return l.scrollTop > 0 && l.scrollTop + l.clientHeight >= l.scrollHeight - 2; })()").await;
    assert_eq!(b.count(".ui-error").await, 0);
    b.blur().await;
    b.screenshot("tasks").await;
    b.close().await;
}

// ---------------------------------------------------------------------------------------------
// Contacts
// ---------------------------------------------------------------------------------------------

async fn count_is(b: &Browser, n: usize) {
    b.wait(&format!("document.querySelector('.contacts-count')?.textContent === '{n}'")).await;
}

const LIST_HIDDEN: &str = "document.querySelector('.contacts-list').hidden";
const FORM_SHOWN: &str = "!!document.querySelector('.contact-form:not(.ui-new-view)')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn contacts() {
    let gw = gateway(Some("contacts")).await;
    let b = Browser::launch().await;
    open_app(&b, &gw).await;

    // Sorted rows, count 3.
    b.wait_contacts(&["Alice Smith", "Bob Johnson", "Carol Williams"]).await;
    count_is(&b, 3).await;

    // Search as you type (no blur): only Bob; emptied: all three.
    b.fill_no_blur(".contacts-search", "bo").await;
    b.wait_contacts(&["Bob Johnson"]).await;
    count_is(&b, 1).await;
    b.fill_no_blur(".contacts-search", "").await;
    b.wait_contacts(&["Alice Smith", "Bob Johnson", "Carol Williams"]).await;
    count_is(&b, 3).await;

    // `car` + Enter opens Carol in the form, the list hides; Cancel brings it back unchanged.
    b.fill_no_blur(".contacts-search", "car").await;
    b.type_into(".contacts-search", ENTER).await;
    b.wait(FORM_SHOWN).await;
    b.wait("document.querySelector('.f-first')?.value === 'Carol' && document.querySelector('.f-last').value === 'Williams'").await;
    b.wait(LIST_HIDDEN).await;
    b.click(".f-cancel").await;
    b.wait(&format!("!({LIST_HIDDEN}) && !({FORM_SHOWN})")).await;
    b.wait_contacts(&["Carol Williams"]).await;
    b.fill_no_blur(".contacts-search", "").await;
    b.wait_contacts(&["Alice Smith", "Bob Johnson", "Carol Williams"]).await;
    b.blur().await;
    b.settle().await;

    // Emergency contact: the native select offers the others, by index; the choice sticks.
    b.click_contact("Alice Smith", ".act-edit").await;
    b.wait(FORM_SHOWN).await;
    b.wait("(() => { const o = [...document.querySelectorAll('.f-emergency option[ui-viewdef]')]; return o.length === 2 && o[0].textContent.trim() === 'Bob Johnson' && o[1].textContent.trim() === 'Carol Williams'; })()").await;
    let opts = b
        .eval("[...document.querySelectorAll('.f-emergency option')].map(o => [o.value, o.getAttribute('ui-viewdef'), o.textContent.trim()])")
        .await;
    assert_eq!(
        opts,
        json!([
            ["", null, "(none)"],
            ["0", "lua.ViewListItem.emergency-option", "Bob Johnson"],
            ["1", "lua.ViewListItem.emergency-option", "Carol Williams"]
        ])
    );
    b.settle().await;
    b.select(".f-emergency", "0").await;
    b.click(".f-save").await;
    b.wait(&format!("!({FORM_SHOWN}) && !({LIST_HIDDEN})")).await;
    b.settle().await;

    // View Alice: the box shows her and her emergency contact; Close empties it and the store
    // size returns to what it was.
    let size = b.store_size().await;
    b.click_contact("Alice Smith", ".act-view").await;
    b.wait("document.querySelector('.contacts-selected:not([hidden]) .card-name')?.textContent === 'Alice Smith'")
        .await;
    b.wait("document.querySelector('.card-emergency')?.textContent === 'Bob Johnson'").await;
    b.settle().await;
    assert!(b.store_size().await > size);
    b.click(".contacts-close").await;
    b.wait("document.querySelector('.contacts-selected').hidden && !document.querySelector('.card-name')").await;
    b.settle().await;
    assert_eq!(b.store_size().await, size);

    // Edit Alice again: the select shows Bob (the value arrived before its options, docs/attributes.md "ui-value").
    b.click_contact("Alice Smith", ".act-edit").await;
    b.wait(FORM_SHOWN).await;
    b.wait("(() => { const s = document.querySelector('.f-emergency'); return s.value === '0' && s.selectedOptions[0]?.textContent.trim() === 'Bob Johnson'; })()").await;
    b.click(".f-cancel").await;
    b.wait(&format!("!({FORM_SHOWN})")).await;

    // Edit Bob's phone; More on his row shows it.
    b.click_contact("Bob Johnson", ".act-edit").await;
    b.wait("document.querySelector('.f-first')?.value === 'Bob'").await;
    b.fill(".f-phone", "555-9999").await;
    b.click(".f-save").await;
    b.wait(&format!("!({FORM_SHOWN})")).await;
    b.click_contact("Bob Johnson", ".act-more").await;
    b.wait(&format!("(() => {{ {CONTACT_JS} const r = row('Bob Johnson'); return r.classList.contains('expanded') && getComputedStyle(r.querySelector('.contact-phone')).display !== 'none' && r.querySelector('.contact-phone-value').textContent === '555-9999'; }})()")).await;

    // Add with empty fields: an error, the form stays; then Dan Brown lands in sorted position.
    b.click(".contacts-add").await;
    b.wait(FORM_SHOWN).await;
    b.click(".f-save").await;
    b.wait("(() => { const e = document.querySelector('.form-error'); return e && !e.hidden && e.textContent === 'First name is required'; })()").await;
    assert_eq!(b.eval(FORM_SHOWN).await, json!(true));
    b.fill(".f-first", "Dan").await;
    b.fill(".f-last", "Brown").await;
    b.fill(".f-email", "dan@example.com").await;
    b.click(".f-save").await;
    b.wait(&format!("!({FORM_SHOWN})")).await;
    b.wait_contacts(&["Alice Smith", "Bob Johnson", "Carol Williams", "Dan Brown"]).await;
    count_is(&b, 4).await;

    // Bob is still expanded; Aaron Adams goes first and Bob's row stays expanded (identity).
    b.click(".contacts-add").await;
    b.wait(FORM_SHOWN).await;
    b.fill(".f-first", "Aaron").await;
    b.fill(".f-last", "Adams").await;
    b.click(".f-save").await;
    b.wait_contacts(&["Aaron Adams", "Alice Smith", "Bob Johnson", "Carol Williams", "Dan Brown"]).await;
    b.wait(&format!("(() => {{ {CONTACT_JS} return rows().filter(r => r.classList.contains('expanded')).map(r => r.querySelector('.contact-name').textContent).join() === 'Bob Johnson'; }})()")).await;

    // Delete Carol while she is selected: one row fewer, count drops, the box empties.
    b.click_contact("Carol Williams", ".act-view").await;
    b.wait("document.querySelector('.card-name')?.textContent === 'Carol Williams'").await;
    b.click_contact("Carol Williams", ".act-delete").await;
    b.wait_contacts(&["Aaron Adams", "Alice Smith", "Bob Johnson", "Dan Brown"]).await;
    count_is(&b, 4).await;
    b.wait("document.querySelector('.contacts-selected').hidden && !document.querySelector('.card-name')").await;
    b.settle().await;
    assert_eq!(b.count(".ui-error").await, 0);

    b.click_contact("Alice Smith", ".act-view").await;
    b.wait("document.querySelector('.card-name')?.textContent === 'Alice Smith'").await;
    b.settle().await;
    b.screenshot("contacts").await;
    b.close().await;
}

// ---------------------------------------------------------------------------------------------
// The built-in demo: a gallery around the click counter
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn gallery() {
    let gw = gateway(None).await;
    let b = Browser::launch().await;
    open_app(&b, &gw).await;
    b.wait("document.querySelector('.counter-count')?.textContent === '0'").await;
    b.click(".counter-inc").await;
    b.click(".counter-inc").await;
    b.wait("document.querySelector('.counter-count').textContent === '2'").await;

    b.click(".nav-adder").await;
    b.wait("document.querySelector('.gallery-app h1')?.textContent === 'Simple Adder'").await;
    b.fill(".adder-a", "2").await;
    b.fill(".adder-b", "3").await;
    b.wait("document.querySelector('.adder-sum').textContent === '5'").await;

    b.click(".nav-tasks").await;
    b.wait_tasks(&["Buy milk", "Write spec", "Walk dog"]).await;
    b.fill_no_blur(".tasks-input", "Try the gallery").await;
    b.type_into(".tasks-input", ENTER).await;
    b.wait_tasks(&["Buy milk", "Write spec", "Walk dog", "Try the gallery"]).await;

    b.click(".nav-contacts").await;
    b.wait_contacts(&["Alice Smith", "Bob Johnson", "Carol Williams"]).await;
    b.settle().await;
    // Switching apps replaces the previous one (its old nodes go at the reveal) and the stale
    // notices for the previous app's variables are not shown as errors.
    b.wait("[...document.querySelectorAll('.gallery-app main')].filter(m => !m.closest('.ui-new-view')).length === 1")
        .await;
    assert_eq!(b.eval("document.getElementById('ui-status').hidden").await, json!(true));
    b.screenshot("gallery-contacts").await;

    // Each app keeps its state while another tab is shown.
    b.click(".nav-adder").await;
    b.wait("document.querySelector('.adder-sum')?.textContent === '5'").await;
    b.click(".nav-home").await;
    b.wait("document.querySelector('.counter-count')?.textContent === '2' && !document.querySelector('.home').hidden")
        .await;
    b.settle().await;
    assert_eq!(b.count(".ui-error").await, 0);
    b.screenshot("gallery").await;
    b.close().await;
}

// ---------------------------------------------------------------------------------------------
// two tabs on one session
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn two_tabs_stay_in_sync() {
    // Adder: values typed in A appear in B with the sum; a focused, edited field keeps its text.
    let gw = gateway(Some("adder")).await;
    let a = Browser::launch().await;
    let b = Browser::launch().await;
    let url = open_app(&a, &gw).await;
    b.goto(&url).await;
    b.settle().await;
    for t in [&a, &b] {
        t.wait("document.querySelector('h1')?.textContent === 'Simple Adder'").await;
        // Both count client ids from 2.
        assert_eq!(t.eval("window.uiGateway.store.get(2).props.path").await, json!("a"));
    }
    a.fill(".adder-a", "4").await;
    a.fill(".adder-b", "5").await;
    b.wait("document.querySelector('.adder-a').value === '4' && document.querySelector('.adder-b').value === '5'")
        .await;
    b.wait("document.querySelector('.adder-sum').textContent === '9'").await;

    // A edits without leaving the field; B changes the same field: A keeps its text.
    a.fill_no_blur(".adder-a", "7").await;
    b.fill(".adder-a", "1").await;
    a.wait("document.querySelector('.adder-sum').textContent === '6'").await;
    assert_eq!(a.value(".adder-a").await, "7");
    // After A's blur both show A's text.
    a.blur().await;
    b.wait(
        "document.querySelector('.adder-a').value === '7' && document.querySelector('.adder-sum').textContent === '12'",
    )
    .await;
    a.wait("document.querySelector('.adder-sum').textContent === '12'").await;
    for t in [&a, &b] {
        t.settle().await;
        assert_eq!(t.count(".ui-error").await, 0);
    }
    // Closing B leaves A working, and the server drops exactly B's variables.
    let session = session_of(&url);
    let before = server_vars(gw.addr, &session).await;
    let b_vars = b.store_size().await as usize - 1; // all but the shared variable 1
    b.close().await;
    a.wait_server_vars(gw.addr, &session, before - b_vars).await;
    a.fill(".adder-b", "3").await;
    a.wait("document.querySelector('.adder-sum').textContent === '10'").await;
    a.close().await;

    // Tasks: a task added in B appears in A, a tick in A shows in B.
    let gw = gateway(Some("tasks")).await;
    let a = Browser::launch().await;
    let b = Browser::launch().await;
    let url = open_app(&a, &gw).await;
    b.goto(&url).await;
    b.settle().await;
    b.fill_no_blur(".tasks-input", "From B").await;
    b.type_into(".tasks-input", ENTER).await;
    a.wait_tasks(&["Buy milk", "Write spec", "Walk dog", "From B"]).await;
    a.click_task("From B", ".task-done").await;
    task_row_is(&b, "From B", true).await;
    left(&b, 2).await;
    for t in [&a, &b] {
        t.settle().await;
        assert_eq!(t.count(".ui-error").await, 0);
    }
    a.close().await;
    b.close().await;
}

// ---------------------------------------------------------------------------------------------
// dropped WebSocket: drop() and a real network cut
// ---------------------------------------------------------------------------------------------

async fn survives_a_drop(b: &mut Browser, gw_addr: std::net::SocketAddr, cut: impl AsyncFnOnce(&Browser)) {
    b.wait_tasks(&["Buy milk", "Write spec", "Walk dog"]).await;
    b.fill_no_blur(".tasks-input", "Keep me").await;
    b.type_into(".tasks-input", ENTER).await;
    b.wait_tasks(&["Buy milk", "Write spec", "Walk dog", "Keep me"]).await;
    b.click_task("Keep me", ".task-done").await;
    task_row_is(b, "Keep me", true).await;
    b.select(".tasks-filter", "done").await;
    b.wait_tasks(&["Write spec", "Keep me"]).await;
    b.settle().await;
    let sockets = b.sockets().await.len();
    let size = b.store_size().await;
    let session = session_of(&b.url().await);
    let vars = server_vars(gw_addr, &session).await;
    b.js(&format!("window.__marker = 'still here'; {WATCH_DISCONNECTED}"), vec![]).await;

    cut(b).await;
    // ui-disconnected appears, then goes once a new socket is open; no reload happened.
    b.wait("window.__sawDisconnected === true").await;
    b.wait("!document.documentElement.hasAttribute('ui-disconnected')").await;
    b.settle().await;
    assert_eq!(b.eval("window.__marker").await, json!("still here"));
    b.wait_tasks(&["Write spec", "Keep me"]).await;
    task_row_is(b, "Keep me", true).await;
    assert_eq!(b.value(".tasks-filter").await, "done");
    assert_eq!(b.store_size().await, size);
    b.wait_server_vars(gw_addr, &session, vars).await;

    // The new socket's first frame is watch 1 and its ids restart at 2.
    let all = b.sockets().await;
    assert!(all.len() > sockets, "a new socket was opened");
    let newest = all.last().unwrap().clone();
    let frames: Vec<_> = b.frames().await.into_iter().filter(|f| f.sent && f.socket == newest).collect();
    assert_eq!(frames[0].json, json!({"userEvent":false,"messages":[{"type":"watch","data":{"varId":1}}]}));
    let first_create = frames.iter().flat_map(|f| messages(&f.json)).find(|m| m["type"] == "create").unwrap();
    assert_eq!(first_create["data"]["id"], json!(2));

    // Adding a task works.
    b.select(".tasks-filter", "all").await;
    b.fill_no_blur(".tasks-input", "After the drop").await;
    b.type_into(".tasks-input", ENTER).await;
    b.wait_tasks(&["Buy milk", "Write spec", "Walk dog", "Keep me", "After the drop"]).await;
    b.settle().await;
    assert_eq!(b.count(".ui-error").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn reconnects_after_drop() {
    let gw = gateway(Some("tasks")).await;
    let mut b = Browser::launch().await;
    open_app(&b, &gw).await;
    survives_a_drop(&mut b, gw.addr, async |b: &Browser| {
        b.js("window.uiGateway.drop();", vec![]).await;
    })
    .await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn reconnects_after_a_network_cut() {
    let gw = gateway(Some("tasks")).await;
    let relay = Relay::start(gw.addr).await;
    let mut b = Browser::launch().await;
    b.goto(&format!("http://{}/", relay.addr)).await;
    b.settle().await;
    survives_a_drop(&mut b, gw.addr, async |_: &Browser| relay.cut()).await;
    b.screenshot("tasks-after-reconnect").await;
    b.close().await;
}

// ---------------------------------------------------------------------------------------------
// session ended
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn restarted_gateway_ends_the_session() {
    let gw = gateway(Some("adder")).await;
    let addr = gw.addr;
    let b = Browser::launch().await;
    open_app(&b, &gw).await;
    b.wait("document.querySelector('h1')?.textContent === 'Simple Adder'").await;
    assert!(gw.shutdown(std::time::Duration::from_secs(5)).await);
    let mut args = site_args(Some("adder"));
    args.listen = addr;
    let _gw = gateway_with(args).await;
    b.wait("window.uiGateway.state === 'ended'").await;
    b.wait("document.getElementById('ui-status').textContent.includes('This session has ended.')").await;
    b.click("#ui-status a[href='/']").await;
    b.settle().await;
    b.wait("document.querySelector('h1')?.textContent === 'Simple Adder'").await;
    b.fill(".adder-a", "1").await;
    b.fill(".adder-b", "1").await;
    b.wait("document.querySelector('.adder-sum').textContent === '2'").await;
    b.close().await;
}

// ---------------------------------------------------------------------------------------------
// error display, and a Lua error in an action
// ---------------------------------------------------------------------------------------------

const ERRORS_LUA: &str = r#"
App = session:prototype("App", {data = 1, n = 0})
function App:boom() error("boom") end
function App:fix() self.data = {x = "fixed"} end
function App:inc() self.n = self.n + 1 end
session:createAppVariable(App:new())
"#;
const ERRORS_VIEW: &str = r#"<template><div class="errors">
  <span class="x" ui-value="data.x"></span>
  <button class="boom" ui-action="boom()">Boom</button>
  <button class="fix" ui-action="fix()">Fix</button>
  <button class="inc" ui-action="inc()">Inc</button>
  <span class="n" ui-value="n"></span>
</div></template>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn errors_are_shown_and_the_page_keeps_working() {
    let dir = temp_site(&[("lua/main.lua", ERRORS_LUA), ("viewdefs/App.DEFAULT.html", ERRORS_VIEW)]);
    let mut args = site_args(None);
    args.site = Some(dir);
    let gw = gateway_with(args).await;
    let b = Browser::launch().await;
    open_app(&b, &gw).await;
    // `data.x` while data is a number: path-failure on the bound element.
    b.wait("document.querySelector('.x')?.classList.contains('ui-error') && document.querySelector('.x').getAttribute('ui-error-code') === 'path-failure'").await;
    // A Lua error in an action marks the button; the page keeps working.
    b.click(".boom").await;
    b.wait("document.querySelector('.boom').classList.contains('ui-error') && document.querySelector('.boom').getAttribute('ui-error-code') === 'lua-error'").await;
    b.click(".inc").await;
    b.wait("document.querySelector('.n').textContent === '1'").await;
    // Making `data` a table with `x` removes the error and shows the value.
    b.click(".fix").await;
    b.wait("document.querySelector('.x').textContent === 'fixed' && !document.querySelector('.x').classList.contains('ui-error') && !document.querySelector('.x').hasAttribute('ui-error-code')").await;
    b.settle().await;
    b.screenshot("errors").await;
    b.close().await;
}

// ---------------------------------------------------------------------------------------------
// generic sl-* elements (undefined: no Shoelace is loaded)
// ---------------------------------------------------------------------------------------------

const SL_LUA: &str = r#"
App = session:prototype("App", {name = "", on = false, pick = "b"})
function App:setAll() self.name = "from server"; self.on = true; self.pick = "c" end
session:createAppVariable(App:new())
"#;
const SL_VIEW: &str = r#"<template><div class="sl">
  <sl-input class="si" ui-value="name"></sl-input>
  <sl-checkbox class="sc" ui-value="on"></sl-checkbox>
  <sl-select class="ss" ui-value="pick"></sl-select>
  <button class="set" ui-action="setAll()">Set</button>
  <span class="echo-name" ui-value="name"></span>
  <span class="echo-on" ui-value="on"></span>
  <span class="echo-pick" ui-value="pick"></span>
</div></template>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn generic_sl_elements() {
    let dir = temp_site(&[("lua/main.lua", SL_LUA), ("viewdefs/App.DEFAULT.html", SL_VIEW)]);
    let mut args = site_args(None);
    args.site = Some(dir);
    let gw = gateway_with(args).await;
    let mut b = Browser::launch().await;
    open_app(&b, &gw).await;
    // Properties are set on elements that are not defined.
    b.wait("document.querySelector('.ss')?.value === 'b' && document.querySelector('.sc').checked === false && document.querySelector('.si').value === ''").await;
    let n = b.sent_count().await;
    let fire = "const [css, prop, v] = arguments; const e = document.querySelector(css); e[prop] = v;
                e.dispatchEvent(new Event('sl-change', {bubbles: true}));";
    b.js(fire, vec![json!(".si"), json!("value"), json!("typed")]).await;
    b.js(fire, vec![json!(".sc"), json!("checked"), json!(true)]).await;
    b.js(fire, vec![json!(".ss"), json!("value"), json!("a")]).await;
    // The server received a string, a boolean and the selection (its other bindings show them).
    b.wait("document.querySelector('.echo-name').textContent === 'typed' && document.querySelector('.echo-on').textContent === 'true' && document.querySelector('.echo-pick').textContent === 'a'").await;
    let values: Vec<_> = b.sent_after(n).await.iter().flat_map(messages).map(|m| m["data"]["value"].clone()).collect();
    assert_eq!(values, vec![json!("typed"), json!(true), json!("a")]);
    // Server updates set the elements' properties.
    b.click(".set").await;
    b.wait("document.querySelector('.si').value === 'from server' && document.querySelector('.sc').checked === true && document.querySelector('.ss').value === 'c'").await;
    b.settle().await;
    assert_eq!(b.count(".ui-error").await, 0);
    b.close().await;
}

// ---------------------------------------------------------------------------------------------
// reload with a backend: connected and hybrid mode
// ---------------------------------------------------------------------------------------------

/// Gateway arguments for a backend-driven example site.
fn backend_site_args(site: &str, mode: ui_gateway::config::Mode) -> ui_gateway::config::ServeArgs {
    let mut args = site_args(Some(site));
    args.mode = mode;
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn a_reload_renders_with_a_backend() {
    use ui_gateway::config::Mode;
    use ui_gateway_client::{Client, ClientConfig};

    // Connected: the only tab reloads, so variable 1's tally falls to 0 and the new page's watch goes
    // to the backend; the page must still get the type (and viewdefs) and render the current count.
    let gw = gateway_with(backend_site_args("counter_backend/site", Mode::Connected)).await;
    let backend =
        Client::new(ClientConfig::new(format!("ws://{}/backend", gw.addr))).connected(counter::app).start().unwrap();
    let b = Browser::launch().await;
    let url = open_app(&b, &gw).await;
    b.wait("document.querySelector('button') !== null").await;
    b.click("button").await;
    b.click("button").await;
    b.wait("document.querySelector('span')?.textContent === '2'").await;
    for round in 0..2 {
        b.js("location.reload()", vec![]).await;
        b.wait("document.querySelector('button') !== null").await;
        b.wait("document.querySelector('span')?.textContent === '2'").await;
        assert_eq!(b.url().await, url, "round {round}: the same session");
    }
    b.click("button").await;
    b.wait("document.querySelector('span')?.textContent === '3'").await;
    b.settle().await;
    assert_eq!(b.count(".ui-error").await, 0);
    b.close().await;
    backend.stop();

    // Hybrid: Lua owns variable 1, the backend feeds client variables; after a reload the page renders
    // again and the backend's numbers keep arriving.
    let gw = gateway_with(backend_site_args("dashboard_backend/site", Mode::Hybrid)).await;
    let backend =
        Client::new(ClientConfig::new(format!("ws://{}/backend", gw.addr))).hybrid(dashboard::app).start().unwrap();
    let b = Browser::launch().await;
    open_app(&b, &gw).await;
    b.wait("Number(document.querySelector('[ui-value=samples]')?.textContent) > 0").await;
    b.js("location.reload()", vec![]).await;
    b.wait("document.querySelector('h1') !== null").await;
    b.wait("Number(document.querySelector('[ui-value=samples]')?.textContent) > 1").await;
    b.settle().await;
    assert_eq!(b.count(".ui-error").await, 0);
    b.close().await;
    backend.stop();
}
