//! What writers may make one tracker hold (security review H5, M3): a cap on properties per variable and
//! on one property's size (paths included), and a byte budget for the whole tracker that counts stored
//! property bytes plus the value snapshots kept for change detection.
//!
//! The accounting is kept as running totals updated where properties and snapshots are stored or
//! dropped, so checking a write costs O(1) (plus the size of what is being written).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value as Json;

use super::value::Snap;
use super::variable::Prop;
use super::VarError;
use crate::protocol::ErrorCode;

/// The limits (flags `--max-properties`, `--max-property-bytes`, `--max-session-bytes`,
/// `--max-variables`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrackerLimits {
    /// Stored properties per variable.
    pub max_properties: usize,
    /// Name plus value of one property, in bytes (a `path` counts as a property).
    pub max_property_bytes: usize,
    /// Property bytes plus snapshot bytes of the whole tracker (one session).
    pub max_session_bytes: usize,
    /// Variables in the tracker; enforced for Lua's `session:createVariable` (browsers and the backend
    /// are checked by the session, which also counts the remote mirror).
    pub max_variables: usize,
}

impl Default for TrackerLimits {
    fn default() -> Self {
        TrackerLimits {
            max_properties: 64,
            max_property_bytes: 64 << 10,
            max_session_bytes: 32 << 20,
            max_variables: 100_000,
        }
    }
}

/// Running totals and the limits they are held to.
#[derive(Debug, Default)]
pub(crate) struct Bytes {
    pub limits: TrackerLimits,
    /// Name + value bytes of every stored property.
    pub props: usize,
    /// [`snap_bytes`] of every stored raw and wrapper snapshot (the sent snapshot shares one of them).
    pub snaps: usize,
}

/// The bytes one stored property costs.
pub(crate) fn prop_bytes(name: &str, value: &str) -> usize {
    name.len() + value.len()
}

/// Which of the tracker's limits refused a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackerLimit {
    Properties,
    PropertyBytes,
    SessionBytes,
}

impl TrackerLimit {
    pub const ALL: [TrackerLimit; 3] =
        [TrackerLimit::Properties, TrackerLimit::PropertyBytes, TrackerLimit::SessionBytes];
}

/// Refusals per limit, process-wide. The tracker has no metrics of its own (it is a library); the
/// gateway reads these at scrape time.
static HITS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// How many writes `limit` refused in this process so far.
pub fn limit_hits(limit: TrackerLimit) -> u64 {
    HITS[limit as usize].load(Ordering::Relaxed)
}

fn refuse(limit: TrackerLimit, description: String) -> VarError {
    HITS[limit as usize].fetch_add(1, Ordering::Relaxed);
    VarError::new(ErrorCode::LimitExceeded, description)
}

impl Bytes {
    pub fn total(&self) -> usize {
        self.props + self.snaps
    }

    /// Checks that setting property `name` to `value` on a variable holding `props` stays within the
    /// limits; an empty value (a delete) always passes. Does not book anything (see [`Bytes::book_prop`]).
    pub fn check_prop(&self, props: &[(String, Prop)], name: &str, value: &str) -> Result<(), VarError> {
        if value.is_empty() {
            return Ok(());
        }
        let new = prop_bytes(name, value);
        if new > self.limits.max_property_bytes {
            return Err(refuse(
                TrackerLimit::PropertyBytes,
                format!("property {name} is {new} bytes, over the {} limit", self.limits.max_property_bytes),
            ));
        }
        let old = props.iter().find(|(n, _)| n == name).map(|(n, p)| prop_bytes(n, &p.value));
        if old.is_none() && props.len() >= self.limits.max_properties {
            return Err(refuse(
                TrackerLimit::Properties,
                format!("a variable holds at most {} properties", self.limits.max_properties),
            ));
        }
        self.check_growth(old.unwrap_or(0), new)
    }

