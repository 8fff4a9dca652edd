//! What the registry keeps per session: enough to re-create it under the same URL after a restart.

use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, SessionId, VendedId};

/// One session as the registry stores it (JSON in the session's key). Not a protocol message: only
/// gateways of this version read it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub vended: VendedId,
    pub node: NodeId,
    /// Wall clock (Unix milliseconds) of the last frame, open or close, as of the last refresh.
    pub last_active_ms: u64,
    /// The backend epoch the vended id belongs to (connected and hybrid modes).
    pub epoch: Option<String>,
    /// Whether a browser frame arrived: a restored session keeps its unclaimed or idle timeout.
    pub claimed: bool,
}

/// The stored form: ids as the text they have in URLs and on the backend link.
#[derive(Serialize, Deserialize)]
struct Stored {
    id: String,
    vended: u64,
    node: String,
    last_active_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    epoch: Option<String>,
    #[serde(default)]
    claimed: bool,
}

/// A stored record that does not parse (written by another version, or by hand).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record is not JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("record has a bad session id")]
    Id(#[from] crate::ids::InvalidSessionId),
    #[error("record has a bad node id")]
    Node(#[from] crate::ids::InvalidNodeId),
}

impl SessionRecord {
    pub fn encode(&self) -> String {
        let stored = Stored {
            id: self.id.to_string(),
            vended: self.vended.0,
            node: self.node.to_string(),
            last_active_ms: self.last_active_ms,
            epoch: self.epoch.clone(),
            claimed: self.claimed,
        };
        serde_json::to_string(&stored).expect("a record always serializes")
    }

    pub fn decode(text: &str) -> Result<SessionRecord, RecordError> {
        let s: Stored = serde_json::from_str(text)?;
        Ok(SessionRecord {
            id: s.id.parse()?,
            vended: VendedId(s.vended),
            node: s.node.parse()?,
            last_active_ms: s.last_active_ms,
            epoch: s.epoch,
            claimed: s.claimed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let r = SessionRecord {
            id: SessionId::generate_on(Some(NodeId(2))),
            vended: VendedId(41),
            node: NodeId(2),
            last_active_ms: 1_700_000_000_000,
            epoch: Some("ab".repeat(16)),
            claimed: true,
        };
        assert_eq!(SessionRecord::decode(&r.encode()).unwrap(), r);
        let embedded = SessionRecord { epoch: None, claimed: false, ..r.clone() };
        assert!(!embedded.encode().contains("epoch"));
        assert_eq!(SessionRecord::decode(&embedded.encode()).unwrap(), embedded);
        assert!(matches!(SessionRecord::decode("{"), Err(RecordError::Json(_))));
        let bad_id = r.encode().replace(&r.id.to_string(), "XYZ");
        assert!(matches!(SessionRecord::decode(&bad_id), Err(RecordError::Id(_))));
        let bad_node = r.encode().replace("\"node\":\"02\"", "\"node\":\"2\"");
        assert!(matches!(SessionRecord::decode(&bad_node), Err(RecordError::Node(_))));
    }
}
