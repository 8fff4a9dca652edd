//! A counter in connected mode: the backend owns the whole UI state.
//!
//! ```text
//! ui-gateway --mode connected --site examples/counter_backend/site
//! cargo run -p ui-gateway-client --example counter
//! ```
//!
//! `UI_BACKEND_URL` (default `ws://127.0.0.1:8000/backend`) and `UI_BACKEND_TOKEN` say where to
//! connect. This is the `counter` fixture of `protocol/vectors/fixtures/apps.md`: `Counter{count=0, increment()}`.

use ui_gateway_client::ui_object;
use ui_gateway_client::{Client, ClientError, Obj, Session};

pub struct Counter {
    pub count: i64,
}

impl Counter {
    fn increment(&mut self) {
        self.count += 1;
    }
}

ui_object!(Counter {
    fields { count }
    methods { increment() }
});

/// Each browser session gets its own counter.
pub fn app(_session: &mut Session) -> Obj<Counter> {
    Obj::new(Counter { count: 0 })
}

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    tracing_subscriber::fmt::init();
    Client::from_env().connected(app).run().await
}
