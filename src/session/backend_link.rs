//! [`BackendLink`]: where one session stands with the backend, and what it owes it.
//!
//! The link is a small state machine: no backend at all (embedded mode), live on backend connection
//! number `generation`, or away (an outage). While live, what the session produces for the backend
//! while processing one item collects in an outbox and leaves as one batch ([`BackendLink::emit`]).
//! While away, `update`s wait in a bounded buffer (by count, `--backend-session-buffer`, and by bytes,
//! `--backend-buffer-bytes`; the oldest go first and are counted) and state messages are dropped: the
//! replay on return reproduces their effect. The session decides *what* to send (routing by owner,
//! the replay's creates and watches); this type decides *whether and how* it travels.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::backend::{BackendHub, Sent};
use crate::ids::{ConnId, VarId, VendedId};
use crate::metrics::{metrics, Limit};
use crate::protocol::backend::encode_batches;
use crate::protocol::{ErrorCode, ErrorReport, Message, Update};
use crate::tracker::json_bytes;

#[derive(Debug)]
enum State {
    /// Embedded mode: there is no backend.
    None,
    /// Not yet engaged: no worker chosen (the session is pinned when it first needs one).
    Unassigned,
    /// Served by worker connection `generation`; `opened` once it got a batch for the session.
    Live { generation: u64, opened: bool },
    /// No worker: `update`s for it wait in `buffer` (`bytes` by [`update_bytes`]); `dropped` counts
    /// what the bounds pushed out; `notified` are the connections told `backend-unavailable` in this
    /// outage; `warned` says the full-buffer warning was logged. `quiet`: the session is between two
    /// workers (its worker dropped and may return, or another takes it): browsers are not told.
    Away {
        buffer: VecDeque<Update>,
        bytes: usize,
        dropped: usize,
        notified: HashSet<ConnId>,
        warned: bool,
        quiet: bool,
    },
}

impl State {
    fn away(quiet: bool) -> State {
        State::Away { buffer: VecDeque::new(), bytes: 0, dropped: 0, notified: HashSet::new(), warned: false, quiet }
    }
}

/// The session's side of the backend link.
#[derive(Debug)]
pub(super) struct BackendLink {
    state: State,
    /// What the current item produced for the backend.
    outbox: Vec<Message>,
    hub: Option<Arc<BackendHub>>,
}

/// What [`BackendLink::emit`] found.
#[derive(Debug)]
pub(super) enum Emitted {
    /// Sent, or nothing to send.
    Done,
    /// Backend connection `generation` is gone and the session had not heard yet: it must go through
    /// its outage handling; `updates` are the batch's updates, to be buffered afterwards.
    Down { generation: u64, updates: Vec<Update> },
}

/// What returning from an outage hands back: the buffered updates and how many the bounds dropped.
#[derive(Debug, Default)]
pub(super) struct Backlog {
    pub updates: VecDeque<Update>,
    pub dropped: usize,
}

impl BackendLink {
    /// The link of a new session: none in embedded mode, else not yet assigned to a worker.
    pub fn new(hub: Option<Arc<BackendHub>>) -> BackendLink {
        let state = if hub.is_some() { State::Unassigned } else { State::None };
        BackendLink { state, outbox: Vec::new(), hub }
    }

    /// The session got its first browser frame: it needs a worker now. The pool pins it to one, or it
    /// is away until a worker connects (browsers hear `backend-unavailable` as in any outage).
    pub fn engage(&mut self, vended: VendedId) {
        if !matches!(self.state, State::Unassigned) {
            return;
        }
        let Some(hub) = &self.hub else { return };
        self.state = match hub.assign(vended) {
            Some(generation) => State::Live { generation, opened: false },
            None => State::away(false),
        };
    }

    /// A worker addressed the session before any browser did: the pool pinned it to that worker.
    pub fn adopt(&mut self, generation: u64) {
        if matches!(self.state, State::Unassigned) {
            self.state = State::Live { generation, opened: false };
        }
    }

    /// Whether the session works with a backend at all (connected or hybrid mode).
    pub fn enabled(&self) -> bool {
        !matches!(self.state, State::None)
    }

    pub fn is_live(&self) -> bool {
        matches!(self.state, State::Live { .. })
    }

    pub fn is_away(&self) -> bool {
        matches!(self.state, State::Away { .. })
    }

    /// The backend connection the session is live on.
    pub fn live_generation(&self) -> Option<u64> {
        match self.state {
            State::Live { generation, .. } => Some(generation),
            _ => None,
        }
    }

    /// Updates waiting for the backend (the buffered-messages gauge).
    pub fn buffered(&self) -> usize {
        match &self.state {
            State::Away { buffer, .. } => buffer.len(),
            _ => 0,
        }
    }

