//! Browser messages bound for remote (backend-owned) variables, and the session's ownership routing.
//!
//! Remote variables live in [`RemoteVars`](super::remote::RemoteVars) (the mirror); Lua-owned ones in
//! the Lua tracker. The two never nest inside each other: a browser variable takes its parent's owner,
//! and a backend variable under a Lua parent is a *client variable* owned by Lua that the backend
//! watches like a tab would. What goes to the backend travels through the session's
//! [`BackendLink`](super::backend_link::BackendLink).

use std::collections::HashSet;

use serde_json::Value as Json;

use super::backend_link::Emitted;
use super::remote::{set_prop, Creator, RemoteVar};
use super::Session;
use crate::ids::{ConnId, VarId};
use crate::protocol::property::{decide, name as property, Decision, Writer};
use crate::protocol::{
    Create, ErrorCode, Message, Priority, Properties, PropertyWrite, ServerMessage, Update, UpdateOut,
};
use crate::tracker::Owner;

/// Whether a browser may set `name` to `value` on a remote variable under `--max-properties` and
/// `--max-property-bytes` (deletes always pass; refused properties are neither stored nor forwarded).
fn mirror_admits(var: Option<&RemoteVar>, limits: &crate::tracker::TrackerLimits, name: &str, value: &str) -> bool {
    if value.is_empty() {
        return true;
    }
    if name.len() + value.len() > limits.max_property_bytes {
        return false;
    }
    var.is_none_or(|v| v.props.0.iter().any(|(n, _)| n == name) || v.props.0.len() < limits.max_properties)
}

impl Session {
    pub(super) fn backend_mode(&self) -> bool {
        self.link.enabled()
    }

    /// Who resolves `id`, if it exists.
    pub(super) fn owner(&self, id: VarId) -> Option<Owner> {
        if self.lua.as_ref().is_some_and(|l| l.tracker().exists(id)) {
            Some(Owner::Lua)
        } else if self.remote.exists(id) {
            Some(Owner::Remote)
        } else {
            None
        }
    }

    /// Variables of every owner, for the per-session limit.
    pub(super) fn variable_count(&self) -> usize {
        self.lua.as_ref().map_or(0, |l| l.tracker().len()) + self.remote.len()
    }

    /// Queues an `update` for the backend: sent when live, buffered during an outage. `conn` (the
    /// writer) gets its one `backend-unavailable` of the outage.
    pub(super) fn update_to_backend(&mut self, conn: Option<ConnId>, update: Update) {
        if self.link.queue_update(self.vended, update) {
            if let Some(conn) = conn {
                self.notify_unavailable(conn);
            }
        }
    }

    /// One `backend-unavailable` on variable 1 per connection per outage.
    pub(super) fn notify_unavailable(&mut self, conn: ConnId) {
        if self.link.first_notice(conn) {
            let msg = ServerMessage::error(VarId::APP, ErrorCode::BackendUnavailable, "backend disconnected");
            self.connections.push_update(conn, msg);
        }
    }

    /// Sends what this item produced for the backend as one batch. A worker found gone on the way
    /// means the session is between workers: it goes away quietly with the batch's updates buffered;
    /// the departed worker's socket task then moves it (replay) or, when no worker is left, tells it
    /// the outage is real (`BackendLost`), which is when browsers hear of it.
    pub(super) fn emit_backend(&mut self, user_event: bool) {
        if let Emitted::Down { generation, updates } = self.link.emit(self.vended, self.engaged, user_event) {
            self.backend_down(generation, true);
            for update in updates {
                self.update_to_backend(None, update);
            }
        }
    }

    // ---- browser messages bound for remote variables -------------------------------------------

