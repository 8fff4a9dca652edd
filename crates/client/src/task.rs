//! One task per session: the factory builds the app state, then gateway batches and handle closures
//! are applied in arrival order and each one's reply goes to the current connection.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use serde_json::Value as Json;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::handle::Input;
use super::session::{Mode, Root, Session};

/// Builds a session's app state (runs on the client thread).
pub(crate) type Factory<A> = Rc<dyn Fn(&mut Session) -> A>;

/// The current gateway connection's outbound queue, shared by the session tasks of the client thread.
/// Empty during an outage: replies are then dropped (the replay after the reconnect resynchronises).
#[derive(Default)]
pub(crate) struct Link {
    tx: RefCell<Option<UnboundedSender<String>>>,
    max_frame: Cell<usize>,
}

impl Link {
    pub fn set(&self, tx: UnboundedSender<String>, max_frame: usize) {
        *self.tx.borrow_mut() = Some(tx);
        self.max_frame.set(max_frame);
    }

    pub fn clear(&self) {
        self.tx.borrow_mut().take();
    }

    /// Sends a batch frame, split at message boundaries if it exceeds the gateway's frame limit.
    pub fn send(&self, frame: Json) {
        let tx = self.tx.borrow();
        let Some(tx) = tx.as_ref() else {
            tracing::debug!(session = %frame["session"], "gateway away: reply dropped");
            return;
        };
        for text in split(frame, self.max_frame.get()) {
            let _ = tx.send(text);
        }
    }
}

/// The frame's text, or several frames with the messages split in order when it is too big.
fn split(frame: Json, max: usize) -> Vec<String> {
    let text = frame.to_string();
    let n = frame["messages"].as_array().map_or(0, Vec::len);
    if max == 0 || text.len() <= max || n < 2 {
        return vec![text];
    }
    let mut first = frame;
    let rest = first["messages"].as_array_mut().expect("checked").split_off(n / 2);
    let mut second = first.clone();
    second["messages"] = Json::Array(rest);
    let mut out = split(first, max);
    out.extend(split(second, max));
    out
}

/// Starts the task of session `id` and returns its mailbox.
pub(crate) fn spawn<A: Root>(id: &str, mode: Mode, factory: Factory<A>, link: Rc<Link>) -> UnboundedSender<Input> {
    let (tx, rx) = unbounded_channel();
    tokio::task::spawn_local(run(id.to_string(), mode, factory, link, tx.clone(), rx));
    tx
}

async fn run<A: Root>(
    id: String,
    mode: Mode,
    factory: Factory<A>,
    link: Rc<Link>,
    tx: UnboundedSender<Input>,
    mut rx: UnboundedReceiver<Input>,
) {
    let mut session = Session::new(&id, mode, tx);
    let mut app = factory(&mut session);
    session.set_root(app.root());
    tracing::debug!(session = %id, "session state built");
    let mut seen: Option<u64> = None;
    while let Some(input) = rx.recv().await {
        let reply = match input {
            Input::Batch { messages, user_event, generation } => {
                let first = seen.is_none();
                let replay = seen.is_some_and(|g| g != generation);
                seen = Some(generation);
                session.apply_batch(&messages, user_event, first, replay)
            }
            Input::Run(job) => session.run(&mut app, job),
            Input::Close => break,
        };
        if let Some(frame) = reply {
            link.send(frame);
        }
    }
    tracing::debug!(session = %id, "session state dropped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn big_frames_split_at_message_boundaries() {
        let msgs: Vec<Json> =
            (0..8).map(|i| json!({"type":"update","data":{"varId":i,"value":"x".repeat(50)}})).collect();
        let frame = json!({"session":"1","userEvent":true,"messages":msgs});
        let whole = frame.to_string().len();
        assert_eq!(split(frame.clone(), whole).len(), 1);
        let parts = split(frame.clone(), whole / 3);
        assert!(parts.len() >= 3);
        let mut all = Vec::new();
        for p in &parts {
            assert!(p.len() <= whole / 3);
            let v: Json = serde_json::from_str(p).unwrap();
            assert_eq!(v["session"], "1");
            assert_eq!(v["userEvent"], true);
            all.extend(v["messages"].as_array().unwrap().clone());
        }
        assert_eq!(all, msgs);
    }
}
