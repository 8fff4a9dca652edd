//! The gateway's mirror of backend-owned (remote) variables (PROTOCOL.md B7, B8): the tree, the
//! last value, properties and error the backend sent, and the properties browsers set, so watches can be
//! answered and tabs rebuilt without asking the backend, and a reconnecting backend gets a replay.

use std::collections::HashMap;

use serde_json::Value as Json;

use crate::ids::{ConnId, VarId};
use crate::protocol::property::name as property;
use crate::protocol::{ErrorCode, Priority, Properties, ServerMessage, UpdateOut};

/// Who created a remote variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creator {
    Backend,
    Browser(ConnId),
}

/// One remote variable as the gateway knows it.
#[derive(Debug)]
pub struct RemoteVar {
    pub parent: Option<VarId>,
    /// In creation order.
    pub children: Vec<VarId>,
    pub creator: Creator,
    /// The backend's last value; `None` until it sent one.
    pub value: Option<Json>,
    /// Every known property (backend and browsers), `""` never stored.
    pub props: Properties,
    /// The properties as browsers last set them (create and updates), for the replay.
    pub browser_props: Properties,
    /// The backend's last error for it, until an update follows.
    pub error: Option<(ErrorCode, String)>,
    /// Delivery priority of each property given one by a name suffix (PROTOCOL.md A5.3); the
    /// others are medium.
    pub prop_priority: HashMap<String, Priority>,
    /// Some connection watched it before: a watch forwarded later (the tally fell to 0 in between, as
    /// when the only tab reloads) is owed the full state when the backend answers.
    pub watched_before: bool,
}

impl RemoteVar {
    /// `w` and `action` variables have no value to show.
    pub fn readable(&self) -> bool {
        !matches!(self.props.get(property::ACCESS), Some("w" | "action"))
    }

    /// The bucket of a value change: the variable's `priority` property (medium when unset).
    pub fn value_priority(&self) -> Priority {
        self.props.get(property::PRIORITY).map_or(Priority::Medium, Priority::from_property)
    }

    /// The bucket of a change of property `name`: a suffix sets the property's priority, no suffix
    /// keeps the one it has (medium when new).
    pub fn prop_priority(&mut self, name: &str, suffix: Option<Priority>) -> Priority {
        match suffix {
            Some(p) => {
                self.prop_priority.insert(name.to_string(), p);
                p
            }
            None => self.prop_priority.get(name).copied().unwrap_or_default(),
        }
    }
}

/// Sets or (with `""`) removes a property; returns whether it changed.
pub fn set_prop(props: &mut Properties, name: &str, value: &str) -> bool {
    match props.0.iter().position(|(n, _)| n == name) {
        Some(i) if value.is_empty() => {
            props.0.remove(i);
            true
        }
        Some(i) if props.0[i].1 == value => false,
        Some(i) => {
            props.0[i].1 = value.to_string();
            true
        }
        None if value.is_empty() => false,
        None => {
            props.0.push((name.to_string(), value.to_string()));
            true
        }
    }
}

/// The remote variables of one session.
#[derive(Debug, Default)]
pub struct RemoteVars {
    vars: HashMap<VarId, RemoteVar>,
    /// Roots in creation order (variable 1, backend variables with parent 0).
    roots: Vec<VarId>,
}

