//! Typed identifiers.
//!
//! The gateway juggles four kinds of ids that are all "just numbers or strings" on the wire; giving each
//! its own type keeps a vended id from ever being used where a variable id is expected.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Internal session id: 128 bits from the OS CSPRNG, written as 32 lowercase hex digits.
///
/// It appears in URLs and is a bearer capability, so it is never shortened or reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Uuid);

impl SessionId {
    /// Draws a fresh id from the OS random source.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the OS random source is unavailable");
        SessionId(Uuid::from_bytes(bytes))
    }

    /// A fresh id whose first byte names `node` (`--node-id`), so a load balancer can route the
    /// session's URLs by their first two hex digits; the other 120 bits stay random, which keeps the
    /// id unguessable.
    pub fn generate_on(node: Option<NodeId>) -> Self {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the OS random source is unavailable");
        if let Some(node) = node {
            bytes[0] = node.0;
        }
        SessionId(Uuid::from_bytes(bytes))
    }

    /// The node prefix: the first byte, which names the creating node when `--node-id` is set.
    pub fn node(&self) -> NodeId {
        NodeId(self.0.as_bytes()[0])
    }

    /// The first 8 hex digits, for `--redact-ids` logging.
    pub fn redacted(&self) -> String {
        self.to_string()[..8].to_string()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({})", self.0.simple())
    }
}

/// Error for a string that is not exactly 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a session id (32 lowercase hex digits)")]
pub struct InvalidSessionId;

impl FromStr for SessionId {
    type Err = InvalidSessionId;

    /// Accepts exactly 32 lowercase hex digits: ids are matched exactly, so `ABC…` or a hyphenated UUID
    /// is a different (static) path, never the same session.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(InvalidSessionId);
        }
        Uuid::try_parse(s).map(SessionId).map_err(|_| InvalidSessionId)
    }
}

/// A gateway node's shard prefix (`--node-id HH`): two lowercase hex digits, the first byte of every
/// session id the node creates. It names a shard, not a machine: a process restarted with the same
/// node id serves (and, with the registry, restores) the same ids.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeId(pub u8);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.0)
    }
}

/// Error for a node id that is not exactly two hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a node id (two hex digits, 00 to ff)")]
pub struct InvalidNodeId;

impl FromStr for NodeId {
    type Err = InvalidNodeId;

    /// Two hex digits, either case (written back in lowercase, as URLs carry it).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidNodeId);
        }
        u8::from_str_radix(s, 16).map(NodeId).map_err(|_| InvalidNodeId)
    }
}

/// Vended session id: a small sequential number ("1", "2", …) that backends and Lua see instead of the
/// internal id. Never reused within one process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct VendedId(pub u64);

impl fmt::Display for VendedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for VendedId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(VendedId)
    }
}

/// A variable id. 1 is the app variable, negative ids are created by Lua or a backend, ids ≥ 2 are
/// browser-created. Which space an id belongs to (a connection's client ids or the session-wide global
/// ids) depends on where it is used; see `session::connection`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Default)]
pub struct VarId(pub i64);

impl VarId {
    /// The app variable every session's UI starts from.
    pub const APP: VarId = VarId(1);
    /// "No variable": used in frame-level errors.
    pub const NONE: VarId = VarId(0);

    /// Variable 1 and negative ids are the same on every connection.
    pub fn is_shared(self) -> bool {
        self.0 <= 1
    }
}

impl fmt::Display for VarId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One browser WebSocket connection, unique for the life of the process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_32_lowercase_hex_and_round_trip() {
        let id = SessionId::generate();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert!(text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_eq!(text.parse::<SessionId>().unwrap(), id);
        assert_eq!(id.redacted(), &text[..8]);
    }

    #[test]
    fn session_ids_differ() {
        assert_ne!(SessionId::generate(), SessionId::generate());
    }

    #[test]
    fn session_id_parsing_is_exact() {
        let id = SessionId::generate().to_string();
        assert!(id.to_uppercase().parse::<SessionId>().is_err());
        assert!(id[..31].parse::<SessionId>().is_err());
        assert!(format!("{id}0").parse::<SessionId>().is_err());
        assert!("5d41402a-bc4b-2a76-b971-9d911017c592".parse::<SessionId>().is_err());
        assert!("5d41402abc4b2a76b9719d911017c59g".parse::<SessionId>().is_err());
        assert!("5d41402abc4b2a76b9719d911017c592".parse::<SessionId>().is_ok());
    }

    #[test]
    fn node_ids_prefix_session_ids_and_keep_the_rest_random() {
        let node: NodeId = "a7".parse().unwrap();
        assert_eq!("A7".parse::<NodeId>().unwrap(), node);
        assert_eq!(node.to_string(), "a7");
        for bad in ["", "7", "a70", "g1", "-1"] {
            assert_eq!(bad.parse::<NodeId>(), Err(InvalidNodeId), "{bad}");
        }
        let a = SessionId::generate_on(Some(node));
        let b = SessionId::generate_on(Some(node));
        assert!(a.to_string().starts_with("a7") && b.to_string().starts_with("a7"));
        assert_eq!(a.node(), node);
        assert_ne!(a, b);
        assert_eq!(a.to_string().parse::<SessionId>().unwrap(), a);
        assert_eq!("05".parse::<NodeId>().unwrap().to_string(), "05");
    }

    #[test]
    fn shared_var_ids() {
        assert!(VarId(1).is_shared());
        assert!(VarId(-5).is_shared());
        assert!(!VarId(2).is_shared());
    }
}
