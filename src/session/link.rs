//! The session's side of the backend link (backend-protocol.md §6–§10): routing by ownership, the
//! backend's inbound batches, the outbound batch per processed frame, outages with their buffer and
//! the replay on reconnect.
//!
//! Remote variables live in [`RemoteVars`] (the mirror); Lua-owned ones in the Lua tracker. The two
//! never nest inside each other: a browser variable takes its parent's owner, and a backend variable
//! under a Lua parent is a *client variable* owned by Lua that the backend watches like a tab would.

use std::collections::{HashSet, VecDeque};

use serde_json::Value as Json;

use super::remote::{set_prop, Creator, RemoteVar};
use super::Session;
use crate::backend::Sent;
use crate::ids::{ConnId, VarId};
use crate::protocol::backend::{encode_batches, BackendBatch};
use crate::protocol::message::MIN_BACKEND_ID;
use crate::protocol::{
    Create, ErrorCode, ErrorReport, Message, Priority, Properties, PropertyWrite, ServerMessage, Update, UpdateOut,
};
use crate::tracker::{json_bytes, Owner, Writer};

/// The backend's origin for change detection (connection ids count from 1, so this never clashes).
pub(super) const BACKEND_ORIGIN: u64 = u64::MAX;

/// Where the session stands with the backend.
#[derive(Debug)]
pub(super) enum Link {
    /// Embedded mode: there is no backend.
    None,
    /// Connected (connection `generation`); `opened` once this connection got a batch for the session.
    Live { generation: u64, opened: bool },
    /// No backend: `update`s for it wait here (oldest dropped past the limits, counted). `bytes` is the
    /// buffer's size by [`update_bytes`], bounded by `--backend-buffer-bytes` (review H5).
    Away { buffer: VecDeque<Update>, bytes: usize, dropped: usize, notified: HashSet<ConnId>, warned: bool },
}

impl Link {
    pub(super) fn away() -> Link {
        Link::Away { buffer: VecDeque::new(), bytes: 0, dropped: 0, notified: HashSet::new(), warned: false }
    }
}

/// What the session produces for the backend while processing one inbound frame: one batch.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    pub messages: Vec<Message>,
    pub user_event: bool,
}

fn error_message(var_id: VarId, code: ErrorCode, description: impl Into<String>) -> Message {
    Message::Error(ErrorReport { var_id, code, description: description.into() })
}

/// What a buffered update weighs against `--backend-buffer-bytes`: its value's JSON size plus its
/// property texts and the envelope, without encoding it.
fn update_bytes(u: &Update) -> usize {
    const ENVELOPE: usize = 48;
    let props: usize = u.properties.iter().flatten().map(|p| p.name.len() + p.value.len() + 6).sum();
    ENVELOPE + u.value.as_ref().map_or(0, json_bytes) + props
}

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

/// A backend id (−1 … −(2^32−1)): the backend's own variables and client variables.
fn is_backend_id(id: VarId) -> bool {
    id.0 < 0 && id.0 >= MIN_BACKEND_ID
}