    /// A browser `create` under a remote parent (PROTOCOL.md B7): recorded, forwarded with `nowatch:true`, then
    /// watched unless the browser said `nowatch`.
    pub(super) fn create_remote(&mut self, conn: ConnId, create: Create, parent: VarId, global: VarId) {
        let mut props = Properties::default();
        let mut denied = Vec::new();
        let mut forwarded = Vec::new();
        for p in &create.properties {
            match decide(&p.name, Writer::Browser, true) {
                Decision::Drop => {}
                Decision::Deny => denied.push(p.name.as_str()),
                Decision::Store | Decision::Pin => {
                    set_prop(&mut props, &p.name, &p.value);
                    forwarded.push(p.clone());
                }
            }
        }
        if props.get(property::PATH).is_none_or(str::is_empty) {
            return self.error(conn, create.id, ErrorCode::BadMessage, "create needs a non-empty path");
        }
        self.remote.insert(global, Some(parent), Creator::Browser(conn), None, props);
        self.record_priorities(global, &forwarded);
        self.next_global += 1;
        if let Some(c) = self.connections.get_mut(conn) {
            c.map_id(create.id, global);
        }
        if !denied.is_empty() {
            self.error(conn, create.id, ErrorCode::AccessDenied, format!("may not set {}", denied.join(", ")));
        }
        self.link.queue_state(Message::Create(Create {
            id: global,
            parent_id: Some(parent),
            properties: forwarded,
            value: None,
            nowatch: true,
            unbound: false,
        }));
        if self.link.is_away() {
            self.notify_unavailable(conn);
        }
        if !create.nowatch {
            self.watch_remote(conn, global, false);
        }
    }

    /// A browser (or auto-) watch of a remote variable, or of a variable 1 that does not exist yet. The
    /// first watcher's watch goes to the backend, which answers; otherwise the mirror answers.
    pub(super) fn watch_remote(&mut self, conn: ConnId, global: VarId, explicit: bool) {
        let newly = self.connections.get_mut(conn).is_some_and(|c| c.watches.insert(global));
        let first = newly && self.tally(global);
        let live = self.link.is_live();
        let forwarded = first && live;
        if forwarded {
            self.link.queue(Message::Watch(global));
        }
        let readable = self.remote.get(global).is_some_and(|v| v.readable());
        let from_mirror = !forwarded || (explicit && !readable);
        let rewatch = self.remote.get(global).is_some_and(|v| v.watched_before);
        if let Some(var) = self.remote.get_mut(global) {
            var.watched_before = true;
        }
        if forwarded && !from_mirror && rewatch {
            // The backend answers this watch with an update, which the mirror applies as a change: a
            // tab that re-watches after the tally fell to 0 (a reload) would get only what differs from
            // the mirror and could not render. It gets the full state when the answer arrives instead.
            self.awaiting_answer.entry(global).or_default().push(conn);
        }
        if from_mirror {
            for msg in self.remote.full_state(global) {
                self.connections.push_update(conn, msg);
            }
        }
        if !live && (global == VarId::APP || explicit) {
            self.notify_unavailable(conn);
        }
    }

    /// A browser `unwatch` of a remote variable: forwarded when the last watcher leaves.
    pub(super) fn unwatch_remote(&mut self, global: VarId) {
        if self.untally(global) && (self.remote.exists(global) || global == VarId::APP) {
            self.link.queue_state(Message::Unwatch(global));
        }
    }

    /// A browser `update` of a remote variable: properties go into the mirror and reach the other
    /// watchers; the message goes to the backend (buffered during an outage).
    pub(super) fn update_remote(&mut self, conn: ConnId, update: Update, global: VarId) {
        let mut forwarded = Vec::new();
        let mut denied = Vec::new();
        let mut over = Vec::new();
        let mut changed = Vec::new();
        let limits = self.config.backend.as_ref().map_or_else(Default::default, |h| h.bytes.mirror);
        for p in update.properties.as_deref().unwrap_or(&[]) {
            match decide(&p.name, Writer::Browser, false) {
                Decision::Deny => denied.push(p.name.clone()),
                Decision::Drop => {}
                _ if !mirror_admits(self.remote.get(global), &limits, &p.name, &p.value) => over.push(p.name.clone()),
                _ => {
                    if let Some(var) = self.remote.get_mut(global) {
                        let a = set_prop(&mut var.props, &p.name, &p.value);
                        set_prop(&mut var.browser_props, &p.name, &p.value);
                        let bucket = var.prop_priority(&p.name, p.priority);
                        if a {
                            changed.push((bucket, p.name.clone(), p.value.clone()));
                        }
                    }
                    forwarded.push(p.clone());
                }
            }
        }
        if !denied.is_empty() {
            self.error(conn, update.var_id, ErrorCode::AccessDenied, format!("may not set {}", denied.join(", ")));
        }
        if !over.is_empty() {
            crate::metrics::metrics().limit_hit(crate::metrics::Limit::Properties);
            let text = format!("over the property limits: {}", over.join(", "));
            self.error(conn, update.var_id, ErrorCode::LimitExceeded, text);
        }
        self.push_change(global, None, changed, &[conn]);
        if update.value.is_none() && forwarded.is_empty() {
            return;
        }
        let properties = (!forwarded.is_empty()).then_some(forwarded);
        self.update_to_backend(Some(conn), Update { var_id: global, value: update.value, properties });
    }

