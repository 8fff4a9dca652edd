//! One variable of the tree (docs/variables.md) and its bookkeeping: properties with priorities
//! and the changes waiting for the next pass (its ordered children are in `children.rs`).

use std::sync::Arc;

use super::children::Children;
use super::value::Snap;
use super::{Access, Origin, Resolver, VarError};
use crate::ids::VarId;
use crate::protocol::property::name as property;
use crate::protocol::Priority;

/// One step of a parsed path with its names interned (docs/variables.md "Paths").
pub(crate) enum Seg<K> {
    Name(K),
    Index(u32),
    Call(K),
    CallArg(K),
    Up,
}

/// A path as the tracker walks it: parsed and interned once at create, shared with passes by `Arc` so a
/// pass can walk it without holding the tracker's lock.
pub(crate) struct LocalPath<K> {
    pub segs: Box<[Seg<K>]>,
    /// Whether any `..` occurs: only then does a walk keep the values it passed.
    pub has_up: bool,
}

/// A stored property value with its delivery priority.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Prop {
    pub value: String,
    pub priority: Priority,
}

/// The variable's wrapper (docs/variables.md "Wrappers").
pub(crate) enum WrapState<V> {
    None,
    /// A `new`-style wrapper object: kept until the raw value changes or the `wrapper` property does.
    Object(V),
    /// A `computeValue`-style result: recomputed every pass.
    Computed(V),
}

impl<V> WrapState<V> {
    /// The value children navigate and the sent value comes from, if there is a wrapper.
    pub fn value(&self) -> Option<&V> {
        match self {
            WrapState::None => None,
            WrapState::Object(v) | WrapState::Computed(v) => Some(v),
        }
    }
}

/// What happened to a variable's value since the last pass.
#[derive(Clone, Debug)]
pub(crate) enum ValueNote {
    /// The sent value changed; `origin` wrote it (and must not get it echoed), `None` = everyone.
    Changed { origin: Option<Origin> },
    /// A new or different read error: goes out in the value's place.
    Error(VarError),
}

/// Changes recorded on a variable, waiting for the pass to order and emit them.
#[derive(Default, Debug)]
pub(crate) struct Pending {
    pub value: Option<ValueNote>,
    /// (name, priority at the time of the change, origin); one entry per name, latest change wins.
    pub props: Vec<(String, Priority, Option<Origin>)>,
}

impl Pending {
    /// Folds a later set of changes into this one: later notes win.
    pub fn merge(&mut self, later: Pending) {
        if later.value.is_some() {
            self.value = later.value;
        }
        for (name, priority, origin) in later.props {
            self.note_prop(name, priority, origin);
        }
    }

    pub fn note_prop(&mut self, name: String, priority: Priority, origin: Option<Origin>) {
        match self.props.iter_mut().find(|(n, _, _)| *n == name) {
            Some(entry) => {
                entry.1 = priority;
                entry.2 = origin;
            }
            None => self.props.push((name, priority, origin)),
        }
    }
}

/// One variable. Private to the tracker: the session reads it through accessors, because the table lives
/// behind a lock (see the module docs on re-entrancy).
pub(crate) struct Var<R: Resolver> {
    pub id: VarId,
    /// Creation number: orders roots, siblings and emission.
    pub seq: u64,
    pub parent: Option<VarId>,
    /// Index of this variable's entry in its parent's children (or the roots).
    pub slot: usize,
    pub children: Children,
    pub access: Access,
    /// `None` for roots (they show `fixed`).
    pub path: Option<Arc<LocalPath<R::Key>>>,
    /// Insertion-ordered; empty values are never stored.
    pub props: Vec<(String, Prop)>,
    /// From the `priority` property.
    pub value_priority: Priority,
    /// The `inactive` property is non-empty.
    pub inactive: bool,
    /// Watch tally above zero (maintained by the protocol layer); starts true.
    pub active: bool,
    /// Not yet reported by a pass.
    pub new: bool,
    /// Value of a root.
    pub fixed: Option<R::Value>,
    /// Last resolved value and its snapshot.
    pub raw: Option<R::Value>,
    pub raw_snap: Option<Arc<Snap>>,
    pub wrapper: WrapState<R::Value>,
    /// Snapshot of the wrapper value (stored slot: holds counts).
    pub wrap_snap: Option<Arc<Snap>>,
    /// The wrapper must be recomputed at the next computation (`wrapper` changed, or it failed).
    pub rewrap: bool,
    /// Snapshot last reported as the value (stored slot: holds counts).
    pub sent_snap: Option<Arc<Snap>>,
    pub error: Option<VarError>,
    /// A `create=T` failure at create (docs/variables.md "Access"): reported by the first pass in the value's place, even
    /// though the path itself reads fine (as nil).
    pub create_error: Option<VarError>,
    /// Type derived from the value or wrapper at the last derivation ("" when none).
    pub derived_type: String,
    /// `type` pinned by Lua or the backend; applies whenever the derived type is empty.
    pub pinned_type: Option<String>,
    pub pending: Option<Box<Pending>>,
}