impl Session {
    pub(super) fn backend_mode(&self) -> bool {
        !matches!(self.link, Link::None)
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

    /// Queues a message that only changes the backend's picture of gateway state (`create`, `destroy`,
    /// `watch`, `unwatch`): sent when live, otherwise dropped (the replay reproduces its effect).
    pub(super) fn state_to_backend(&mut self, msg: Message) {
        if matches!(self.link, Link::Live { .. }) {
            self.outbox.messages.push(msg);
        }
    }

    /// Queues an `update` for the backend: sent when live, buffered during an outage (§10.4). `conn`
    /// gets its one `backend-unavailable` of the outage.
    pub(super) fn update_to_backend(&mut self, conn: Option<ConnId>, update: Update) {
        let limit = self.config.backend.as_ref().map_or(0, |h| h.limits.session_buffer);
        let limit_bytes = self.config.backend.as_ref().map_or(0, |h| h.bytes.buffer_bytes);
        match &mut self.link {
            Link::None => {}
            Link::Live { .. } => self.outbox.messages.push(Message::Update(update)),
            Link::Away { buffer, bytes, dropped, warned, .. } => {
                *bytes += update_bytes(&update);
                buffer.push_back(update);
                // By count, then by bytes; the newest message always stays (even one over the byte bound).
                while buffer.len() > limit.max(1) || (*bytes > limit_bytes && buffer.len() > 1) {
                    let over_bytes = buffer.len() <= limit.max(1);
                    if let Some(old) = buffer.pop_front() {
                        *bytes = bytes.saturating_sub(update_bytes(&old));
                    }
                    *dropped += 1;
                    crate::metrics::metrics().backend_dropped.inc();
                    if over_bytes {
                        crate::metrics::metrics().limit_hit(crate::metrics::Limit::BackendBufferBytes);
                    }
                    if !*warned {
                        *warned = true;
                        tracing::warn!(vended = %self.vended, "backend buffer full: dropping the oldest updates");
                    }
                }
                if let Some(conn) = conn {
                    self.notify_unavailable(conn);
                }
            }
        }
    }

    /// One `backend-unavailable` on variable 1 per connection per outage.
    pub(super) fn notify_unavailable(&mut self, conn: ConnId) {
        let delay = self.config.flush_delay;
        if let Link::Away { notified, .. } = &mut self.link {
            if notified.insert(conn) {
                if let Some(c) = self.connections.get_mut(&conn) {
                    c.push_update(
                        ServerMessage::error(VarId::APP, ErrorCode::BackendUnavailable, "backend disconnected"),
                        delay,
                    );
                }
            }
        }
    }

    /// Sends what this frame produced for the backend as one batch (split only above the frame limit).
    /// The session's first batch on a connection is its open notice, even if empty.
    pub(super) fn emit_backend(&mut self, user_event: bool) {
        let outbox = std::mem::take(&mut self.outbox);
        let Link::Live { generation, opened } = &mut self.link else { return };
        if outbox.messages.is_empty() && (*opened || !self.engaged) {
            return;
        }
        let generation = *generation;
        let Some(hub) = self.config.backend.clone() else { return };
        if hub.generation() != Some(generation) {
            // The link dropped and this session has not been told yet: it is an outage already, so
            // the batch's updates go to the outage buffer instead of into a dead connection.
            self.backend_down(generation);
            for msg in outbox.messages {
                if let Message::Update(update) = msg {
                    self.update_to_backend(None, update);
                }
            }
            return;
        }
        if let Link::Live { opened, .. } = &mut self.link {
            *opened = true;
        }
        let user_event = user_event || outbox.user_event;
        for text in encode_batches(self.vended, user_event, &outbox.messages, hub.limits.max_frame_bytes) {
            if hub.send(generation, text) == Sent::NotConnected {
                self.backend_down(generation);
                return;
            }
        }
    }

    // ---- browser messages bound for remote variables -------------------------------------------

    /// A browser `create` under a remote parent (§7): recorded, forwarded with `nowatch:true`, then
    /// watched unless the browser said `nowatch`.
    pub(super) fn create_remote(&mut self, conn: ConnId, create: Create, parent: VarId, global: VarId) {
        let mut props = Properties::default();
        let mut denied = Vec::new();
        let mut forwarded = Vec::new();
        for p in &create.properties {
            match p.name.as_str() {
                "type" | "viewdefs" => {}
                "lua" => denied.push("lua"),
                _ => {
                    set_prop(&mut props, &p.name, &p.value);
                    forwarded.push(p.clone());
                }
            }
        }
        if props.get("path").is_none_or(str::is_empty) {
            return self.error(conn, create.id, ErrorCode::BadMessage, "create needs a non-empty path");
        }
        self.remote.insert(global, Some(parent), Creator::Browser(conn), None, props);
        self.record_priorities(global, &forwarded);
        self.next_global += 1;
        if let Some(c) = self.connections.get_mut(&conn) {
            c.map_id(create.id, global);
        }
        if !denied.is_empty() {
            self.error(conn, create.id, ErrorCode::AccessDenied, format!("may not set {}", denied.join(", ")));
        }
        self.state_to_backend(Message::Create(Create {
            id: global,
            parent_id: Some(parent),
            properties: forwarded,
            value: None,
            nowatch: true,
            unbound: false,
        }));
        if matches!(self.link, Link::Away { .. }) {
            self.notify_unavailable(conn);
        }
        if !create.nowatch {
            self.watch_remote(conn, global, false);
        }
    }

    /// A browser (or auto-) watch of a remote variable, or of a variable 1 that does not exist yet. The
    /// first watcher's watch goes to the backend, which answers; otherwise the mirror answers.
    pub(super) fn watch_remote(&mut self, conn: ConnId, global: VarId, explicit: bool) {
        let newly = self.connections.get_mut(&conn).is_some_and(|c| c.watches.insert(global));
        let first = newly && self.tally(global);
        let live = matches!(self.link, Link::Live { .. });
        let forwarded = first && live;
        if forwarded {
            self.outbox.messages.push(Message::Watch(global));
        }
        let readable = self.remote.get(global).is_some_and(|v| v.readable());
        let from_mirror = !forwarded || (explicit && !readable);
        if from_mirror {
            let delay = self.config.flush_delay;
            let state = self.remote.full_state(global);
            if let Some(c) = self.connections.get_mut(&conn) {
                for msg in state {
                    c.push_update(msg, delay);
                }
            }
        }
        if !live && (global == VarId::APP || explicit) {
            self.notify_unavailable(conn);
        }
    }

    /// A browser `unwatch` of a remote variable: forwarded when the last watcher leaves.
    pub(super) fn unwatch_remote(&mut self, global: VarId) {
        if self.untally(global) && (self.remote.exists(global) || global == VarId::APP) {
            self.state_to_backend(Message::Unwatch(global));
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
            match p.name.as_str() {
                "path" | "access" | "create" | "wrapper" | "lua" => denied.push(p.name.clone()),
                "type" | "viewdefs" => {}
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
        self.push_change(global, None, changed, Some(conn));
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
        // §10.4: updates buffered during an outage for a variable destroyed meanwhile are discarded
        // (uncounted); the replay no longer creates it, so the backend could not even address them.
        if let Link::Away { buffer, bytes, .. } = &mut self.link {
            let gone: HashSet<VarId> = removed.iter().copied().collect();
            buffer.retain(|u| !gone.contains(&u.var_id));
            *bytes = buffer.iter().map(update_bytes).sum();
        }
        self.forget_variables(&removed);
        for id in removed {
            self.state_to_backend(Message::Destroy(id));
        }
    }

    /// Queues `msg` (global ids) in priority bucket `bucket` for every connection watching `global`,
    /// except `skip`.
    fn push_to_watchers(&mut self, global: VarId, msg: ServerMessage, skip: Option<ConnId>, bucket: Priority) {
        let delay = self.config.flush_delay;
        for c in self.connections.values_mut() {
            if Some(c.id) != skip && c.watches.contains(&global) {
                c.push_update_at(msg.clone(), delay, bucket);
            }
        }
    }

    /// Queues a change of remote variable `global` for its watchers (except `skip`) as one update per
    /// priority bucket, as browser protocol §12 orders every browser-bound update whatever its source
    /// (backend-protocol §7): the value in the bucket of the variable's `priority` property, each
    /// property (bucket, name, value) in its own bucket.
    fn push_change(
        &mut self,
        global: VarId,
        value: Option<Json>,
        props: Vec<(Priority, String, String)>,
        skip: Option<ConnId>,
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
                self.push_to_watchers(global, msg, skip, bucket);
            }
        }
    }

    /// Remembers the priorities that name suffixes gave properties of remote variable `id`.
    fn record_priorities(&mut self, id: VarId, props: &[PropertyWrite]) {
        if let Some(var) = self.remote.get_mut(id) {
            for p in props {
                var.prop_priority(&p.name, p.priority);
            }
        }
    }

    /// A closing connection's remote variables: `unwatch` where its leaving ends a tally of a variable it
    /// did not create (ascending), then `destroy` for what it created (children first).
    pub(super) fn disconnect_remote(&mut self, conn: ConnId) {
        let Some(c) = self.connections.get(&conn) else { return };
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
            if let Some(c) = self.connections.get_mut(&conn) {
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
            if let Some(c) = self.connections.get_mut(&conn) {
                c.watches.remove(&g);
            }
            self.destroy_remote(g);
        }
    }

    // ---- the backend's batches ------------------------------------------------------------------

    /// A batch from the backend: messages in order, errors back in one batch, then the pass and the
    /// browser-bound output (at once for a `userEvent` batch).
    pub(super) fn backend_batch(&mut self, generation: u64, batch: BackendBatch) {
        if let Link::Live { generation: g, .. } = self.link {
            if g != generation {
                return;
            }
        }
        if let Some(lua) = &self.lua {
            lua.begin_phase();
        }
        for msg in batch.messages {
            match msg {
                Ok(msg) => self.apply_backend(msg),
                Err(e) => self.outbox.messages.push(error_message(e.var_id, e.code, e.description)),
            }
        }
        self.settle_lua();
        self.deliver_changes();
        self.emit_backend(false);
        if batch.user_event {
            let conns: Vec<ConnId> = self.connections.keys().copied().collect();
            for conn in conns {
                self.flush_connection(conn);
            }
        }
    }

    fn backend_error(&mut self, var: VarId, code: ErrorCode, description: impl AsRef<str>) {
        self.outbox.messages.push(error_message(var, code, description.as_ref()));
    }

    /// Whether the backend may address `id`: variable 1, its own variables, and remote browser
    /// variables it was told about (§5).
    fn addressable(&self, id: VarId) -> Option<Owner> {
        let owner = self.owner(id)?;
        match owner {
            Owner::Remote => Some(owner),
            Owner::Lua if id == VarId::APP || (is_backend_id(id) && self.backend_vars.contains_key(&id)) => Some(owner),
            Owner::Lua => None,
        }
    }

    fn apply_backend(&mut self, msg: Message) {
        match msg {
            Message::Create(c) => self.backend_create(c),
            Message::Update(u) => self.backend_update(u),
            Message::Watch(id) => match self.addressable(id) {
                Some(Owner::Lua) => {
                    if self.backend_watches.insert(id) {
                        self.tally(id);
                    }
                    if !self.backend_full.contains(&id) {
                        self.backend_full.push(id);
                    }
                }
                Some(Owner::Remote) => {}
                None => self.backend_error(id, ErrorCode::NotFound, format!("variable {id} not found")),
            },
            Message::Unwatch(id) => {
                if self.backend_watches.remove(&id) {
                    self.untally(id);
                }
            }
            Message::Destroy(id) => {
                if id == VarId::APP {
                    return self.backend_error(id, ErrorCode::AccessDenied, "variable 1 ends only with the session");
                }
                match self.addressable(id) {
                    Some(Owner::Remote) => {
                        let removed = self.remote.remove(id);
                        self.forget_variables(&removed);
                    }
                    Some(Owner::Lua) => self.destroy_variable(id),
                    None => self.backend_error(id, ErrorCode::NotFound, format!("variable {id} not found")),
                }
            }
            Message::Error(e) => {
                let msg = ServerMessage::error(e.var_id, e.code, e.description.clone());
                if e.var_id == VarId::NONE {
                    let delay = self.config.flush_delay;
                    for c in self.connections.values_mut() {
                        c.push_update(msg.clone(), delay);
                    }
                    return;
                }
                let Some(var) = self.remote.get_mut(e.var_id) else {
                    return self.backend_error(
                        e.var_id,
                        ErrorCode::NotFound,
                        format!("variable {} not found", e.var_id),
                    );
                };
                var.error = Some((e.code, e.description.clone()));
                let creator = var.creator;
                let watched = self.connections.values().any(|c| c.watches.contains(&e.var_id));
                if watched {
                    let bucket = var.value_priority();
                    self.push_to_watchers(e.var_id, msg, None, bucket);
                } else if let Creator::Browser(conn) = creator {
                    let delay = self.config.flush_delay;
                    if let Some(c) = self.connections.get_mut(&conn) {
                        c.push_update(msg, delay);
                    }
                }
            }
        }
    }

    /// Splits off what the backend may not set: `viewdefs` (access-denied) and, on variable 1, `lua`
    /// (run in hybrid mode, `bad-message` in connected mode). Returns the rest and the `lua` code.
    fn backend_props(&mut self, id: VarId, props: &[PropertyWrite]) -> (Vec<PropertyWrite>, Option<String>) {
        let mut kept = Vec::with_capacity(props.len());
        let mut lua_code = None;
        for p in props {
            match p.name.as_str() {
                "viewdefs" => self.backend_error(id, ErrorCode::AccessDenied, "backends may not send viewdefs"),
                "lua" if id != VarId::APP => {
                    self.backend_error(id, ErrorCode::AccessDenied, "lua is a property of variable 1 only")
                }
                "lua" if self.lua.is_none() => {
                    self.backend_error(id, ErrorCode::BadMessage, "no Lua in connected mode")
                }
                "lua" => lua_code = Some(p.value.clone()),
                _ => kept.push(p.clone()),
            }
        }
        (kept, lua_code)
    }

    fn backend_create(&mut self, c: Create) {
        if self.owner(c.id).is_some() {
            if c.id == VarId::APP && self.owner(c.id) == Some(Owner::Remote) {
                return self.replace_remote_app(c);
            }
            return self.backend_error(c.id, ErrorCode::IdInUse, format!("variable {} exists", c.id));
        }
        if self.variable_count() >= self.config.max_variables {
            return self.backend_error(c.id, ErrorCode::LimitExceeded, "session variable limit reached");
        }
        let (props, _) = self.backend_props(c.id, &c.properties);
        let parent = c.parent_id.filter(|p| p.0 != 0);
        let parent_owner = match parent {
            None => None,
            Some(p) => match self.owner(p) {
                Some(o) => Some(o),
                None => return self.backend_error(c.id, ErrorCode::NotFound, format!("parent {p} not found")),
            },
        };
        if parent_owner == Some(Owner::Lua) {
            // A client variable: Lua resolves it, the backend watches it.
            let parent = parent.expect("a Lua owner means a parent");
            let Some(lua) = self.lua.as_mut() else { return };
            match lua.tracker_mut().create(c.id, parent, &props, Writer::Backend) {
                Ok(_) => {
                    let readable = lua.tracker().shared().access(c.id).is_some_and(|a| a.readable());
                    let mut own = Properties::default();
                    for p in &props {
                        own.set(&p.name, &p.value);
                    }
                    self.backend_vars.insert(c.id, own);
                    if !c.nowatch {
                        self.backend_watches.insert(c.id);
                        self.tally(c.id);
                        if readable {
                            self.backend_full.push(c.id);
                        }
                    }
                }
                Err(e) => self.backend_error(c.id, e.code, e.description),
            }
            return;
        }
        let mut mirror = Properties::default();
        for p in &props {
            set_prop(&mut mirror, &p.name, &p.value);
        }
        self.remote.insert(c.id, parent, Creator::Backend, c.value, mirror);
        self.record_priorities(c.id, &props);
        if c.id == VarId::APP {
            self.answer_app_watchers();
        }
    }

    /// The backend (re)creates variable 1 it already owns: value and properties replaced, removed
    /// properties reported as `""`, watchers get a full update.
    fn replace_remote_app(&mut self, c: Create) {
        let (props, _) = self.backend_props(c.id, &c.properties);
        let Some(var) = self.remote.get_mut(VarId::APP) else { return };
        let mut next = Properties::default();
        for p in &props {
            set_prop(&mut next, &p.name, &p.value);
        }
        let mut shown = next.clone();
        for (name, _) in &var.props.0 {
            if next.get(name).is_none() {
                shown.set(name, "");
            }
        }
        var.props = next;
        var.value = c.value;
        var.error = None;
        var.prop_priority.clear();
        let value = if var.readable() { var.value.clone().or(Some(Json::Null)) } else { None };
        self.record_priorities(VarId::APP, &props);
        // A full update is one message, like a watch answer.
        let msg = ServerMessage::Update(UpdateOut { var_id: VarId::APP, value, properties: shown });
        self.push_to_watchers(VarId::APP, msg, None, Priority::Medium);
    }

    /// Variable 1 just appeared: every connection watching it gets its full state.
    fn answer_app_watchers(&mut self) {
        let state = self.remote.full_state(VarId::APP);
        let delay = self.config.flush_delay;
        for c in self.connections.values_mut() {
            if c.watches.contains(&VarId::APP) {
                for msg in &state {
                    c.push_update(msg.clone(), delay);
                }
            }
        }
    }

    fn backend_update(&mut self, u: Update) {
        let id = u.var_id;
        let Some(owner) = self.addressable(id) else {
            return self.backend_error(id, ErrorCode::NotFound, format!("variable {id} not found"));
        };
        let (props, lua_code) = self.backend_props(id, u.properties.as_deref().unwrap_or(&[]));
        match owner {
            Owner::Remote => {
                let Some(var) = self.remote.get_mut(id) else { return };
                let mut changed = Vec::new();
                for p in &props {
                    let bucket = var.prop_priority(&p.name, p.priority);
                    if set_prop(&mut var.props, &p.name, &p.value) {
                        changed.push((bucket, p.name.clone(), p.value.clone()));
                    }
                }
                let recovered = var.error.take().is_some();
                let value = match u.value {
                    Some(v) => {
                        self.change_count += 1;
                        *self.changes_of.entry(id).or_insert(0) += 1;
                        var.value = Some(v.clone());
                        Some(v)
                    }
                    None if recovered => var.value.clone(),
                    None => None,
                };
                self.push_change(id, value, changed, None);
            }
            Owner::Lua => {
                if let Some(lua) = self.lua.as_mut() {
                    let errors =
                        lua.tracker_mut().update(id, &props, u.value.as_ref(), Writer::Backend, Some(BACKEND_ORIGIN));
                    for e in errors {
                        self.backend_error(id, e.code, e.description);
                    }
                }
            }
        }
        if let Some(code) = lua_code {
            if let Some(lua) = self.lua.as_mut() {
                if let Err(e) = lua.run_lua_property(&code) {
                    self.backend_error(VarId::APP, e.code, e.description);
                }
            }
        }
    }

    /// Adds the backend's share of a pass: changes of the Lua variables it watches (minus its own
    /// writes) and the full states its watches asked for.
    pub(super) fn deliver_to_backend(&mut self, changes: &crate::tracker::Changes) {
        if self.backend_watches.is_empty() && self.backend_full.is_empty() {
            return;
        }
        let Some(lua) = self.lua.as_ref() else { return };
        let mut out = Vec::new();
        for item in &changes.items {
            if self.backend_watches.contains(&item.var_id) && !self.backend_full.contains(&item.var_id) {
                item.messages_for(Some(BACKEND_ORIGIN), &mut out);
            }
        }
        for id in std::mem::take(&mut self.backend_full) {
            // A watch answer carries what the backend does not know: not the properties it set itself.
            let own = self.backend_vars.get(&id);
            for mut msg in lua.tracker().full_state(id) {
                if let (ServerMessage::Update(u), Some(own)) = (&mut msg, own) {
                    u.properties.0.retain(|(k, v)| own.get(k) != Some(v.as_str()));
                    if u.value.is_none() && u.properties.is_empty() {
                        continue;
                    }
                }
                out.push(msg);
            }
        }
        if !matches!(self.link, Link::Live { .. }) {
            return;
        }
        for msg in out {
            self.outbox.messages.push(Message::from(msg));
        }
    }

    // ---- outage and return ----------------------------------------------------------------------

    /// The backend connection `generation` is gone (§10): remote state freezes, the backend's own
    /// variables go, watchers of a remote (or missing) variable 1 are told once.
    pub(super) fn backend_down(&mut self, generation: u64) {
        match self.link {
            Link::Live { generation: g, .. } if g == generation => {}
            _ => return,
        }
        self.link = Link::away();
        self.outbox = Default::default();
        let mut gone: Vec<VarId> = Vec::new();
        for id in self.remote.backend_created() {
            if self.remote.exists(id) {
                gone.extend(self.remote.remove(id));
            }
        }
        self.forget_variables(&gone);
        let client_vars: Vec<VarId> = self.backend_vars.keys().copied().collect();
        for id in client_vars {
            self.destroy_variable(id);
        }
        self.backend_vars.clear();
        for id in std::mem::take(&mut self.backend_watches) {
            self.untally(id);
        }
        self.backend_full.clear();
        if self.owner(VarId::APP) != Some(Owner::Lua) {
            let watching: Vec<ConnId> =
                self.connections.values().filter(|c| c.watches.contains(&VarId::APP)).map(|c| c.id).collect();
            for conn in watching {
                self.notify_unavailable(conn);
            }
        }
        self.deliver_changes();
    }

    /// A backend connection `generation` is up and reached this session (§10): an engaged session sends
    /// its replay batch, then goes live.
    pub(super) fn backend_up(&mut self, generation: u64) {
        match &self.link {
            Link::None => return,
            Link::Live { generation: g, .. } if *g == generation => return,
            Link::Live { generation: g, .. } => {
                let g = *g;
                self.backend_down(g);
            }
            Link::Away { .. } => {}
        }
        let Link::Away { buffer, dropped, .. } =
            std::mem::replace(&mut self.link, Link::Live { generation, opened: false })
        else {
            return;
        };
        if !self.engaged {
            return;
        }
        let mut messages = Vec::new();
        let app_remote = self.owner(VarId::APP) != Some(Owner::Lua);
        if app_remote && self.tallies.get(&VarId::APP).is_some_and(|n| *n > 0) {
            messages.push(Message::Watch(VarId::APP));
        }
        for id in self.remote.pre_order() {
            if id.0 < 2 {
                continue;
            }
            let Some(var) = self.remote.get(id) else { continue };
            let properties = var
                .browser_props
                .0
                .iter()
                .map(|(name, value)| PropertyWrite { name: name.clone(), value: value.clone(), priority: None })
                .collect();
            messages.push(Message::Create(Create {
                id,
                parent_id: var.parent,
                properties,
                value: None,
                nowatch: true,
                unbound: false,
            }));
            if self.tallies.get(&id).is_some_and(|n| *n > 0) {
                messages.push(Message::Watch(id));
            }
        }
        if dropped > 0 {
            messages.push(error_message(
                VarId::NONE,
                ErrorCode::LimitExceeded,
                format!("{dropped} buffered messages dropped"),
            ));
        }
        messages.extend(buffer.into_iter().map(Message::Update));
        self.outbox.messages = messages;
        // Not yet opened on this connection and engaged: sent even when empty (it opens the session).
        self.emit_backend(false);
    }
}
