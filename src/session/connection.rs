//! Per-connection state inside a session: the client⇄global id table, watches, the set of types whose
//! viewdefs this connection has, and the outbound queue with its flush timer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

use super::sink::{ConnSink, SendOutcome};
use crate::ids::{ConnId, VarId};
use crate::protocol::property::name as property;
use crate::protocol::{encode_server_frame, Priority, Properties, ServerMessage, UpdateOut};
use crate::site::Viewdefs;

/// One browser tab's view of the session.
#[derive(Debug)]
pub struct Connection {
    pub id: ConnId,
    sink: ConnSink,
    /// Client id → global id, for variables this connection created (ids ≥ 2).
    client_to_global: HashMap<i64, i64>,
    global_to_client: HashMap<i64, i64>,
    /// Global ids this connection watches.
    pub watches: HashSet<VarId>,
    /// Types whose viewdefs were delivered (set D of PROTOCOL.md A13).
    seen_types: HashSet<String>,
    /// Viewdefs hot reload changed for types this connection has, not yet sent.
    reloaded_viewdefs: BTreeMap<String, String>,
    /// Errors and destroys produced while processing client messages, in production order.
    notices: Vec<ServerMessage>,
    /// Updates (and detection errors) in emission order, each with its priority bucket (PROTOCOL.md
    /// A12). Lua's pass already emits in bucket order and queues everything as medium; updates
    /// of backend-owned variables carry their real bucket, so a flush can order them.
    updates: Vec<(Priority, ServerMessage)>,
    flush_at: Option<Instant>,
    /// Variables whose full state this connection gets after the current batch's pass (watch, auto-watch).
    pub full_requests: Vec<VarId>,
}

impl Connection {
    pub fn new(id: ConnId, sink: ConnSink) -> Self {
        Connection {
            id,
            sink,
            client_to_global: HashMap::new(),
            global_to_client: HashMap::new(),
            watches: HashSet::new(),
            seen_types: HashSet::new(),
            reloaded_viewdefs: BTreeMap::new(),
            notices: Vec::new(),
            updates: Vec::new(),
            flush_at: None,
            full_requests: Vec::new(),
        }
    }

    /// Maps an incoming id to the global id: 1 and negative ids are shared, ids ≥ 2 must be in this
    /// connection's table.
    pub fn to_global(&self, client: VarId) -> Option<VarId> {
        if client.is_shared() {
            Some(client)
        } else {
            self.client_to_global.get(&client.0).map(|&g| VarId(g))
        }
    }

    /// Maps a global id to this connection's id space.
    pub fn to_client(&self, global: VarId) -> VarId {
        if global.is_shared() {
            global
        } else {
            self.global_to_client.get(&global.0).map(|&c| VarId(c)).unwrap_or(global)
        }
    }

    /// Whether `client` is one of this connection's live client ids.
    pub fn owns_client_id(&self, client: VarId) -> bool {
        self.client_to_global.contains_key(&client.0)
    }

    pub fn map_id(&mut self, client: VarId, global: VarId) {
        self.client_to_global.insert(client.0, global.0);
        self.global_to_client.insert(global.0, client.0);
    }

    pub fn unmap_global(&mut self, global: VarId) {
        if let Some(client) = self.global_to_client.remove(&global.0) {
            self.client_to_global.remove(&client);
        }
    }

    /// Global ids of the variables this connection created, ascending (creation order).
    pub fn created(&self) -> Vec<VarId> {
        let mut ids: Vec<VarId> = self.global_to_client.keys().map(|&g| VarId(g)).collect();
        ids.sort();
        ids
    }

    /// Whether this connection created or watches global variable `global`.
    pub fn concerns(&self, global: VarId) -> bool {
        self.watches.contains(&global) || self.global_to_client.contains_key(&global.0)
    }

    /// A variable was destroyed: queue its `destroy` notice (in this connection's id space), drop its
    /// queued updates and forget it.
    pub fn forget(&mut self, global: VarId, delay: Duration) {
        let client = self.to_client(global);
        self.updates.retain(|(_, m)| m.var_id() != client);
        self.full_requests.retain(|v| *v != global);
        self.watches.remove(&global);
        self.unmap_global(global);
        self.push_notice(ServerMessage::Destroy { var_id: client }, delay);
    }

    fn arm(&mut self, delay: Duration) {
        if self.flush_at.is_none() {
            self.flush_at = Some(Instant::now() + delay);
        }
    }

    /// Queues an error or destroy produced while processing this connection's messages (ids already
    /// in this connection's space).
    pub fn push_notice(&mut self, msg: ServerMessage, delay: Duration) {
        self.notices.push(msg);
        self.arm(delay);
    }

    /// Queues an update or detection error about global variable `global`; translated to client ids.
    pub fn push_update(&mut self, msg: ServerMessage, delay: Duration) {
        self.push_update_at(msg, delay, Priority::Medium);
    }

    /// [`Connection::push_update`] into priority bucket `bucket`.
    pub fn push_update_at(&mut self, mut msg: ServerMessage, delay: Duration, bucket: Priority) {
        let client = self.to_client(msg.var_id());
        match &mut msg {
            ServerMessage::Update(u) => u.var_id = client,
            ServerMessage::Error(e) => e.var_id = client,
            ServerMessage::Destroy { var_id } => *var_id = client,
        }
        self.updates.push((bucket, msg));
        self.arm(delay);
    }

