//! [`Connections`]: the browser connections of one session, and the one way to queue something for
//! them. Every push goes through here so the flush delay, the priority bucket and "skip the writer"
//! are decided in one place instead of at each call site.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::connection::Connection;
use super::sink::{ConnSink, SendOutcome};
use crate::ids::{ConnId, VarId};
use crate::protocol::{Priority, ServerMessage};
use crate::site::Viewdefs;
use crate::tracker::Changes;

/// A session's connections, by id (ascending: the order every walk over them uses).
#[derive(Debug)]
pub(super) struct Connections {
    by_id: BTreeMap<ConnId, Connection>,
    /// `--flush-delay`: how long an update may wait for company before its frame goes out.
    flush_delay: Duration,
    /// `--max-connections` per session.
    max: usize,
}

impl Connections {
    pub fn new(flush_delay: Duration, max: usize) -> Connections {
        Connections { by_id: BTreeMap::new(), flush_delay, max }
    }

    /// Adds a connection unless the session is at its connection limit; returns whether it was added.
    pub fn admit(&mut self, id: ConnId, sink: ConnSink) -> bool {
        let accepted = self.by_id.len() < self.max;
        if accepted {
            self.by_id.insert(id, Connection::new(id, sink));
        }
        accepted
    }

    pub fn remove(&mut self, id: ConnId) -> Option<Connection> {
        self.by_id.remove(&id)
    }

    pub fn get(&self, id: ConnId) -> Option<&Connection> {
        self.by_id.get(&id)
    }

    pub fn get_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        self.by_id.get_mut(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Connection> {
        self.by_id.values()
    }

    pub fn ids(&self) -> Vec<ConnId> {
        self.by_id.keys().copied().collect()
    }

    /// Connections that watch `global`, ascending.
    pub fn watching(&self, global: VarId) -> Vec<ConnId> {
        self.iter().filter(|c| c.watches.contains(&global)).map(|c| c.id).collect()
    }

    pub fn is_watched(&self, global: VarId) -> bool {
        self.iter().any(|c| c.watches.contains(&global))
    }

    /// Queues an update (or a detection error) for one connection, in the medium bucket.
    pub fn push_update(&mut self, conn: ConnId, msg: ServerMessage) {
        let delay = self.flush_delay;
        if let Some(c) = self.by_id.get_mut(&conn) {
            c.push_update(msg, delay);
        }
    }

    /// Queues an error or destroy produced while processing this connection's own messages.
    pub fn push_notice(&mut self, conn: ConnId, msg: ServerMessage) {
        let delay = self.flush_delay;
        if let Some(c) = self.by_id.get_mut(&conn) {
            c.push_notice(msg, delay);
        }
    }

    /// Queues `msg` in priority bucket `bucket` for every connection watching `global`, except those in
    /// `skip` (the writer: a write is not echoed to its writer; watchers getting the full state instead).
    pub fn push_to_watchers(&mut self, global: VarId, msg: &ServerMessage, skip: &[ConnId], bucket: Priority) {
        let delay = self.flush_delay;
        for c in self.by_id.values_mut() {
            if !skip.contains(&c.id) && c.watches.contains(&global) {
                c.push_update_at(msg.clone(), delay, bucket);
            }
        }
    }

    /// Queues `msgs` for every connection watching `global`.
    pub fn push_all_to_watchers(&mut self, global: VarId, msgs: &[ServerMessage]) {
        let delay = self.flush_delay;
        for c in self.by_id.values_mut().filter(|c| c.watches.contains(&global)) {
            for msg in msgs {
                c.push_update(msg.clone(), delay);
            }
        }
    }

    /// Queues notice `msg` (first in the next frame, never merged with updates) for every connection.
    pub fn push_notice_to_all(&mut self, msg: &ServerMessage) {
        let delay = self.flush_delay;
        for c in self.by_id.values_mut() {
            c.push_notice(msg.clone(), delay);
        }
    }

    /// Queues `msg` for every connection.
    pub fn push_to_all(&mut self, msg: &ServerMessage) {
        let delay = self.flush_delay;
        for c in self.by_id.values_mut() {
            c.push_update(msg.clone(), delay);
        }
    }

    /// Variable `id` is gone: every connection that created or watched it gets its `destroy`.
    pub fn forget_variable(&mut self, id: VarId) {
        let delay = self.flush_delay;
        for c in self.by_id.values_mut() {
            if c.concerns(id) {
                c.forget(id, delay);
            }
        }
    }

    /// Hot reload changed viewdefs: each connection gets those of types it already has.
    pub fn push_reloaded_viewdefs(&mut self, changed: &BTreeMap<String, String>) {
        let delay = self.flush_delay;
        for c in self.by_id.values_mut() {
            c.push_reloaded_viewdefs(changed, delay);
        }
    }

    /// The pass after an item: each connection gets the detected changes of what it watches (minus
    /// its own writes), then the full state of each variable its watches asked for (`full_state`).
    pub fn deliver_pass(&mut self, changes: &Changes, full_state: impl Fn(VarId) -> Vec<ServerMessage>) {
        let delay = self.flush_delay;
        for c in self.by_id.values_mut() {
            let mut out = Vec::new();
            for item in &changes.items {
                if c.watches.contains(&item.var_id) && !c.full_requests.contains(&item.var_id) {
                    item.messages_for(Some(c.id.0), &mut out);
                }
            }
            for global in std::mem::take(&mut c.full_requests) {
                out.extend(full_state(global));
            }
            for msg in out {
                c.push_update(msg, delay);
            }
        }
    }

    /// When the earliest queued frame is due.
    pub fn next_flush(&self) -> Option<Instant> {
        self.iter().filter_map(Connection::flush_at).min()
    }

    /// Connections whose frame is due at `now`.
    pub fn due(&self, now: Instant) -> Vec<ConnId> {
        self.iter().filter(|c| c.flush_at().is_some_and(|t| t <= now)).map(|c| c.id).collect()
    }

    /// Sends one connection's queued frame; `Queued` also when the connection is unknown.
    pub fn flush(&mut self, conn: ConnId, viewdefs: &Viewdefs) -> SendOutcome {
        match self.by_id.get_mut(&conn) {
            Some(c) => c.flush(viewdefs),
            None => SendOutcome::Queued,
        }
    }

    /// Closes every connection's socket with `code` and `reason` (the session ends).
    pub fn close_all(&self, code: u16, reason: &'static str) {
        for c in self.iter() {
            c.close(code, reason);
        }
    }
}