    /// Checks that replacing `old` bytes with `new` ones keeps the tracker within its byte budget
    /// (shrinking always passes).
    pub fn check_growth(&self, old: usize, new: usize) -> Result<(), VarError> {
        if new > old && self.total().saturating_sub(old) + new > self.limits.max_session_bytes {
            return Err(refuse(
                TrackerLimit::SessionBytes,
                format!("the session's tracked bytes would pass the {} budget", self.limits.max_session_bytes),
            ));
        }
        Ok(())
    }

    /// Books a property change: `old` and `new` are the costs before and after (0 = absent).
    pub fn book_prop(&mut self, old: usize, new: usize) {
        self.props = (self.props + new).saturating_sub(old);
    }

    /// Books a snapshot replacing another in a stored slot.
    pub fn book_snap(&mut self, old: Option<&Snap>, new: Option<&Snap>) {
        let (old, new) = (old.map_or(0, snap_bytes), new.map_or(0, snap_bytes));
        self.snaps = (self.snaps + new).saturating_sub(old);
    }
}

/// Heap bytes a snapshot holds (its node plus strings and arrays below it).
pub fn snap_bytes(snap: &Snap) -> usize {
    std::mem::size_of::<Snap>()
        + match snap {
            Snap::Str(s) => s.len(),
            Snap::Arr(items) => items.iter().map(snap_bytes).sum(),
            _ => 0,
        }
}

/// About the bytes a written JSON value will take as a snapshot (strings by length, everything else by
/// node), so a write can be refused before it is converted.
pub fn json_bytes(json: &Json) -> usize {
    std::mem::size_of::<Snap>()
        + match json {
            Json::String(s) => s.len(),
            Json::Array(items) => items.iter().map(json_bytes).sum(),
            Json::Object(map) => map.iter().map(|(k, v)| k.len() + json_bytes(v)).sum(),
            _ => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Priority;

    fn prop(v: &str) -> Prop {
        Prop { value: v.to_string(), priority: Priority::Medium }
    }

    #[test]
    fn property_caps_and_budget() {
        let limits =
            TrackerLimits { max_properties: 2, max_property_bytes: 10, max_session_bytes: 30, max_variables: 5 };
        let mut b = Bytes { limits, ..Bytes::default() };
        let props = vec![("a".to_string(), prop("1234")), ("b".to_string(), prop("1"))];
        b.book_prop(0, 5);
        b.book_prop(0, 2);
        assert_eq!(b.total(), 7);
        // Size of one property: name + value.
        assert_eq!(b.check_prop(&props, "a", "1234567890").unwrap_err().code, ErrorCode::LimitExceeded);
        assert!(b.check_prop(&props, "a", "123456789").is_ok());
        // Count: a third name is refused, replacing or deleting one is fine.
        assert!(b.check_prop(&props, "c", "1").is_err());
        assert!(b.check_prop(&props, "b", "2").is_ok());
        assert!(b.check_prop(&props, "c", "").is_ok());
        // The session budget counts snapshots too.
        b.snaps = 22;
        assert!(b.check_growth(0, 1).is_ok());
        assert!(b.check_growth(0, 2).is_err());
        assert!(b.check_growth(5, 6).is_ok());
        assert!(b.check_growth(5, 4).is_ok());
    }

    #[test]
    fn snapshot_bytes_count_strings_and_arrays() {
        let node = std::mem::size_of::<Snap>();
        assert_eq!(snap_bytes(&Snap::Int(3)), node);
        let s = Snap::Arr(vec![Snap::Str(b"hello".to_vec().into()), Snap::Null].into());
        assert_eq!(snap_bytes(&s), 3 * node + 5);
        let mut b = Bytes::default();
        b.book_snap(None, Some(&s));
        assert_eq!(b.snaps, 3 * node + 5);
        b.book_snap(Some(&s), Some(&Snap::Null));
        assert_eq!(b.snaps, node);
        b.book_snap(Some(&Snap::Null), None);
        assert_eq!(b.snaps, 0);
        assert_eq!(json_bytes(&serde_json::json!(["hello", null])), 3 * node + 5);
    }
}