    /// Queues a message for this item's batch (errors for the backend, forwarded watches).
    pub fn queue(&mut self, msg: Message) {
        self.outbox.push(msg);
    }

    /// Queues a message that only changes the backend's picture of gateway state (`create`,
    /// `destroy`, `watch`, `unwatch`): sent when live, otherwise dropped (the replay reproduces it).
    pub fn queue_state(&mut self, msg: Message) {
        if self.is_live() {
            self.outbox.push(msg);
        }
    }

    /// Queues an `update` for the backend: sent when live, buffered during an outage. Returns whether it
    /// was buffered (the writer's connection is then owed its `backend-unavailable`).
    pub fn queue_update(&mut self, vended: VendedId, update: Update) -> bool {
        let (limit, limit_bytes) =
            self.hub.as_ref().map_or((0, 0), |h| (h.limits.session_buffer.max(1), h.bytes.buffer_bytes));
        match &mut self.state {
            State::None | State::Unassigned => false,
            State::Live { .. } => {
                self.outbox.push(Message::Update(update));
                false
            }
            State::Away { buffer, bytes, dropped, warned, .. } => {
                *bytes += update_bytes(&update);
                buffer.push_back(update);
                // By count, then by bytes; the newest message always stays (even one over the byte bound).
                while buffer.len() > limit || (*bytes > limit_bytes && buffer.len() > 1) {
                    let over_bytes = buffer.len() <= limit;
                    if let Some(old) = buffer.pop_front() {
                        *bytes = bytes.saturating_sub(update_bytes(&old));
                    }
                    *dropped += 1;
                    metrics().backend_dropped.inc();
                    if over_bytes {
                        metrics().limit_hit(Limit::BackendBufferBytes);
                    }
                    if !*warned {
                        *warned = true;
                        tracing::warn!(vended = %vended, "backend buffer full: dropping the oldest updates");
                    }
                }
                true
            }
        }
    }

    /// Whether `conn` is yet to hear `backend-unavailable` in this outage (and now counts as told).
    pub fn first_notice(&mut self, conn: ConnId) -> bool {
        match &mut self.state {
            State::Away { notified, quiet: false, .. } => notified.insert(conn),
            _ => false,
        }
    }

    /// No worker took the session when its worker's grace ended: the outage is real from now on.
    /// Returns whether it was quiet until now (browsers are owed their notice).
    pub fn lost(&mut self) -> bool {
        match &mut self.state {
            State::Away { quiet, .. } if *quiet => {
                *quiet = false;
                true
            }
            _ => false,
        }
    }

    /// Buffered updates of variables destroyed meanwhile are discarded (uncounted): the replay no
    /// longer creates those variables, so the backend could not even address them.
    pub fn forget_buffered(&mut self, gone: &HashSet<VarId>) {
        if let State::Away { buffer, bytes, .. } = &mut self.state {
            buffer.retain(|u| !gone.contains(&u.var_id));
            *bytes = buffer.iter().map(update_bytes).sum();
        }
    }

    /// Sends what this item produced as one batch (split only above the frame limit). The session's
    /// first batch on a connection is its open notice, sent even when empty once it is `engaged`.
    pub fn emit(&mut self, vended: VendedId, engaged: bool, user_event: bool) -> Emitted {
        let messages = std::mem::take(&mut self.outbox);
        let State::Live { generation, opened } = &mut self.state else { return Emitted::Done };
        if messages.is_empty() && (*opened || !engaged) {
            return Emitted::Done;
        }
        let generation = *generation;
        let Some(hub) = self.hub.clone() else { return Emitted::Done };
        if !hub.is_live(generation) {
            // The link dropped and this session has not been told yet: it is an outage already, so
            // the batch's updates go to the outage buffer instead of into a dead connection.
            let updates = messages
                .into_iter()
                .filter_map(|m| match m {
                    Message::Update(u) => Some(u),
                    _ => None,
                })
                .collect();
            return Emitted::Down { generation, updates };
        }
        *opened = true;
        for text in encode_batches(vended, user_event, &messages, hub.limits.max_frame_bytes) {
            if hub.send(generation, text) == Sent::NotConnected {
                return Emitted::Down { generation, updates: Vec::new() };
            }
        }
        Emitted::Done
    }

    /// Worker connection `generation` is gone: the session is away from now on (`quiet`: it is being
    /// handed to another worker, browsers are not told). Returns false when it was not live on that
    /// connection (nothing to do).
    pub fn go_away(&mut self, generation: u64, quiet: bool) -> bool {
        if self.live_generation() != Some(generation) {
            return false;
        }
        self.state = State::away(quiet);
        self.outbox.clear();
        true
    }

