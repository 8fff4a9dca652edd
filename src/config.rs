//! Command line and configuration (docs/configuration.md): every flag has a `UI_*` environment variable and
//! a default; precedence is flag, then environment, then default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::session::manager::admission::{AdmissionConfig, Cidr, SessionRate};
use crate::units::{parse_bool, parse_bytes, parse_duration};

/// ui-gateway: a web UI for programs, without frontend code.
#[derive(Parser, Debug)]
#[command(name = "ui-gateway", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway (the default command).
    Serve(Box<ServeArgs>),
    /// Built-in load generator: simulated browsers against a running server (docs/configuration.md "ui-gateway loadtest").
    Loadtest(crate::loadtest::LoadtestArgs),
    /// Create a new site in DIR (a small app that runs at once): then `ui-gateway DIR --watch`.
    New(NewArgs),
}

/// Arguments of `ui-gateway new`.
#[derive(Args, Debug, Clone)]
pub struct NewArgs {
    /// The directory to create (it must not exist, or be empty).
    pub dir: PathBuf,
}

/// How sessions get their state (docs/configuration.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// `embedded` when Lua is enabled and the site has `lua/main.lua`, else `connected`.
    Auto,
    /// Per-session Lua only.
    Embedded,
    /// An external backend over `/backend` only.
    Connected,
    /// Lua and a backend.
    Hybrid,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Embedded => "embedded",
            Mode::Connected => "connected",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// Who may see `/<id>/variables[.json]` (docs/configuration.md, docs/deployment.md "Security").
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DebugPages {
    /// Local requests only.
    Auto,
    /// Everyone who knows the session URL.
    On,
    Off,
}

