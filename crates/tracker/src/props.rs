//! Property writes (docs/variables.md "Properties"): who may set what, suffix priorities, `""` deletes, the
//! `type` pin, and change recording. No host code runs here, so everything happens under one lock.

use super::budget::{prop_bytes, Bytes};
use super::shared::{At, Shared};
use super::variable::Var;
use super::{Origin, Resolver, VarError, Writer};
use crate::ids::VarId;
use crate::protocol::property::name as property;
use crate::protocol::{ErrorCode, Priority, PropertyWrite};

pub(crate) use crate::protocol::property::{decide, Decision};

pub(crate) fn denied(names: &[&str]) -> VarError {
    VarError::new(ErrorCode::AccessDenied, format!("may not set {}", names.join(", ")))
}

/// Applies one decided write to a variable, within the tracker's property limits (`limit-exceeded`
/// otherwise, and nothing changes). Returns the change to report, if any: (name, priority).
pub(crate) fn apply<'a, R: Resolver>(
    var: &mut Var<R>,
    bytes: &mut Bytes,
    decision: Decision,
    p: &'a PropertyWrite,
) -> Result<Option<(&'a str, Priority)>, VarError> {
    Ok(match decision {
        Decision::Store => store(var, bytes, &p.name, &p.value, p.priority)?.map(|pr| (p.name.as_str(), pr)),
        Decision::Pin => {
            bytes.check_prop(&var.props, property::TYPE, &p.value)?;
            var.pinned_type = (!p.value.is_empty()).then(|| p.value.clone());
            let shown = var.effective_type().to_string();
            store(var, bytes, property::TYPE, &shown, p.priority)?.map(|pr| (property::TYPE, pr))
        }
        Decision::Drop | Decision::Deny => None,
    })
}

/// Sets one property if the limits allow it, keeping the running byte total.
pub(crate) fn store<R: Resolver>(
    var: &mut Var<R>,
    bytes: &mut Bytes,
    name: &str,
    value: &str,
    priority: Option<Priority>,
) -> Result<Option<Priority>, VarError> {
    bytes.check_prop(&var.props, name, value)?;
    let old = var.prop(name).map_or(0, |v| prop_bytes(name, v));
    let changed = var.set_prop(name, value, priority);
    bytes.book_prop(old, var.prop(name).map_or(0, |v| prop_bytes(name, v)));
    Ok(changed)
}

/// The property bytes a variable holds (booked off when it is destroyed).
pub(crate) fn held<R: Resolver>(var: &Var<R>) -> usize {
    var.props.iter().map(|(n, p)| prop_bytes(n, &p.value)).sum()
}

impl<R: Resolver> Shared<R> {
    /// Sets properties of an existing variable: suffix priorities apply, `""` deletes, re-setting an
    /// equal value and priority is not a change. Changes are reported at the next pass with `origin`
    /// (not echoed to it). Refused names (docs/variables.md "Properties") yield one `access-denied`; the other properties apply.
    /// Changing `wrapper` rewraps at the next computation; `priority` moves the value's bucket;
    /// `inactive` stops computing the subtree and drops writes into it. A property over the tracker's
    /// limits (count, size, session bytes) is refused with `limit-exceeded`, which then wins over
    /// `access-denied` as the one error returned; the other properties still apply.
    pub fn set_properties(
        &self,
        id: VarId,
        props: &[PropertyWrite],
        writer: Writer,
        origin: Option<Origin>,
    ) -> Result<(), VarError> {
        let mut st = self.lock();
        let st = &mut *st;
        let var = st
            .vars
            .get_mut(&id)
            .ok_or_else(|| VarError::new(ErrorCode::NotFound, format!("variable {id} not found")))?;
        let at = At { id, seq: var.seq };
        let mut refused = Vec::new();
        let mut over = None;
        let mut changes = Vec::new();
        for p in props {
            let decision = decide(&p.name, writer, false);
            if decision == Decision::Deny {
                refused.push(p.name.as_str());
                continue;
            }
            match apply(var, &mut st.bytes, decision, p) {
                Ok(Some((name, priority))) => changes.push((name, priority)),
                Ok(None) => {}
                Err(e) => over = over.or(Some(e)),
            }
        }
        for (name, priority) in changes {
            st.note_prop(at, name, priority, origin);
        }
        match over {
            Some(e) => Err(e),
            None if refused.is_empty() => Ok(()),
            None => Err(denied(&refused)),
        }
    }
}
