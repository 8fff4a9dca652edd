//! Value writes (docs/variables.md "Access") and the combined inbound `update`.

use serde_json::Value as Json;

use super::budget::{json_bytes, snap_bytes};
use super::compute::Target;
use super::shared::{At, Shared};
use super::value::{json_obj_refs, json_too_deep};
use super::variable::{Seg, ValueNote};
use super::{Access, Origin, Resolver, VarError, Writer};
use crate::ids::VarId;
use crate::protocol::{ErrorCode, PropertyWrite};

fn denied(description: impl Into<String>) -> VarError {
    VarError::new(ErrorCode::AccessDenied, description)
}

impl<R: Resolver> Shared<R> {
    /// An inbound `update`: properties first (docs/variables.md "Properties"), then the value if present (docs/variables.md "Access"). Returns the
    /// errors for the sender, in that order (empty on success).
    pub fn update(
        &self,
        res: &R,
        id: VarId,
        properties: &[PropertyWrite],
        value: Option<&Json>,
        writer: Writer,
        origin: Option<Origin>,
    ) -> Vec<VarError> {
        let mut errors = Vec::new();
        if !properties.is_empty() {
            if let Err(e) = self.set_properties(id, properties, writer, origin) {
                let unknown = e.code == ErrorCode::NotFound;
                errors.push(e);
                if unknown {
                    return errors;
                }
            }
        }
        if let Some(v) = value {
            if let Err(e) = self.write(res, id, v, origin) {
                errors.push(e);
            }
        }
        errors
    }

    /// Writes a value (docs/variables.md "Access"). Refused with `access-denied` for `r` variables and roots; silently dropped
    /// inside an `inactive` subtree. The JSON is converted (`{"obj":N}` is the registered object itself,
    /// unknown → `not-found`; deeper than 32 → `limit-exceeded`), all but the last segment are walked
    /// (nil → `path-failure`) and the last one is applied per the docs/variables.md "Access" table. Host effects before an
    /// error persist. A value that would take the session's tracked bytes (`--max-session-bytes`, with
    /// the variable's current snapshot counted as freed) over budget is `limit-exceeded` before anything
    /// runs. After an `rw` success the written value becomes the cache and, if the sent value
    /// changed, a value change is recorded with `origin` (so it is not echoed to the writer; the next
    /// pass replaces that with an everyone-change if the value read back differs).
    pub fn write(&self, res: &R, id: VarId, json: &Json, origin: Option<Origin>) -> Result<(), VarError> {
        let (at, access) = {
            let st = self.lock();
            let var = st
                .vars
                .get(&id)
                .ok_or_else(|| VarError::new(ErrorCode::NotFound, format!("variable {id} not found")))?;
            if var.path.is_none() {
                return Err(denied(format!("variable {id} has no path")));
            }
            if var.access == Access::R {
                return Err(denied(format!("variable {id} is read-only")));
            }
            if st.inactive_chain(id) {
                return Ok(());
            }
            (At { id, seq: var.seq }, var.access)
        };
        if json_too_deep(json) {
            return Err(VarError::new(ErrorCode::LimitExceeded, "value nested deeper than 32"));
        }
        {
            let st = self.lock();
            let old = st.live(at).and_then(|v| v.raw_snap.as_deref()).map_or(0, snap_bytes);
            st.bytes.check_growth(old, json_bytes(json))?;
        }
        let mut refs = Vec::new();
        json_obj_refs(json, &mut refs);
        let objects = self.lock().registry.subset(refs);
        let v = res.from_json(json, &objects);
        drop(objects);
        let v = v?;
        let Some(target) = self.target(res, at)? else { return Ok(()) };
        apply_last(res, &target, access, v.clone())?;
        if access == Access::Rw {
            // The write happened; a failure to cache it shows up at the next pass, which re-reads.
            if let Ok(Some(true)) = self.apply_raw(res, at, v) {
                self.lock().note_value(at, ValueNote::Changed { origin });
            }
        }
        Ok(())
    }
}

/// The last-segment table of docs/variables.md "Access". Return values of calls are ignored.
fn apply_last<R: Resolver>(res: &R, target: &Target<R>, access: Access, v: R::Value) -> Result<(), VarError> {
    let c = &target.base;
    match (target.last(), access) {
        (Seg::Up, _) => Err(VarError::new(ErrorCode::PathFailure, "cannot write to '..'")),
        (Seg::Name(k), _) => res.set(c, k, v),
        (Seg::Index(i), _) => res.set_index(c, *i, v),
        (Seg::Call(k), Access::Rw) => res.call(c, k, Some(v)).map(drop),
        (Seg::Call(k), Access::Action) => res.call(c, k, None).map(drop),
        (Seg::CallArg(k), Access::W | Access::Action) => res.call(c, k, Some(v)).map(drop),
        // Refused at create (docs/variables.md "Access"); kept as a guard.
        (Seg::Call(_), _) | (Seg::CallArg(_), _) => Err(denied("this access mode cannot write this path")),
    }
}
