//! One task per session: the factory builds the app state, then gateway batches and handle closures
//! are applied in arrival order and each one's reply goes to the current connection.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::session::{Input, Mode, Reply, Root, Session};
use crate::ids::VendedId;
use crate::protocol::backend::encode_batches;

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
    /// Sends a session's reply as one batch, split into frames under the gateway's frame limit.
    pub fn send(&self, session: VendedId, reply: Reply) {
        let tx = self.tx.borrow();
        let Some(tx) = tx.as_ref() else {
            tracing::debug!(session = %session, "gateway away: reply dropped");
            return;
        };
        // Before the first welcome the limit is unknown (0): no splitting.
        let max = match self.max_frame.get() {
            0 => usize::MAX,
            n => n,
        };
        for text in encode_batches(session, reply.user_event, &reply.messages, max) {
            let _ = tx.send(text);
        }
    }
}

pub(crate) fn spawn<A: Root>(id: VendedId, mode: Mode, factory: Factory<A>, link: Rc<Link>) -> UnboundedSender<Input> {
    let (tx, rx) = unbounded_channel();
    tokio::task::spawn_local(run(id, mode, factory, link, tx.clone(), rx));
    tx
}

async fn run<A: Root>(
    id: VendedId,
    mode: Mode,
    factory: Factory<A>,
    link: Rc<Link>,
    tx: UnboundedSender<Input>,
    mut rx: UnboundedReceiver<Input>,
) {
    let mut session = Session::new(id, mode, tx);
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
                session.apply_batch(messages, user_event, first, replay)
            }
            Input::Run(job) => session.run(&mut app, job),
            Input::Close => break,
        };
        if let Some(reply) = reply {
            link.send(id, reply);
        }
    }
    tracing::debug!(session = %id, "session state dropped");
}
