//! Where and how to connect.

use std::time::Duration;

/// The default gateway endpoint.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:8000/backend";

/// Connection settings. [`ClientConfig::from_env`] reads `UI_BACKEND_URL` (one URL, or several
/// separated by commas or spaces), `UI_BACKEND_TOKEN`, `UI_BACKEND_WORKER`, `UI_BACKEND_CAPACITY` and
/// `UI_BACKEND_DRAIN_TIMEOUT` (seconds).
#[derive(Clone)]
pub struct ClientConfig {
    /// `ws://host:port/backend` (or `wss://`).
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`; never logged.
    pub token: Option<String>,
    /// A gateway silent for this long (no frame, no ping) counts as gone. The gateway pings every
    /// 25 s; default 60 s.
    pub silence_timeout: Duration,
    /// More gateways to serve (a cluster): the client keeps one link to each, and a session belongs
    /// to the link it came from (vended ids are per gateway).
    pub also: Vec<String>,
    /// This worker's name in each gateway's pool (`?worker=NAME`): a worker that comes back under the
    /// same name within the gateway's grace gets its sessions back.
    pub worker: Option<String>,
    /// Relative capacity announced to each gateway (sessions are spread by it); `None` = 1.
    pub capacity: Option<u32>,
    /// How long a draining client (`RunningClient::drain`, or SIGTERM under `Backend::run`) keeps its
    /// sessions before it leaves anyway.
    pub drain_timeout: Duration,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("url", &self.url)
            .field("also", &self.also)
            .field("worker", &self.worker)
            .field("capacity", &self.capacity)
            .field("drain_timeout", &self.drain_timeout)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("silence_timeout", &self.silence_timeout)
            .field("also", &self.also)
            .field("worker", &self.worker)
            .field("capacity", &self.capacity)
            .field("drain_timeout", &self.drain_timeout)
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            url: DEFAULT_URL.to_string(),
            also: Vec::new(),
            token: None,
            silence_timeout: Duration::from_secs(60),
            worker: None,
            capacity: None,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl ClientConfig {
    /// `url`, no token.
    pub fn new(url: impl Into<String>) -> Self {
        ClientConfig { url: url.into(), ..Default::default() }
    }

    /// `UI_BACKEND_URL` (default [`DEFAULT_URL`]; several separated by commas or spaces),
    /// `UI_BACKEND_TOKEN`, `UI_BACKEND_WORKER`, `UI_BACKEND_CAPACITY`, `UI_BACKEND_DRAIN_TIMEOUT`
    /// (seconds); empty = unset.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        // Several gateways: a comma- or space-separated list.
        let mut urls: Vec<String> = var("UI_BACKEND_URL")
            .map(|v| v.split([',', ' ']).filter(|u| !u.is_empty()).map(str::to_string).collect())
            .unwrap_or_default();
        if urls.is_empty() {
            urls.push(DEFAULT_URL.to_string());
        }
        let url = urls.remove(0);
        ClientConfig {
            url,
            also: urls,
            token: var("UI_BACKEND_TOKEN"),
            worker: var("UI_BACKEND_WORKER"),
            capacity: var("UI_BACKEND_CAPACITY").and_then(|c| c.trim().parse().ok()),
            drain_timeout: var("UI_BACKEND_DRAIN_TIMEOUT")
                .and_then(|s| s.trim().trim_end_matches('s').parse().ok())
                .map_or(Duration::from_secs(30), Duration::from_secs),
            ..Default::default()
        }
    }

    /// Every gateway URL, with this worker's name and capacity as its query.
    pub fn endpoints(&self) -> Vec<String> {
        let mut query = Vec::new();
        if let Some(w) = &self.worker {
            query.push(format!("worker={w}"));
        }
        if let Some(c) = self.capacity {
            query.push(format!("capacity={c}"));
        }
        std::iter::once(&self.url)
            .chain(&self.also)
            .map(|u| match (query.is_empty(), u.contains('?')) {
                (true, _) => u.clone(),
                (false, false) => format!("{u}?{}", query.join("&")),
                (false, true) => format!("{u}&{}", query.join("&")),
            })
            .collect()
    }

    /// Serves another gateway too.
    pub fn with_gateway(mut self, url: impl Into<String>) -> Self {
        self.also.push(url.into());
        self
    }

    /// This worker's name in the gateways' pools.
    pub fn with_worker(mut self, name: impl Into<String>) -> Self {
        self.worker = Some(name.into());
        self
    }

    /// The capacity announced to the gateways.
    pub fn with_capacity(mut self, capacity: u32) -> Self {
        self.capacity = Some(capacity.max(1));
        self
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}