    /// Worker connection `generation` now serves the session (it was away or unassigned): live on it,
    /// not yet opened. Returns what an outage left to send.
    pub fn go_live(&mut self, generation: u64) -> Backlog {
        match std::mem::replace(&mut self.state, State::Live { generation, opened: false }) {
            State::Away { buffer, dropped, .. } => Backlog { updates: buffer, dropped },
            other => {
                debug_assert!(!matches!(other, State::None), "embedded sessions have no link");
                Backlog::default()
            }
        }
    }

    /// The replay batch after an outage: `messages` (the session's creates and watches), a
    /// `limit-exceeded` error if the buffer dropped anything, then the buffered updates.
    pub fn queue_replay(&mut self, messages: Vec<Message>, backlog: Backlog) {
        self.outbox = messages;
        if backlog.dropped > 0 {
            self.outbox.push(error_message(
                VarId::NONE,
                ErrorCode::LimitExceeded,
                format!("{} buffered messages dropped", backlog.dropped),
            ));
        }
        self.outbox.extend(backlog.updates.into_iter().map(Message::Update));
    }
}

/// An `error` message for the backend.
pub(super) fn error_message(var_id: VarId, code: ErrorCode, description: impl Into<String>) -> Message {
    Message::Error(ErrorReport { var_id, code, description: description.into() })
}

/// What a buffered update weighs against `--backend-buffer-bytes`: its value's JSON size plus its
/// property texts and the envelope, without encoding it.
fn update_bytes(u: &Update) -> usize {
    const ENVELOPE: usize = 48;
    let props: usize = u.properties.iter().flatten().map(|p| p.name.len() + p.value.len() + 6).sum();
    ENVELOPE + u.value.as_ref().map_or(0, json_bytes) + props
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ByteLimits;
    use crate::protocol::backend::BackendLimits;

    fn hub(session_buffer: usize, buffer_bytes: usize) -> Arc<BackendHub> {
        let limits = BackendLimits { max_frame_bytes: 1 << 20, session_buffer, max_variables: 100 };
        let bytes = ByteLimits { buffer_bytes, ..ByteLimits::default() };
        Arc::new(BackendHub::new("connected", None, limits, bytes, Default::default()))
    }

    fn update(id: i64, text: &str) -> Update {
        Update { var_id: VarId(id), value: Some(text.into()), properties: None }
    }

    /// During an outage the buffer keeps the newest updates within its count and byte bounds, and the
    /// return hands them back in order with the number dropped.
    #[test]
    fn the_outage_buffer_is_bounded_and_replayed_in_order() {
        let mut link = BackendLink::new(Some(hub(3, 1 << 20)));
        link.engage(VendedId(1));
        assert!(link.is_away(), "no backend connected yet");
        for i in 2..8 {
            assert!(link.queue_update(VendedId(1), update(i, "x")));
        }
        assert_eq!(link.buffered(), 3);
        link.forget_buffered(&HashSet::from([VarId(6)]));
        let backlog = link.go_live(9);
        assert_eq!(backlog.dropped, 3);
        assert_eq!(backlog.updates.iter().map(|u| u.var_id.0).collect::<Vec<_>>(), vec![5, 7]);
        assert_eq!(link.live_generation(), Some(9));

        let mut link = BackendLink::new(Some(hub(100, 300)));
        link.engage(VendedId(1));
        for i in 2..10 {
            link.queue_update(VendedId(1), update(i, &"y".repeat(100)));
        }
        let backlog = link.go_live(1);
        assert!(backlog.updates.len() < 8 && !backlog.updates.is_empty(), "{}", backlog.updates.len());
        assert_eq!(backlog.updates.back().unwrap().var_id, VarId(9), "the newest stays");
    }

    /// State messages are dropped while away, and a notice is owed once per connection per outage.
    #[test]
    fn state_messages_and_notices_while_away() {
        let mut link = BackendLink::new(Some(hub(10, 1 << 20)));
        assert!(!link.first_notice(ConnId(1)), "not engaged yet: no outage");
        link.engage(VendedId(1));
        link.queue_state(Message::Watch(VarId(2)));
        assert!(link.first_notice(ConnId(1)));
        assert!(!link.first_notice(ConnId(1)));
        assert!(link.first_notice(ConnId(2)));
        link.go_live(4);
        assert!(link.outbox.is_empty());
        assert!(!link.first_notice(ConnId(1)), "no outage, no notice");
        assert!(link.go_away(4, false));
        assert!(!link.go_away(4, false), "already away");
        assert!(link.first_notice(ConnId(1)), "a new outage owes a new notice");
        link.go_live(5);
        assert!(link.go_away(5, true));
        assert!(!link.first_notice(ConnId(2)), "between two workers browsers are not told");
        assert!(link.lost());
        assert!(link.first_notice(ConnId(2)), "once no worker took it, they are");
    }
}