impl RemoteVars {
    pub fn exists(&self, id: VarId) -> bool {
        self.vars.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    pub fn get(&self, id: VarId) -> Option<&RemoteVar> {
        self.vars.get(&id)
    }

    pub fn get_mut(&mut self, id: VarId) -> Option<&mut RemoteVar> {
        self.vars.get_mut(&id)
    }

    /// Inserts a variable; the caller checked the id is free and the parent exists.
    pub fn insert(
        &mut self,
        id: VarId,
        parent: Option<VarId>,
        creator: Creator,
        value: Option<Json>,
        props: Properties,
    ) {
        match parent {
            Some(p) => {
                if let Some(pv) = self.vars.get_mut(&p) {
                    pv.children.push(id);
                }
            }
            None => self.roots.push(id),
        }
        let browser_props = if matches!(creator, Creator::Browser(_)) { props.clone() } else { Properties::default() };
        let var = RemoteVar {
            parent,
            children: Vec::new(),
            creator,
            value,
            props,
            browser_props,
            error: None,
            prop_priority: HashMap::new(),
            watched_before: false,
        };
        self.vars.insert(id, var);
    }

    /// Removes `id` and its subtree; returns the removed ids children first, siblings in creation order.
    pub fn remove(&mut self, id: VarId) -> Vec<VarId> {
        let Some(var) = self.vars.get(&id) else { return Vec::new() };
        match var.parent {
            Some(p) => {
                if let Some(pv) = self.vars.get_mut(&p) {
                    pv.children.retain(|c| *c != id);
                }
            }
            None => self.roots.retain(|r| *r != id),
        }
        let mut order = Vec::new();
        self.collect_post_order(id, &mut order);
        for v in &order {
            self.vars.remove(v);
        }
        order
    }

    fn collect_post_order(&self, id: VarId, out: &mut Vec<VarId>) {
        if let Some(var) = self.vars.get(&id) {
            for c in &var.children {
                self.collect_post_order(*c, out);
            }
        }
        out.push(id);
    }

    /// Every variable, parent before child, depth first, siblings in creation order.
    pub fn pre_order(&self) -> Vec<VarId> {
        let mut out = Vec::with_capacity(self.vars.len());
        let mut stack: Vec<VarId> = self.roots.iter().rev().copied().collect();
        while let Some(id) = stack.pop() {
            out.push(id);
            if let Some(var) = self.vars.get(&id) {
                stack.extend(var.children.iter().rev().copied());
            }
        }
        out
    }

    /// Ids the backend created (negative), for removal when it goes away.
    pub fn backend_created(&self) -> Vec<VarId> {
        self.pre_order().into_iter().filter(|id| id.0 < 0 && self.vars[id].creator == Creator::Backend).collect()
    }

    /// The full state a watcher gets from the mirror: value (readable variables the backend has sent a
    /// value for), all properties, then the last error.
    pub fn full_state(&self, id: VarId) -> Vec<ServerMessage> {
        let Some(var) = self.vars.get(&id) else { return Vec::new() };
        let mut out = Vec::new();
        let value = if var.readable() { var.value.clone() } else { None };
        if value.is_some() || !var.props.is_empty() {
            out.push(ServerMessage::Update(UpdateOut { var_id: id, value, properties: var.props.clone() }));
        }
        if let Some((code, description)) = &var.error {
            out.push(ServerMessage::error(id, *code, description.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Properties {
        Properties(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn tree_order_and_removal() {
        let mut r = RemoteVars::default();
        r.insert(VarId(1), None, Creator::Backend, Some(Json::Null), props(&[("type", "T")]));
        r.insert(VarId(2), Some(VarId(1)), Creator::Browser(ConnId(1)), None, props(&[("path", "a")]));
        r.insert(VarId(3), Some(VarId(2)), Creator::Browser(ConnId(1)), None, props(&[("path", "b")]));
        r.insert(VarId(4), Some(VarId(1)), Creator::Browser(ConnId(1)), None, props(&[("path", "c")]));
        r.insert(VarId(-1), None, Creator::Backend, None, Properties::default());
        assert_eq!(r.pre_order(), vec![VarId(1), VarId(2), VarId(3), VarId(4), VarId(-1)]);
        assert_eq!(r.backend_created(), vec![VarId(-1)]);
        assert_eq!(r.remove(VarId(2)), vec![VarId(3), VarId(2)]);
        assert_eq!(r.pre_order(), vec![VarId(1), VarId(4), VarId(-1)]);
        assert!(r.remove(VarId(99)).is_empty());
        assert_eq!(r.get(VarId(4)).unwrap().browser_props.get("path"), Some("c"));
    }

    #[test]
    fn property_edits() {
        let mut p = Properties::default();
        assert!(set_prop(&mut p, "a", "1"));
        assert!(!set_prop(&mut p, "a", "1"));
        assert!(set_prop(&mut p, "a", "2"));
        assert!(set_prop(&mut p, "a", ""));
        assert!(!set_prop(&mut p, "a", ""));
        assert!(p.is_empty());
    }
}
