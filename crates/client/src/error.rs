//! Typed errors of the backend client.

/// What can go wrong for a backend.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not a `ws://` or `wss://` URL, or a header value is invalid.
    #[error("invalid backend configuration: {0}")]
    Config(String),
    /// The gateway refused the connection (401: token missing or wrong; 403: not local and no token
    /// configured on the gateway). Not retried.
    #[error("the gateway refused the backend connection (HTTP {status})")]
    Refused { status: u16 },
    /// The WebSocket failed (connect, read or write). Retried.
    #[error("backend connection failed: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// The gateway speaks another protocol version. Retried (the gateway may be upgraded).
    #[error("the gateway speaks protocol {0}, this client protocol 1")]
    Protocol(u64),
    /// The gateway sent something unreadable where a welcome was expected.
    #[error("unexpected frame from the gateway: {0}")]
    Frame(String),
    /// The gateway stayed silent for too long (no frame, no ping).
    #[error("the gateway went silent")]
    Silent,
    /// The session a [`SessionHandle`](super::SessionHandle) points to is gone.
    #[error("the session is gone")]
    SessionGone,
    /// The client's thread or runtime failed.
    #[error("backend client runtime: {0}")]
    Runtime(String),
}
