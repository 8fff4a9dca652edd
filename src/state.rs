//! The state every request handler shares ([`Gateway`]), and the configuration resolved into it.
//!
//! It sits below the handlers (`http`, `browser`, `backend::socket`) and imports none of them, so they
//! can all depend on it without a loop; starting the server and shutting it down is `gateway.rs`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::backend::BackendHub;
use crate::config::{Mode, ServeArgs};
use crate::ids::{ConnId, SessionId};
use crate::lua::{LuaConfig, TimeLimits};
use crate::protocol::backend::BackendLimits;
use crate::protocol::FrameLimits;
use crate::runtime::{RuntimeSize, SessionRuntime};
use crate::session::manager::admission::{Admission, Cidr};
use crate::session::manager::Timeouts;
use crate::session::{SessionConfig, SessionManager};
use crate::site::{LiveSite, Site, SiteError};

/// Startup failures. Configuration problems exit with 2, runtime ones with 1.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Site(#[from] SiteError),
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Watch(#[from] crate::watch::WatchError),
    #[error("cannot start the session runtime: {0}")]
    Runtime(std::io::Error),
    /// `main.lua` does not compile or fails when run: the gateway refuses to start (with `--watch` it
    /// starts, logs it, and the pages show it until a save fixes it).
    #[error("{site}/lua/main.lua does not load: {message}\nFix it and start again (or run with --watch to fix it while the gateway runs).")]
    MainLua { site: String, message: String },

    #[error("{0}")]
    Registry(#[from] crate::registry::RegistryError),
}

impl StartError {
    /// The process exit code for this failure (docs/configuration.md).
    pub fn exit_code(&self) -> i32 {
        match self {
            StartError::Bind { .. } | StartError::Watch(_) | StartError::Runtime(_) | StartError::MainLua { .. } => 1,
            _ => 2,
        }
    }
}

/// WebSocket settings for browser connections.
#[derive(Clone, Debug)]
pub struct SocketConfig {
    pub max_frame: usize,
    pub max_outbound: usize,
    pub frame_limits: FrameLimits,
    pub ping_interval: Duration,
    pub idle_close: Duration,
}

/// The live WebSocket tasks (browser and backend), so shutdown can wait until their close frames are
/// out (docs/deployment.md "Shutdown") before the process exits.
#[derive(Debug, Default)]
pub struct SocketTally {
    open: AtomicUsize,
    idle: Notify,
}

/// Held by one socket task; dropping it counts the socket as closed.
#[derive(Debug)]
pub struct SocketGuard(Arc<SocketTally>);

impl SocketTally {
    pub fn enter(self: &Arc<Self>) -> SocketGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        SocketGuard(self.clone())
    }

    /// Open WebSocket connections (browser and backend).
    pub fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Returns once no socket is open.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// What a node of a cluster brings to [`Gateway::new_in_cluster`]: the registry (already connected,
/// see `gateway.rs`) and the epoch it kept for this node.
#[derive(Debug, Default)]
pub struct Cluster {
    pub registry: Option<Arc<crate::registry::Registry>>,
    /// The backend epoch to use instead of a fresh one (a restart keeps it).
    pub epoch: Option<String>,
}

/// Shared state of a running gateway.
pub struct Gateway {
    pub mode: Mode,
    /// The site: hot reload (`--watch`) swaps its snapshot.
    pub site: Arc<LiveSite>,
    pub sessions: Arc<SessionManager>,
    /// The `/backend` link (connected and hybrid modes).
    pub backend: Option<Arc<BackendHub>>,
    pub debug_pages: crate::config::DebugPages,
    pub metrics_enabled: bool,
    pub allowed_origins: Vec<String>,
    /// `--allowed-host`, lowercase: names accepted in `Host` besides IP literals and localhost.
    pub allowed_hosts: Vec<String>,
    /// `--trusted-proxy`: peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<Cidr>,
    pub sockets: SocketConfig,
    pub redact_ids: bool,
    /// Open WebSocket connections, browser and backend.
    pub live_sockets: Arc<SocketTally>,
    /// Set when shutdown starts: `/healthz` answers 503 `stopping`.
    pub stopping: AtomicBool,
    next_conn: AtomicU64,
    last_cap_warning: Mutex<Option<tokio::time::Instant>>,
    last_memory_warning: Mutex<Option<tokio::time::Instant>>,
    /// Set once the "X-Forwarded-For from an untrusted peer" warning was logged.
    warned_untrusted_proxy: AtomicBool,
}

impl Gateway {
    /// Resolves the configuration: loads the site, decides the mode, builds the session manager.
    pub fn new(args: &ServeArgs) -> Result<Gateway, StartError> {
        Self::new_in_cluster(args, Cluster::default())
    }

    /// Like [`Gateway::new`], as a node of a cluster (`--node-id`, `--registry`).
    pub fn new_in_cluster(args: &ServeArgs, cluster: Cluster) -> Result<Gateway, StartError> {
        let site = match &args.site {
            Some(dir) => Site::load(dir)?,
            None => Site::builtin(),
        };
        let lua_enabled = args.lua_enabled().map_err(StartError::Config)?;
        let has_main = site.main_lua.is_some();
        let mode = match args.mode {
            Mode::Auto if lua_enabled && has_main => Mode::Embedded,
            Mode::Auto => Mode::Connected,
            m => m,
        };
        match mode {
            Mode::Embedded | Mode::Hybrid if !lua_enabled => {
                return Err(StartError::Config(format!("--mode {} needs Lua (remove --no-lua)", mode.as_str())))
            }
            Mode::Embedded | Mode::Hybrid if !has_main => {
                return Err(StartError::Config(format!("--mode {} needs lua/main.lua in the site", mode.as_str())))
            }
            _ => {}
        }
        if args.watch && args.site.is_none() {
            return Err(StartError::Config("--watch needs --site (the built-in demo cannot change)".into()));
        }
        let site: Arc<LiveSite> = Arc::new(site.into());
        crate::metrics::metrics().set_build_info(mode.as_str());
        let tracker_limits = crate::tracker::TrackerLimits {
            max_properties: args.max_properties,
            max_property_bytes: args.max_property_bytes,
            max_session_bytes: args.max_session_bytes,
            max_variables: args.max_variables,
        };
        let backend = match mode {
            Mode::Connected | Mode::Hybrid => {
                let token = args.backend_token().map_err(StartError::Config)?;
                let limits = BackendLimits {
                    max_frame_bytes: args.backend_max_frame,
                    session_buffer: args.backend_buffer,
                    max_variables: args.max_variables,
                };
                let bytes = crate::backend::ByteLimits {
                    queue_bytes: args.backend_queue_bytes,
                    buffer_bytes: args.backend_buffer_bytes,
                    overflow_batches: args.backend_overflow,
                    overflow_bytes: args.backend_overflow_bytes,
                    mirror: tracker_limits,
                };
                let pool =
                    crate::backend::PoolLimits { max_workers: args.max_backends as usize, grace: args.backend_grace };
                let hub = BackendHub::new(mode.as_str(), token, limits, bytes, pool);
                Some(Arc::new(match cluster.epoch {
                    Some(epoch) => hub.with_epoch(epoch),
                    None => hub,
                }))
            }
            _ => None,
        };
        let session_config = SessionConfig {
            site: site.clone(),
            lua: (mode != Mode::Connected).then(|| LuaConfig {
                memory_limit: args.lua_memory_mb.saturating_mul(1 << 20),
                instruction_budget: args.lua_instructions,
                times: TimeLimits { phase: args.lua_phase_time, item: args.lua_item_time },
                tracker: tracker_limits,
                suggest_names: args.dev_mode(),
            }),
            max_connections: args.max_connections,
            flush_delay: args.flush_delay,
            mailbox: args.mailbox as usize,
            max_variables: args.max_variables,
            backend: backend.clone(),
            dev: args.dev_mode(),
        };
        check_main_lua(&session_config, args)?;
        let timeouts = Timeouts { session: args.session_timeout, unclaimed: args.unclaimed_timeout };
        let runtime = SessionRuntime::new(RuntimeSize {
            workers: args.lua_threads,
            busy_threads: args.lua_busy_threads as usize,
        })
        .map_err(StartError::Runtime)?;
        let admission = args.admission();
        if admission.max_memory == 0 && args.max_memory.is_none() {
            tracing::warn!("cannot read the machine's memory size: --max-memory is off");
        }
        let sessions = Arc::new(
            SessionManager::with_runtime(
                Arc::new(session_config),
                timeouts,
                args.max_sessions,
                runtime,
                args.lua_watchdog,
            )
            .with_admission(Admission::new(admission))
            .with_redacted_ids(args.redact_ids)
            .with_node(args.node_id)
            .with_registry(cluster.registry),
        );
        Ok(Gateway {
            mode,
            site,
            backend,
            debug_pages: args.debug_pages(),
            metrics_enabled: args.metrics_enabled().map_err(StartError::Config)?,
            sessions,
            allowed_origins: args.allowed_origins.clone(),
            allowed_hosts: args.allowed_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).collect(),
            trusted_proxies: args.trusted_proxies.clone(),
            sockets: SocketConfig {
                max_frame: args.max_frame,
                max_outbound: args.max_outbound,
                frame_limits: FrameLimits { max_messages: args.max_messages, max_depth: args.max_json_depth as usize },
                ping_interval: args.ping_interval,
                idle_close: args.idle_close,
            },
            redact_ids: args.redact_ids,
            live_sockets: Arc::default(),
            stopping: AtomicBool::new(false),
            next_conn: AtomicU64::new(1),
            last_cap_warning: Mutex::new(None),
            last_memory_warning: Mutex::new(None),
            warned_untrusted_proxy: AtomicBool::new(false),
        })
    }

    pub fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed))
    }

    /// An internal id as logs show it (`--redact-ids` keeps 8 hex digits).
    pub fn log_id(&self, id: &SessionId) -> String {
        if self.redact_ids {
            id.redacted()
        } else {
            id.to_string()
        }
    }

    /// Logs the session cap at most once a minute.
    pub fn warn_at_capacity(&self, max: usize) {
        if once_a_minute(&self.last_cap_warning) {
            tracing::warn!(max_sessions = max, "session cap reached");
        }
    }

    /// Logs once per process that a peer outside `--trusted-proxy` sends `X-Forwarded-For`: if it is a
    /// reverse proxy, every user behind it counts as one client for the per-client limits.
    pub fn warn_untrusted_proxy(&self, peer: SocketAddr) {
        if !self.warned_untrusted_proxy.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                peer = %peer,
                "X-Forwarded-For from a peer that is not a --trusted-proxy: per-client limits count that peer"
            );
        }
    }

    /// Logs the memory ceiling at most once a minute.
    pub fn warn_memory_high(&self, rss: u64, limit: u64) {
        if once_a_minute(&self.last_memory_warning) {
            tracing::warn!(rss, max_memory = limit, "memory ceiling reached: new sessions refused");
        }
    }
}

