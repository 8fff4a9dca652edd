//! The backend's side of a session: its inbound batches (applied by owner, errors back in one
//! batch), what it watches among Lua variables, and the outage and the return with its replay.

use serde_json::Value as Json;

use super::backend_link::error_message;
use super::remote::{set_prop, Creator};
use super::Session;
use crate::ids::VarId;
use crate::protocol::backend::BackendBatch;
use crate::protocol::message::MIN_BACKEND_ID;
use crate::protocol::property::{decide, name as property, Decision};
use crate::protocol::{
    Create, ErrorCode, Message, Priority, Properties, PropertyWrite, ServerMessage, Update, UpdateOut,
};
use crate::tracker::{Owner, Writer};

/// The backend's origin for change detection (connection ids count from 1, so this never clashes).
pub(super) const BACKEND_ORIGIN: u64 = u64::MAX;

/// A backend id (−1 … −(2^32−1)): the backend's own variables and client variables.
fn is_backend_id(id: VarId) -> bool {
    id.0 < 0 && id.0 >= MIN_BACKEND_ID
}

impl Session {
    // ---- the backend's batches ------------------------------------------------------------------

    /// A batch from the backend: messages in order, errors back in one batch, then the pass and the
    /// browser-bound output (at once for a `userEvent` batch).
    pub(super) fn backend_batch(&mut self, generation: u64, batch: BackendBatch) {
        if self.link.live_generation().is_some_and(|g| g != generation) {
            return;
        }
        self.link.adopt(generation);
        if let Some(lua) = &self.lua {
            lua.begin_phase();
        }
        for msg in batch.messages {
            match msg {
                Ok(msg) => self.apply_backend(msg),
                Err(e) => self.link.queue(error_message(e.var_id, e.code, e.description)),
            }
        }
        self.settle_lua();
        self.deliver_changes();
        self.emit_backend(false);
        if batch.user_event {
            for conn in self.connections.ids() {
                self.flush_connection(conn);
            }
        }
    }

    fn backend_error(&mut self, var: VarId, code: ErrorCode, description: impl AsRef<str>) {
        self.link.queue(error_message(var, code, description.as_ref()));
    }

    /// Whether the backend may address `id`: variable 1, its own variables, and remote browser
    /// variables it was told about (PROTOCOL.md B5).
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
                    return self.connections.push_to_all(&msg);
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
                let watched = self.connections.is_watched(e.var_id);
                if watched {
                    let bucket = var.value_priority();
                    self.connections.push_to_watchers(e.var_id, &msg, &[], bucket);
                    self.awaiting_answer.remove(&e.var_id);
                } else if let Creator::Browser(conn) = creator {
                    self.connections.push_update(conn, msg);
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
            // The backend owns its variables, so it may restate their creator properties (`at_create`);
            // `lua` is dropped by the table because the session runs it instead of storing it.
            match (p.name.as_str(), decide(&p.name, Writer::Backend, true)) {
                (property::LUA, _) if id != VarId::APP => {
                    self.backend_error(id, ErrorCode::AccessDenied, "lua is a property of variable 1 only")
                }
                (property::LUA, _) if self.lua.is_none() => {
                    self.backend_error(id, ErrorCode::BadMessage, "no Lua in connected mode")
                }
                (property::LUA, _) => lua_code = Some(p.value.clone()),
                (_, Decision::Deny) => {
                    self.backend_error(id, ErrorCode::AccessDenied, format!("backends may not send {}", p.name))
                }
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
        if self.tallies.get(&c.id).is_some_and(|n| *n > 0) {
            if let Some(var) = self.remote.get_mut(c.id) {
                var.watched_before = true;
            }
        }
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
        self.connections.push_to_watchers(VarId::APP, &msg, &[], Priority::Medium);
    }

    /// Variable 1 just appeared: every connection watching it gets its full state.
    fn answer_app_watchers(&mut self) {
        let state = self.remote.full_state(VarId::APP);
        self.connections.push_all_to_watchers(VarId::APP, &state);
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
                // Watchers waiting for the answer to a forwarded watch get the full state, the others
                // what changed.
                let awaiting = self.awaiting_answer.remove(&id).unwrap_or_default();
                self.push_change(id, value, changed, &awaiting);
                if !awaiting.is_empty() {
                    let state = self.remote.full_state(id);
                    for conn in awaiting {
                        for msg in &state {
                            self.connections.push_update(conn, msg.clone());
                        }
                    }
                }
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
        if !self.link.is_live() {
            return;
        }
        for msg in out {
            self.link.queue(Message::from(msg));
        }
    }

    // ---- outage and return ----------------------------------------------------------------------

    /// The backend connection `generation` is gone (PROTOCOL.md B10): remote state freezes, the backend's own
    /// variables go, watchers of a remote (or missing) variable 1 are told once.
    pub(super) fn backend_down(&mut self, generation: u64, quiet: bool) {
        if !self.link.go_away(generation, quiet) {
            return;
        }
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
            for conn in self.connections.watching(VarId::APP) {
                self.notify_unavailable(conn);
            }
        }
        self.deliver_changes();
    }

    /// The session was kept quietly for a worker that did not return and no worker took it: the
    /// outage is real, so watchers of a backend-owned variable 1 get their `backend-unavailable` now.
    pub(super) fn backend_lost(&mut self) {
        if self.link.lost() && self.owner(VarId::APP) != Some(Owner::Lua) {
            for conn in self.connections.watching(VarId::APP) {
                self.notify_unavailable(conn);
            }
        }
    }

    /// A backend connection `generation` is up and reached this session (PROTOCOL.md B10): an engaged session sends
    /// its replay batch, then goes live.
    pub(super) fn backend_up(&mut self, generation: u64) {
        if !self.link.enabled() || self.link.live_generation() == Some(generation) {
            return;
        }
        if let Some(previous) = self.link.live_generation() {
            self.backend_down(previous, true);
        }
        let backlog = self.link.go_live(generation);
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
        self.link.queue_replay(messages, backlog);
        // Not yet opened on this connection and engaged: sent even when empty (it opens the session).
        self.emit_backend(false);
    }
}