impl DebugPages {
    pub fn as_str(self) -> &'static str {
        match self {
            DebugPages::Auto => "auto",
            DebugPages::On => "on",
            DebugPages::Off => "off",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of `ui-gateway serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// TCP listen address, HOST:PORT (a host name such as localhost resolves; IPv4 first); port 0
    /// picks a free port (logged).
    #[arg(long, env = "UI_LISTEN", default_value = "127.0.0.1:8000", value_parser = parse_listen)]
    pub listen: SocketAddr,

    /// Site directory (html/, viewdefs/, lua/main.lua); default: the built-in demo.
    #[arg(long, env = "UI_SITE")]
    pub site: Option<PathBuf>,

    /// The site directory as a positional argument: `ui-gateway examples/adder` is `--site examples/adder`.
    #[arg(value_name = "SITE", conflicts_with = "site")]
    pub site_dir: Option<PathBuf>,

    /// auto, embedded, connected or hybrid.
    #[arg(long, env = "UI_MODE", value_enum, default_value = "auto")]
    pub mode: Mode,

    /// Do not load Lua (env: UI_LUA=false).
    #[arg(long = "no-lua")]
    pub no_lua: bool,

    /// Hot reload: rerun changed lua/ files in the sessions that loaded them, re-send changed
    /// viewdefs/ to the pages that use them. Needs --site.
    #[arg(long, env = "UI_WATCH", default_value_t = false, value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true")]
    pub watch: bool,

    /// Bearer token for /backend: at least 16 printable ASCII characters, no spaces. Prefer the
    /// environment or --backend-token-file (argv is visible in process lists).
    #[arg(long, env = "UI_BACKEND_TOKEN", hide_env_values = true, conflicts_with = "backend_token_file")]
    pub backend_token: Option<String>,

    /// Read the /backend token from a file (one trailing newline stripped).
    #[arg(long, env = "UI_BACKEND_TOKEN_FILE")]
    pub backend_token_file: Option<PathBuf>,

    /// Backend frame limit, both directions (BYTES).
    #[arg(long, env = "UI_BACKEND_MAX_FRAME", default_value = "16MiB", value_parser = parse_bytes)]
    pub backend_max_frame: usize,

    /// Backend workers that may be connected at once (a worker pool); one more is closed with 4409.
    #[arg(long, env = "UI_MAX_BACKENDS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_backends: u32,

    /// How long a named backend worker (`/backend?worker=NAME`) that dropped without draining keeps
    /// its sessions for its return before they move to the other workers (DUR; 0 = move at once).
    #[arg(long, env = "UI_BACKEND_GRACE", default_value = "2s", value_parser = parse_duration)]
    pub backend_grace: std::time::Duration,

    /// Per-session message buffer while no backend is connected.
    #[arg(long, env = "UI_BACKEND_BUFFER", default_value_t = 1000)]
    pub backend_buffer: usize,

    /// Per-session bytes of that buffer (BYTES); the oldest messages go first, as with --backend-buffer.
    #[arg(long, env = "UI_BACKEND_BUFFER_BYTES", default_value = "16MiB", value_parser = parse_bytes)]
    pub backend_buffer_bytes: usize,

    /// Backend batches parked per session while its mailbox is full (so one busy session never stalls
    /// the backend link); past this or --backend-overflow-bytes a batch is dropped with limit-exceeded.
    #[arg(long, env = "UI_BACKEND_OVERFLOW", default_value_t = 256)]
    pub backend_overflow: usize,

    /// Frame bytes of those parked batches, per session (BYTES).
    #[arg(long, env = "UI_BACKEND_OVERFLOW_BYTES", default_value = "4MiB", value_parser = parse_bytes)]
    pub backend_overflow_bytes: usize,

    /// Bytes queued for the backend's writer before it counts as too slow (closed with 1013).
    #[arg(long, env = "UI_BACKEND_QUEUE_BYTES", default_value = "64MiB", value_parser = parse_bytes)]
    pub backend_queue_bytes: usize,

    /// Extra origins accepted on /ws/, exact scheme://host[:port] (repeatable; env: comma-separated).
    #[arg(long = "allowed-origin", env = "UI_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Idle lifetime of a session (DUR: 10ms, 30s, 5m, 24h; 0 = never).
    #[arg(long, env = "UI_SESSION_TIMEOUT", default_value = "24h", value_parser = parse_duration)]
    pub session_timeout: Duration,

    /// Lifetime of a session that never had a WebSocket; 0 = use the session timeout.
    #[arg(long, env = "UI_UNCLAIMED_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub unclaimed_timeout: Duration,

    /// Live sessions; 0 = unlimited. When the table is full, the least recently active session
    /// without an open connection is evicted for the newcomer; only when every session has one: 503.
    #[arg(long, env = "UI_MAX_SESSIONS", default_value_t = 10_000)]
    pub max_sessions: usize,

    /// Live sessions one client may hold (429 beyond); 0 = no cap. A client is the peer address, or the
    /// X-Forwarded-For client behind a --trusted-proxy; IPv6 clients count per /64.
    #[arg(long, env = "UI_MAX_SESSIONS_PER_CLIENT", default_value_t = 1000)]
    pub max_sessions_per_client: usize,

    /// Session creations per client: N/s or N/m, optionally :BURST (bucket size; default one unit's
    /// worth), e.g. 10/s:1000; 0 = unlimited. Over it: 429 with Retry-After.
    #[arg(long, env = "UI_SESSION_RATE", default_value = "10/s:1000", value_parser = parse_session_rate)]
    pub session_rate: SessionRateArg,

    /// A reverse proxy whose X-Forwarded-For is believed (CIDR or address; repeatable; env:
    /// comma-separated). Without one, every client is its TCP peer.
    #[arg(long = "trusted-proxy", env = "UI_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<Cidr>,

    /// Refuse new sessions (503) while the process's resident memory is above this (BYTES); 0 = off.
    /// Default: 75 % of the machine's memory or of the cgroup v2 memory.max, whichever is lower.
    #[arg(long, env = "UI_MAX_MEMORY", value_parser = parse_bytes)]
    pub max_memory: Option<usize>,

    /// Host names accepted in the Host header besides IP addresses and localhost (DNS rebinding
    /// protection); the port is not compared (repeatable; env: comma-separated). Others get 421, except
    /// on /backend, /healthz and /metrics.
    #[arg(long = "allowed-host", env = "UI_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Variables per session, all owners.
    #[arg(long, env = "UI_MAX_VARIABLES", default_value_t = 100_000)]
    pub max_variables: usize,

    /// Properties per variable (all writers); more is limit-exceeded.
    #[arg(long, env = "UI_MAX_PROPERTIES", default_value_t = 64)]
    pub max_properties: usize,

    /// Bytes of one property, name plus value (paths included); more is limit-exceeded.
    #[arg(long, env = "UI_MAX_PROPERTY_BYTES", default_value = "64KiB", value_parser = parse_bytes)]
    pub max_property_bytes: usize,

    /// Per-session budget of property bytes plus the tracker's value snapshots; a write past it is
    /// limit-exceeded.
    #[arg(long, env = "UI_MAX_SESSION_BYTES", default_value = "32MiB", value_parser = parse_bytes)]
    pub max_session_bytes: usize,

    /// WebSocket connections per session.
    #[arg(long, env = "UI_MAX_CONNECTIONS", default_value_t = 32)]
    pub max_connections: usize,

    /// Heap limit of each session's Lua state, MiB.
    #[arg(long, env = "UI_LUA_MEMORY_MB", default_value_t = 64)]
    pub lua_memory_mb: usize,

    /// Lua instruction budget per phase (about 1 s of work).
    #[arg(long, env = "UI_LUA_INSTRUCTIONS", default_value_t = 200_000_000)]
    pub lua_instructions: u64,

    /// Wall time one Lua phase may take (one frame's messages, one timer, one pass…) → lua-timeout.
    #[arg(long, env = "UI_LUA_PHASE_TIME", default_value = "1s", value_parser = parse_duration)]
    pub lua_phase_time: Duration,

    /// Wall time one session event may take, all its Lua phases together (a frame and its pass, all
    /// due timers, queued `lua` values) → lua-timeout, the rest waits for the next event.
    #[arg(long, env = "UI_LUA_ITEM_TIME", default_value = "3s", value_parser = parse_duration)]
    pub lua_item_time: Duration,

    /// A session whose event runs this long (stuck where no limit can reach) is ended: its sockets
    /// close with 1011 and its slot is freed. 0 = never.
    #[arg(long, env = "UI_LUA_WATCHDOG", default_value = "10s", value_parser = parse_duration)]
    pub lua_watchdog: Duration,

    /// Worker threads of the session runtime (where all session Lua runs); 0 = one per core.
    #[arg(long, env = "UI_LUA_THREADS", default_value_t = 0)]
    pub lua_threads: usize,

    /// Threads that long-running session events may hold at once after leaving a worker.
    #[arg(long, env = "UI_LUA_BUSY_THREADS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub lua_busy_threads: u32,

    /// Browser inbound frame limit (BYTES: 4096, 64KiB, 1MiB, 1GiB).
    #[arg(long, env = "UI_MAX_FRAME", default_value = "1MiB", value_parser = parse_bytes)]
    pub max_frame: usize,

    /// Messages per browser frame.
    #[arg(long, env = "UI_MAX_MESSAGES", default_value_t = 10_000)]
    pub max_messages: usize,

    /// JSON nesting depth of a browser frame.
    #[arg(long, env = "UI_MAX_JSON_DEPTH", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_json_depth: u32,

    /// Unsent bytes per browser connection before it is closed with 1013.
    #[arg(long, env = "UI_MAX_OUTBOUND", default_value = "16MiB", value_parser = parse_bytes)]
    pub max_outbound: usize,

    /// Session mailbox capacity.
    #[arg(long, env = "UI_MAILBOX", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub mailbox: u32,

    /// Outbound batching delay.
    #[arg(long, env = "UI_FLUSH_DELAY", default_value = "10ms", value_parser = parse_duration)]
    pub flush_delay: Duration,

    /// WebSocket ping period.
    #[arg(long, env = "UI_PING_INTERVAL", default_value = "25s", value_parser = parse_duration)]
    pub ping_interval: Duration,

    /// Close a WebSocket silent this long (4408).
    #[arg(long, env = "UI_IDLE_CLOSE", default_value = "60s", value_parser = parse_duration)]
    pub idle_close: Duration,

    /// Debug pages /<id>/variables[.json]: auto = local requests only, on, off (bare flag = on).
    #[arg(long, env = "UI_DEBUG_PAGES", value_enum, default_value = "auto", num_args = 0..=1, default_missing_value = "on")]
    pub debug_pages: DebugPages,

    /// Do not serve /metrics (env: UI_METRICS=false).
    #[arg(long = "no-metrics")]
    pub no_metrics: bool,

    /// Same as --debug-pages off.
    #[arg(long = "no-debug-pages")]
    pub no_debug_pages: bool,

    /// trace … error, or a filter such as info,ui_gateway::session=debug.
    #[arg(long, env = "UI_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// text or json.
    #[arg(long, env = "UI_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log only the first 8 hex digits of internal session ids (on by default: a full id is the
    /// session's URL, a capability; `--redact-ids false` logs it whole).
    #[arg(long, env = "UI_REDACT_IDS", default_value_t = true, value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true")]
    pub redact_ids: bool,

    /// Graceful shutdown deadline.
    #[arg(long, env = "UI_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Development mode: the page shows errors of app code (Lua errors, bindings to missing paths,
    /// missing viewdefs) in an overlay; without it users see a neutral message. --watch implies it.
    #[arg(long, env = "UI_DEV", default_value_t = false, value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true")]
    pub dev: bool,

    /// This node's shard prefix in a cluster: two hex digits, the first byte of every session id it
    /// creates, so a load balancer routes `/<id>` by prefix (docs/deploy/cluster.md).
    #[arg(long, env = "UI_NODE_ID")]
    pub node_id: Option<crate::ids::NodeId>,

    /// Session registry (redis://host:port/db): cluster-wide vended ids, sessions restored after a
    /// restart with the same --node-id. Off by default (docs/deploy/cluster.md).
    #[arg(long, env = "UI_REGISTRY")]
    pub registry: Option<String>,

    /// At shutdown end every session for good (backend hears `closed`, registry entries go) instead
    /// of keeping them for the restart.
    #[arg(long, env = "UI_DECOMMISSION", default_value_t = false, value_parser = parse_bool, num_args = 0..=1, default_missing_value = "true")]
    pub decommission: bool,

    /// Idle HTTP connections close after this long (docs/limits.md: 60 s). Not a flag; tests shorten it.
    #[arg(skip = Duration::from_secs(60))]
    pub http_idle_timeout: Duration,

    /// A request head must arrive within this long (docs/deployment.md "Security": 10 s), counted from the accept or
    /// the request's first byte. Not a flag; tests shorten it.
    #[arg(skip = Duration::from_secs(10))]
    pub http_header_timeout: Duration,
}

/// `--session-rate` as parsed: `None` = unlimited.
pub type SessionRateArg = Option<SessionRate>;

fn parse_session_rate(s: &str) -> Result<SessionRateArg, String> {
    SessionRate::parse(s)
}

impl ServeArgs {
    /// The admission settings: per-client cap and rate, and `--max-memory` resolved (its default is
    /// computed from the machine; `None` when it cannot be read, so the ceiling is off).
    pub fn admission(&self) -> AdmissionConfig {
        let max_memory = match self.max_memory {
            Some(bytes) => bytes as u64,
            None => crate::session::manager::admission::default_max_memory().unwrap_or(0),
        };
        AdmissionConfig { max_per_client: self.max_sessions_per_client, rate: self.session_rate, max_memory }
    }

    /// The /backend token from `--backend-token` or `--backend-token-file`, validated (docs/deployment.md
    /// "Security"): at least 16 printable ASCII characters, no spaces.
    pub fn backend_token(&self) -> Result<Option<String>, String> {
        let token = match (&self.backend_token, &self.backend_token_file) {
            (Some(t), _) => t.clone(),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| format!("--backend-token-file {}: {e}", file.display()))?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                text.strip_suffix('\r').unwrap_or(text).to_string()
            }
            (None, None) => return Ok(None),
        };
        if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the backend token must be at least 16 printable ASCII characters without spaces".into());
        }
        Ok(Some(token))
    }

    /// The effective debug-page setting (`--no-debug-pages` wins).
    pub fn debug_pages(&self) -> DebugPages {
        if self.no_debug_pages {
            DebugPages::Off
        } else {
            self.debug_pages
        }
    }

    /// Moves the positional site argument into `site`, where everything else reads it.
    pub fn take_positional_site(&mut self) {
        if let Some(dir) = self.site_dir.take() {
            self.site = Some(dir);
        }
    }

    /// Whether pages show app errors to the author (`--dev`, or `--watch`, which is development too).
    pub fn dev_mode(&self) -> bool {
        self.dev || self.watch
    }

    /// Whether `/metrics` is served: `--no-metrics` wins, else `UI_METRICS` (a boolean), else on.
    pub fn metrics_enabled(&self) -> Result<bool, String> {
        switch_enabled(self.no_metrics, "UI_METRICS")
    }

    /// Whether Lua is enabled: `--no-lua` wins, else `UI_LUA` (a boolean), else on.
    pub fn lua_enabled(&self) -> Result<bool, String> {
        switch_enabled(self.no_lua, "UI_LUA")
    }
}

impl Default for ServeArgs {
    /// The defaults of the table in docs/configuration.md (what `ui-gateway` with no flags uses).
    fn default() -> Self {
        let cli = Cli::try_parse_from(["ui-gateway"]).expect("defaults parse");
        cli.serve
    }
}

/// A feature that is on by default: its `--no-…` flag wins, else its `UI_…` variable (a boolean).
/// clap cannot read one boolean from both a negative flag and a positive variable, hence this.
fn switch_enabled(off_flag: bool, env: &str) -> Result<bool, String> {
    if off_flag {
        return Ok(false);
    }
    match std::env::var(env) {
        Ok(v) => parse_bool(&v).map_err(|e| format!("{env}: {e}")),
        Err(_) => Ok(true),
    }
}

/// Why a `--listen` value is refused.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{0:?} is not HOST:PORT (for example 127.0.0.1:8000, localhost:8080 or [::1]:8000)")]
    Syntax(String),
    #[error("{0:?}: the host name does not resolve ({1})")]
    Resolve(String, std::io::Error),
}

/// `--listen`: an IP address and port, or a host name and port (`localhost:8080`), resolved once at
/// startup; an IPv4 address is preferred when the name has both, as browsers try it for localhost.
pub fn parse_listen(s: &str) -> Result<SocketAddr, ListenError> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = s.rsplit_once(':') else { return Err(ListenError::Syntax(s.into())) };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(ListenError::Syntax(s.into()));
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = s.to_socket_addrs().map_err(|e| ListenError::Resolve(s.into(), e))?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| ListenError::Resolve(s.into(), std::io::ErrorKind::NotFound.into()))
}

/// A clap error caused by a `UI_*` variable (not a flag on the command line) is reworded to name the
/// variable: clap names the flag only, which the user never typed. Returns `None` for other errors.
pub fn env_error_message(e: &clap::Error, argv: &[String]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::CommandFactory;
    if !matches!(e.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else { return None };
    let flag = arg.split_whitespace().next()?.to_string();
    let long = flag.strip_prefix("--")?;
    if argv.iter().any(|a| a == &flag || a.starts_with(&format!("{flag}="))) {
        return None;
    }
    let cmd = Cli::command();
    let mut commands = vec![cmd.clone()];
    commands.extend(cmd.get_subcommands().cloned());
    let env = commands.iter().flat_map(|c| c.get_arguments().cloned().collect::<Vec<_>>()).find_map(|a| {
        (a.get_long() == Some(long)).then(|| a.get_env().map(|e| e.to_string_lossy().into_owned())).flatten()
    })?;
    let value = std::env::var(&env).ok()?;
    let reason = match e.get(ContextKind::Custom) {
        Some(ContextValue::String(s)) => format!(": {s}"),
        _ => match e.get(ContextKind::ValidValue) {
            Some(ContextValue::Strings(v)) => format!(" (possible values: {})", v.join(", ")),
            _ => String::new(),
        },
    };
    let source = std::error::Error::source(e).map(|s| format!(": {s}")).unwrap_or_default();
    let why = if reason.is_empty() { source } else { reason };
    Some(format!("environment variable {env}={value:?} is not a valid value for {flag}{why}"))
}

/// Where the site's files come from.
pub fn site_description(site: &Option<PathBuf>) -> String {
    match site {
        Some(p) => p.display().to_string(),
        None => "built-in".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_addresses_and_host_names() {
        assert_eq!(parse_listen("127.0.0.1:8080").unwrap(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(parse_listen("[::1]:80").unwrap(), "[::1]:80".parse().unwrap());
        assert_eq!(parse_listen("localhost:8080").unwrap(), "127.0.0.1:8080".parse().unwrap());
        assert!(matches!(parse_listen("localhost"), Err(ListenError::Syntax(_))));
        assert!(matches!(parse_listen(":80"), Err(ListenError::Syntax(_))));
        assert!(matches!(parse_listen("localhost:99999"), Err(ListenError::Syntax(_))));
        assert!(matches!(parse_listen("no-such-host.invalid:80"), Err(ListenError::Resolve(..))));
    }

    #[test]
    fn defaults_match_the_spec() {
        let d = ServeArgs::default();
        assert_eq!(d.listen, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(d.mode, Mode::Auto);
        assert!(!d.no_lua);
        assert_eq!(d.session_timeout, Duration::from_secs(86_400));
        assert_eq!(d.unclaimed_timeout, Duration::from_secs(300));
        assert_eq!(d.max_sessions, 10_000);
        assert_eq!(d.max_connections, 32);
        assert_eq!(d.max_frame, 1 << 20);
        assert_eq!(d.max_outbound, 16 << 20);
        assert_eq!(d.flush_delay, Duration::from_millis(10));
        assert_eq!(d.mailbox, 1024);
        assert_eq!(d.max_sessions_per_client, 1000);
        assert_eq!(d.session_rate, Some(SessionRate::per_second(10.0, 1000)));
        assert!(d.trusted_proxies.is_empty() && d.allowed_hosts.is_empty());
        assert_eq!(d.max_memory, None);
        let resolved = d.admission().max_memory;
        assert!(resolved > 0, "the default ceiling is a fraction of the machine's memory");
        assert_eq!(d.max_properties, 64);
        assert_eq!(d.max_property_bytes, 64 << 10);
        assert_eq!(d.max_session_bytes, 32 << 20);
        assert_eq!(d.backend_queue_bytes, 64 << 20);
        assert_eq!(d.backend_buffer_bytes, 16 << 20);
    }

    #[test]
    fn admission_flags_parse() {
        let cli = Cli::try_parse_from([
            "ui-gateway",
            "--max-sessions-per-client",
            "5",
            "--session-rate",
            "0",
            "--trusted-proxy",
            "127.0.0.1/32",
            "--trusted-proxy",
            "10.0.0.0/8",
            "--max-memory",
            "0",
            "--allowed-host",
            "app.example",
        ])
        .unwrap();
        let a = cli.serve.admission();
        assert_eq!((a.max_per_client, a.rate, a.max_memory), (5, None, 0));
        assert_eq!(cli.serve.trusted_proxies.len(), 2);
        assert_eq!(cli.serve.allowed_hosts, vec!["app.example".to_string()]);
        let cli = Cli::try_parse_from(["ui-gateway", "--max-memory", "512MiB", "--session-rate", "2/m:3"]).unwrap();
        assert_eq!(cli.serve.admission().max_memory, 512 << 20);
        assert!(Cli::try_parse_from(["ui-gateway", "--trusted-proxy", "10.0.0.0/40"]).is_err());
        assert!(Cli::try_parse_from(["ui-gateway", "--session-rate", "10/h"]).is_err());
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "ui-gateway",
            "--listen",
            "127.0.0.1:0",
            "--no-lua",
            "--session-timeout",
            "0",
            "--allowed-origin",
            "http://a.example",
            "--allowed-origin",
            "https://b.example:8443",
        ])
        .unwrap();
        assert!(cli.serve.no_lua);
        assert_eq!(cli.serve.lua_enabled(), Ok(false));
        assert_eq!(cli.serve.session_timeout, Duration::ZERO);
        assert_eq!(cli.serve.allowed_origins.len(), 2);
        assert!(Cli::try_parse_from(["ui-gateway", "--bogus"]).is_err());
        assert!(Cli::try_parse_from(["ui-gateway", "--max-frame", "1MB"]).is_err());
        let cli = Cli::try_parse_from(["ui-gateway", "serve", "--mode", "embedded"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Serve(a)) if a.mode == Mode::Embedded));
    }
}

/// `docs/configuration.md` is checked against the clap definitions, so a new flag cannot ship without
/// its documentation.
#[cfg(test)]
mod docs_tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Variables read outside clap (see `switch_enabled`): booleans behind the `--no-…` switches.
    const EXTRA_ENV: [&str; 2] = ["UI_LUA", "UI_METRICS"];

    /// One markdown table row per flag of `cmd`: flag, variable, default, help text.
    fn flag_rows(cmd: &clap::Command) -> Vec<(String, Option<String>, String)> {
        let mut rows = Vec::new();
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" || long == "version" {
                continue;
            }
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let default: Vec<String> =
                arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default().replace('\n', " ");
            let default = if default.is_empty() { "—".to_string() } else { format!("`{}`", default.join(",")) };
            let env_cell = env.as_ref().map(|e| format!("`{e}`")).unwrap_or_else(|| "—".to_string());
            rows.push((format!("--{long}"), env, format!("| `--{long}` | {env_cell} | {default} | {help} |")));
        }
        rows
    }

    #[test]
    fn configuration_doc_lists_every_flag_and_variable() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
        let doc = std::fs::read_to_string(path).expect("docs/configuration.md exists");
        let root = Cli::command();
        let mut missing = Vec::new();
        let mut commands = vec![("serve", root.clone())];
        commands.extend(root.get_subcommands().filter(|c| c.get_name() != "serve").map(|c| (c.get_name(), c.clone())));
        for (name, cmd) in &commands {
            for (flag, env, row) in flag_rows(cmd) {
                let flag_missing = !doc.contains(&format!("`{flag}`"));
                let env_missing = env.as_ref().is_some_and(|e| !doc.contains(&format!("`{e}`")));
                if flag_missing || env_missing {
                    missing.push(format!("{name}: {row}"));
                }
            }
        }
        for env in EXTRA_ENV {
            if !doc.contains(&format!("`{env}`")) {
                missing.push(format!("variable `{env}`"));
            }
        }
        assert!(missing.is_empty(), "docs/configuration.md lacks:\n{}", missing.join("\n"));
    }
}