    /// Hot reload: queues the changed viewdefs whose type this connection has already met (PROTOCOL.md A13); the
    /// others reach it the usual way when it meets their type.
    pub fn push_reloaded_viewdefs(&mut self, changed: &BTreeMap<String, String>, delay: Duration) {
        let before = self.reloaded_viewdefs.len();
        for (key, html) in changed {
            let ty = key.rsplit_once('.').map_or(key.as_str(), |(ty, _)| ty);
            if self.seen_types.contains(ty) {
                self.reloaded_viewdefs.insert(key.clone(), html.clone());
            }
        }
        if self.reloaded_viewdefs.len() != before {
            self.arm(delay);
        }
    }

    pub fn flush_at(&self) -> Option<Instant> {
        self.flush_at
    }

    pub fn has_queued(&self) -> bool {
        !self.notices.is_empty() || !self.updates.is_empty() || !self.reloaded_viewdefs.is_empty()
    }

    /// Sends everything queued as one frame: notices, then the viewdefs of types new to this
    /// connection (and those hot reload changed), then updates.
    pub fn flush(&mut self, viewdefs: &Viewdefs) -> SendOutcome {
        self.flush_at = None;
        if !self.has_queued() {
            return SendOutcome::Queued;
        }
        let mut frame = std::mem::take(&mut self.notices);
        let mut delivered: serde_json::Map<String, serde_json::Value> =
            std::mem::take(&mut self.reloaded_viewdefs).into_iter().map(|(k, v)| (k, v.into())).collect();
        for (_, msg) in &self.updates {
            let ServerMessage::Update(u) = msg else { continue };
            let Some(ty) = u.properties.get(property::TYPE) else { continue };
            if ty.is_empty() || self.seen_types.contains(ty) {
                continue;
            }
            self.seen_types.insert(ty.to_string());
            if let Some(defs) = viewdefs.for_type(ty) {
                for (key, html) in defs {
                    delivered.insert(key.clone(), serde_json::Value::String(html.clone()));
                }
            }
        }
        if !delivered.is_empty() {
            let mut props = Properties::default();
            props.set(property::VIEWDEFS, &serde_json::Value::Object(delivered).to_string());
            frame.push(ServerMessage::Update(UpdateOut { var_id: VarId::APP, value: None, properties: props }));
        }
        frame.extend(coalesce(std::mem::take(&mut self.updates)));
        for msg in &frame {
            if let ServerMessage::Error(e) = msg {
                crate::metrics::metrics().error_sent(e.code.as_str());
            }
        }
        self.sink.send_frame(encode_server_frame(&frame))
    }

    pub fn close(&self, code: u16, reason: &'static str) {
        self.sink.close(code, reason);
    }
}

/// Orders queued updates high, then medium, then low (stable, so emission order within a bucket),
/// and merges the updates of one variable in one bucket (latest value and property values win) into
/// its first position there, so a parent still precedes its children.
fn coalesce(mut updates: Vec<(Priority, ServerMessage)>) -> Vec<ServerMessage> {
    updates.sort_by_key(|(bucket, _)| *bucket);
    let mut out: Vec<ServerMessage> = Vec::with_capacity(updates.len());
    let mut at: HashMap<(VarId, Priority), usize> = HashMap::new();
    for (bucket, msg) in updates {
        if let ServerMessage::Update(u) = &msg {
            if let Some(&i) = at.get(&(u.var_id, bucket)) {
                if let ServerMessage::Update(first) = &mut out[i] {
                    if u.value.is_some() {
                        first.value = u.value.clone();
                    }
                    for (name, value) in &u.properties.0 {
                        first.properties.set(name, value);
                    }
                }
                continue;
            }
            at.insert((u.var_id, bucket), out.len());
        }
        out.push(msg);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Properties;

    fn update(var: i64, value: Option<i64>, props: &[(&str, &str)]) -> ServerMessage {
        let mut p = Properties::default();
        for (k, v) in props {
            p.set(k, v);
        }
        ServerMessage::Update(UpdateOut { var_id: VarId(var), value: value.map(Into::into), properties: p })
    }

    #[test]
    fn coalescing_keeps_first_position_and_latest_values() {
        let medium = |m| (Priority::Medium, m);
        let merged = coalesce(vec![
            medium(update(2, Some(1), &[("a", "x")])),
            medium(update(3, Some(5), &[])),
            medium(update(2, Some(2), &[("a", "y"), ("b", "z")])),
            medium(update(2, None, &[("c", "w")])),
        ]);
        assert_eq!(merged, vec![update(2, Some(2), &[("a", "y"), ("b", "z"), ("c", "w")]), update(3, Some(5), &[])]);
    }

    #[test]
    fn buckets_go_out_high_medium_low_and_merge_only_within_a_bucket() {
        let merged = coalesce(vec![
            (Priority::Low, update(2, None, &[("l", "1")])),
            (Priority::Medium, update(3, Some(5), &[])),
            (Priority::High, update(4, None, &[("h", "1")])),
            (Priority::Medium, update(2, Some(7), &[])),
            (Priority::High, update(2, None, &[("h", "2")])),
            (Priority::Low, update(2, None, &[("m", "3")])),
        ]);
        assert_eq!(
            merged,
            vec![
                update(4, None, &[("h", "1")]),
                update(2, None, &[("h", "2")]),
                update(3, Some(5), &[]),
                update(2, Some(7), &[]),
                update(2, None, &[("l", "1"), ("m", "3")]),
            ]
        );
    }
}
