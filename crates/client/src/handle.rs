//! [`SessionHandle`]: reaching a session's task from anywhere (timers, feeds, other threads).

use std::fmt;
use std::marker::PhantomData;

use tokio::sync::mpsc::UnboundedSender;

use super::error::ClientError;
use super::session::{Input, Job, Session};

/// A cloneable, `Send` handle on one session. Closures sent through it run on the session's task
/// with the app state the factory built (`A`) and the [`Session`]; changes they make are detected
/// and sent to the gateway as one batch when they return.
pub struct SessionHandle<A> {
    tx: UnboundedSender<Input>,
    _app: PhantomData<fn(&mut A)>,
}

impl<A> Clone for SessionHandle<A> {
    fn clone(&self) -> Self {
        SessionHandle { tx: self.tx.clone(), _app: PhantomData }
    }
}

impl<A> fmt::Debug for SessionHandle<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHandle").field("closed", &self.tx.is_closed()).finish()
    }
}

impl<A: 'static> SessionHandle<A> {
    pub(crate) fn new(tx: UnboundedSender<Input>) -> Self {
        SessionHandle { tx, _app: PhantomData }
    }

    /// Queues `f` to run on the session's task. Fails with [`ClientError::SessionGone`] once the
    /// session was dropped (closed by the gateway, or a new gateway epoch): feeds stop there.
    pub fn run(&self, f: impl FnOnce(&mut A, &mut Session) + Send + 'static) -> Result<(), ClientError> {
        let job: Job = Box::new(move |app, session| match app.downcast_mut::<A>() {
            Some(app) => f(app, session),
            None => tracing::error!(session = %session.id(), "SessionHandle used with the wrong app type"),
        });
        self.tx.send(Input::Run(job)).map_err(|_| ClientError::SessionGone)
    }

    /// Like [`SessionHandle::run`] with only the app state.
    pub fn update(&self, f: impl FnOnce(&mut A) + Send + 'static) -> Result<(), ClientError> {
        self.run(move |app, _| f(app))
    }

    /// Whether the session is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

impl Session {
    /// A handle to reach this session from other tasks (timers, feeds). `A` must be the type the
    /// factory returns; closures for another type are never run.
    pub fn handle<A: 'static>(&self) -> SessionHandle<A> {
        SessionHandle::new(self.mailbox())
    }
}
