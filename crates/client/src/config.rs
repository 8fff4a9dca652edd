//! Where and how to connect.

use std::time::Duration;

/// The default gateway endpoint.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:8000/backend";

/// Connection settings. [`ClientConfig::from_env`] reads `UI_BACKEND_URL` and `UI_BACKEND_TOKEN`.
#[derive(Clone)]
pub struct ClientConfig {
    /// `ws://host:port/backend` (or `wss://`).
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`; never logged.
    pub token: Option<String>,
    /// A gateway silent for this long (no frame, no ping) counts as gone. The gateway pings every
    /// 25 s; default 60 s.
    pub silence_timeout: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("silence_timeout", &self.silence_timeout)
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig { url: DEFAULT_URL.to_string(), token: None, silence_timeout: Duration::from_secs(60) }
    }
}

impl ClientConfig {
    /// `url`, no token.
    pub fn new(url: impl Into<String>) -> Self {
        ClientConfig { url: url.into(), ..Default::default() }
    }

    /// `UI_BACKEND_URL` (default [`DEFAULT_URL`]) and `UI_BACKEND_TOKEN` (empty = none).
    pub fn from_env() -> Self {
        let url = std::env::var("UI_BACKEND_URL").ok().filter(|u| !u.is_empty());
        let token = std::env::var("UI_BACKEND_TOKEN").ok().filter(|t| !t.is_empty());
        ClientConfig { url: url.unwrap_or_else(|| DEFAULT_URL.to_string()), token, ..Default::default() }
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}