impl<R: Resolver> Var<R> {
    pub fn new(id: VarId, seq: u64, parent: Option<VarId>, access: Access) -> Self {
        Var {
            id,
            seq,
            parent,
            slot: 0,
            children: Children::default(),
            access,
            path: None,
            props: Vec::new(),
            value_priority: Priority::Medium,
            inactive: false,
            active: true,
            new: true,
            fixed: None,
            raw: None,
            raw_snap: None,
            wrapper: WrapState::None,
            wrap_snap: None,
            rewrap: false,
            sent_snap: None,
            error: None,
            create_error: None,
            derived_type: String::new(),
            pinned_type: None,
            pending: None,
        }
    }

    /// Resolved by this tracker's host: every readable variable (`w` and `action` have no value).
    pub fn resolves(&self) -> bool {
        self.access.readable()
    }

    pub fn prop(&self, name: &str) -> Option<&str> {
        self.props.iter().find(|(n, _)| n == name).map(|(_, p)| p.value.as_str())
    }

    pub fn prop_priority(&self, name: &str) -> Option<Priority> {
        self.props.iter().find(|(n, _)| n == name).map(|(_, p)| p.priority)
    }

    /// Sets a property (`""` deletes; `priority` `None` keeps the old one, medium if new) and keeps the
    /// derived flags in step. Returns the priority the change goes out with, or `None` if nothing changed
    /// (same value and priority).
    pub fn set_prop(&mut self, name: &str, value: &str, priority: Option<Priority>) -> Option<Priority> {
        let changed = match self.props.iter().position(|(n, _)| n == name) {
            Some(i) if value.is_empty() => Some(self.props.remove(i).1.priority),
            Some(i) => {
                let p = &mut self.props[i].1;
                let new_priority = priority.unwrap_or(p.priority);
                if p.value == value && p.priority == new_priority {
                    None
                } else {
                    p.value.clear();
                    p.value.push_str(value);
                    p.priority = new_priority;
                    Some(new_priority)
                }
            }
            None if value.is_empty() => None,
            None => {
                let p = priority.unwrap_or_default();
                // Most variables hold one to three properties for life: grow one at a time rather than
                // to the usual four entries (56 bytes each, per variable).
                self.props.reserve_exact(1);
                self.props.push((name.to_string(), Prop { value: value.to_string(), priority: p }));
                Some(p)
            }
        };
        if changed.is_some() {
            match name {
                property::PRIORITY => self.value_priority = Priority::from_property(value),
                "inactive" => self.inactive = !value.is_empty(),
                property::WRAPPER => self.rewrap = true,
                _ => {}
            }
        }
        changed
    }

    /// The `type` property this variable should show: derived, else pinned, else none.
    pub fn effective_type(&self) -> &str {
        if !self.derived_type.is_empty() {
            &self.derived_type
        } else {
            self.pinned_type.as_deref().unwrap_or("")
        }
    }

    /// The changes record, registering the variable as dirty the first time.
    pub fn pending_mut(&mut self, dirty: &mut Vec<(VarId, u64)>) -> &mut Pending {
        if self.pending.is_none() {
            dirty.push((self.id, self.seq));
        }
        self.pending.get_or_insert_with(Default::default)
    }
}