/// Whether a rate-limited warning may be logged now (and notes that it is).
fn once_a_minute(last: &Mutex<Option<tokio::time::Instant>>) -> bool {
    let now = tokio::time::Instant::now();
    let mut last = last.lock();
    if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60)) {
        *last = Some(now);
        return true;
    }
    false
}

/// Runs the site's `main.lua` once in a throwaway Lua state, as a session would, so a site that
/// cannot start is reported at startup with its file and line instead of on every page. With
/// `--watch` the author is about to fix it: the error is logged and the gateway serves anyway (pages
/// show the error, and the session picks up the fix on save).
fn check_main_lua(config: &SessionConfig, args: &ServeArgs) -> Result<(), StartError> {
    let site = config.site.current();
    let (Some(lua_config), Some(source)) = (&config.lua, site.main_lua.as_deref()) else { return Ok(()) };
    let Ok(mut trial) = crate::lua::LuaBackend::new(crate::ids::VendedId(0), lua_config, site.lua_sources.clone())
    else {
        return Ok(()); // the sessions report a Lua state that cannot be created themselves
    };
    let Err(e) = trial.load_main(source) else { return Ok(()) };
    let site_name = crate::config::site_description(&args.site);
    if args.watch {
        tracing::error!(site = %site_name, message = %e.description, "lua/main.lua does not load; pages show the error until it is fixed");
        return Ok(());
    }
    Err(StartError::MainLua { site: site_name, message: e.description })
}
