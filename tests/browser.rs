//! End-to-end tests in a real headless Chromium (frontend.md §14, §15). Ignored by default so a plain
//! `cargo test` needs only Rust; CI runs them with `cargo test --test browser -- --include-ignored`.

#[path = "browser/harness.rs"]
mod harness;

use harness::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver"]
async fn adder_smoke() {
    let gw = gateway(Some("adder")).await;
    let mut b = Browser::launch().await;
    open_app(&b, &gw).await;
    b.wait("document.querySelector('h1') && document.querySelector('h1').textContent.includes('Simple Adder')").await;
    let sent = b.sent().await;
    assert_eq!(sent[0], json!({"userEvent":false,"messages":[{"type":"watch","data":{"varId":1}}]}));
    b.close().await;
}
