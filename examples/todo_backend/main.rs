//! A to-do list in connected mode, with objects in a list (stable identity per item).
//!
//! ```text
//! ui-gateway --mode connected --site examples/todo_backend/site
//! cargo run -p ui-gateway-client --example todo
//! ```
//!
//! This is the `todo` fixture of `protocol/vectors/fixtures/apps.md`: `TodoApp{items=[milk (not done), eggs (done)], newText="", add(),
//! clearDone(), remaining()}` with `TodoItem{text, done, toggle()}`.

use ui_gateway_client::ui_object;
use ui_gateway_client::{Client, ClientError, Obj, Session};

pub struct TodoItem {
    pub text: String,
    pub done: bool,
}

impl TodoItem {
    pub fn new(text: &str, done: bool) -> Obj<TodoItem> {
        Obj::new(TodoItem { text: text.to_string(), done })
    }

    fn toggle(&mut self) {
        self.done = !self.done;
    }
}

ui_object!(TodoItem {
    fields { text, done }
    methods { toggle() }
});

pub struct TodoApp {
    pub items: Vec<Obj<TodoItem>>,
    pub new_text: String,
}

impl TodoApp {
    /// Appends a not-done item if `newText` is not empty, and clears `newText`.
    fn add(&mut self) {
        let text = std::mem::take(&mut self.new_text);
        if !text.is_empty() {
            self.items.push(TodoItem::new(&text, false));
        }
    }

    /// Drops the done items.
    fn clear_done(&mut self) {
        self.items.retain(|item| !item.borrow().done);
    }

    /// How many items are not done.
    fn remaining(&self) -> usize {
        self.items.iter().filter(|item| !item.borrow().done).count()
    }
}

ui_object!(TodoApp {
    fields { items, new_text as "newText" }
    methods { add(), clear_done() as "clearDone", remaining() }
});

/// Each browser session starts with the same two items.
pub fn app(_session: &mut Session) -> Obj<TodoApp> {
    Obj::new(TodoApp {
        items: vec![TodoItem::new("milk", false), TodoItem::new("eggs", true)],
        new_text: String::new(),
    })
}

#[tokio::main]
async fn main() -> Result<(), ClientError> {
    tracing_subscriber::fmt::init();
    Client::from_env().connected(app).run().await
}
