//! The protocol's error codes: the one place they are spelled.

use std::fmt;

/// Every `code` an `error` message can carry (PROTOCOL.md A7, B12).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ErrorCode {
    BadMessage,
    NotFound,
    PathFailure,
    AccessDenied,
    IdInUse,
    LuaError,
    LuaTimeout,
    LuaMemory,
    BackendUnavailable,
    LimitExceeded,
    Internal,
}

impl ErrorCode {
    /// All codes, in the order of the spec's table.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::BadMessage,
        ErrorCode::NotFound,
        ErrorCode::PathFailure,
        ErrorCode::AccessDenied,
        ErrorCode::IdInUse,
        ErrorCode::LuaError,
        ErrorCode::LuaTimeout,
        ErrorCode::LuaMemory,
        ErrorCode::BackendUnavailable,
        ErrorCode::LimitExceeded,
        ErrorCode::Internal,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadMessage => "bad-message",
            ErrorCode::NotFound => "not-found",
            ErrorCode::PathFailure => "path-failure",
            ErrorCode::AccessDenied => "access-denied",
            ErrorCode::IdInUse => "id-in-use",
            ErrorCode::LuaError => "lua-error",
            ErrorCode::LuaTimeout => "lua-timeout",
            ErrorCode::LuaMemory => "lua-memory",
            ErrorCode::BackendUnavailable => "backend-unavailable",
            ErrorCode::LimitExceeded => "limit-exceeded",
            ErrorCode::Internal => "internal",
        }
    }

    /// Parses the wire spelling (used for `error` messages a backend sends).
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// WebSocket close codes the gateway sends.
pub mod close {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Gateway shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A WebSocket framing violation by the peer.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Counted, never sent: the connection ended without a close frame (RFC 6455 §7.1.5).
    pub const ABNORMAL: u16 = 1006;
    /// A text frame that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Inbound frame over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Internal error (backend link).
    pub const INTERNAL: u16 = 1011;
    /// Peer reads too slowly: outbound queue full.
    pub const SLOW_READER: u16 = 1013;
    /// No such session, or the session ended.
    pub const UNKNOWN_SESSION: u16 = 4404;
    /// Peer silent past `--idle-close`.
    pub const SILENT_PEER: u16 = 4408;
    /// Another backend is already connected.
    pub const BACKEND_BUSY: u16 = 4409;
    /// The session's connection limit is reached.
    pub const CONNECTION_LIMIT: u16 = 4429;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()));
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("Bad-Message"), None);
        assert_eq!(serde_json::to_string(&ErrorCode::LuaTimeout).unwrap(), "\"lua-timeout\"");
    }
}
