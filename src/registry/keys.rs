//! Redis key names, in one place so the layout in docs/deploy/cluster.md "Registry keys" stays true.

use crate::ids::{NodeId, SessionId};

/// The cluster-wide vended id counter (`INCR`): ids are unique across nodes and never reused.
pub const VENDED: &str = "ui:vended";

/// A node's backend epoch, kept across its restarts so a backend's state carries over.
pub fn epoch(node: NodeId) -> String {
    format!("ui:node:{node}:epoch")
}

/// One session's record; it expires on its own when the session has been idle past its timeout.
pub fn session(node: NodeId, id: &SessionId) -> String {
    format!("ui:node:{node}:session:{id}")
}

/// The `SCAN` pattern matching every session record of a node.
pub fn sessions_pattern(node: NodeId) -> String {
    format!("ui:node:{node}:session:*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_the_node_prefix() {
        let node = NodeId(0x0a);
        let id: SessionId = "0a41402abc4b2a76b9719d911017c592".parse().unwrap();
        assert_eq!(epoch(node), "ui:node:0a:epoch");
        assert_eq!(session(node, &id), "ui:node:0a:session:0a41402abc4b2a76b9719d911017c592");
        assert_eq!(sessions_pattern(node), "ui:node:0a:session:*");
    }
}