    /// A browser destroys its own remote variable: the subtree goes, the backend hears one `destroy` per
    /// variable, children first.
    pub(super) fn destroy_remote(&mut self, global: VarId) {
        let removed = self.remote.remove(global);
        self.link.forget_buffered(&removed.iter().copied().collect());
        self.forget_variables(&removed);
        for id in removed {
            self.link.queue_state(Message::Destroy(id));
        }
    }

    /// Queues a change of remote variable `global` for its watchers (except `skip`) as one update per
    /// priority bucket, as PROTOCOL.md A12 orders every browser-bound update whatever its source
    /// (PROTOCOL.md B7): the value in the bucket of the variable's `priority` property, each
    /// property (bucket, name, value) in its own bucket.
    pub(super) fn push_change(
        &mut self,
        global: VarId,
        value: Option<Json>,
        props: Vec<(Priority, String, String)>,
        skip: &[ConnId],
    ) {
        let value_bucket = self.remote.get(global).map_or(Priority::Medium, RemoteVar::value_priority);
        for bucket in Priority::ORDER {
            let mut properties = Properties::default();
            for (_, name, v) in props.iter().filter(|(b, _, _)| *b == bucket) {
                properties.set(name, v);
            }
            let value = if bucket == value_bucket { value.clone() } else { None };
            if value.is_some() || !properties.is_empty() {
                let msg = ServerMessage::Update(UpdateOut { var_id: global, value, properties });
                self.connections.push_to_watchers(global, &msg, skip, bucket);
            }
        }
    }

    /// Remembers the priorities that name suffixes gave properties of remote variable `id`.
    pub(super) fn record_priorities(&mut self, id: VarId, props: &[PropertyWrite]) {
        if let Some(var) = self.remote.get_mut(id) {
            for p in props {
                var.prop_priority(&p.name, p.priority);
            }
        }
    }

    /// A closing connection's remote variables: `unwatch` where its leaving ends a tally of a variable it
    /// did not create (ascending), then `destroy` for what it created (children first).
    pub(super) fn disconnect_remote(&mut self, conn: ConnId) {
        let Some(c) = self.connections.get(conn) else { return };
        let created: HashSet<VarId> = c.created().into_iter().filter(|g| self.remote.exists(*g)).collect();
        let mut watched: Vec<VarId> = c
            .watches
            .iter()
            .copied()
            .filter(|g| {
                !created.contains(g)
                    && (self.remote.exists(*g) || (*g == VarId::APP && self.owner(*g) != Some(Owner::Lua)))
            })
            .collect();
        watched.sort();
        for g in watched {
            if let Some(c) = self.connections.get_mut(conn) {
                c.watches.remove(&g);
            }
            self.unwatch_remote(g);
        }
        // Roots of what it created, in creation order (ids ascend with creation).
        let mut roots: Vec<VarId> = created
            .iter()
            .copied()
            .filter(|g| self.remote.get(*g).and_then(|v| v.parent).is_none_or(|p| !created.contains(&p)))
            .collect();
        roots.sort();
        for g in roots {
            if let Some(c) = self.connections.get_mut(conn) {
                c.watches.remove(&g);
            }
            self.destroy_remote(g);
        }
    }
}
