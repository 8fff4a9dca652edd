//! Server startup and shutdown: bind the listener, start the HTTP server and the background tasks,
//! and the graceful shutdown sequence. The shared state lives in [`crate::state`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::ServeArgs;
use crate::http::serve::HttpServer;
use crate::http::timeouts::ConnTimeouts;
use crate::session::EndReason;
pub use crate::state::{Cluster, Gateway, StartError};

/// A gateway serving on a socket.
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    http: HttpServer,
    /// `--watch`: stops watching when the gateway goes.
    _site_watcher: Option<crate::watch::SiteWatcher>,
    /// `--decommission`: shutdown ends sessions for good even with a registry.
    decommission: bool,
}

/// Connects the registry (`--registry`) and fetches the epoch it keeps for this node. A registry that
/// cannot be reached is not fatal: the node starts with a fresh epoch and restores nothing.
async fn join_cluster(args: &ServeArgs) -> Result<Cluster, StartError> {
    let Some(url) = &args.registry else { return Ok(Cluster::default()) };
    let idle = match args.session_timeout.is_zero() {
        true => crate::registry::MAX_TTL,
        false => args.session_timeout.max(args.unclaimed_timeout),
    };
    let registry =
        crate::registry::Registry::connect(url, args.node_id, idle + crate::registry::PROBE_PERIOD * 2).await?;
    let epoch = registry.epoch(&crate::ids::SessionId::generate().to_string()).await;
    Ok(Cluster { registry: Some(registry), epoch })
}

impl RunningGateway {
    /// Binds the listener and starts serving.
    pub async fn start(args: &ServeArgs) -> Result<RunningGateway, StartError> {
        let cluster = join_cluster(args).await?;
        let kept_epoch = cluster.epoch.is_some();
        let gateway = Arc::new(Gateway::new_in_cluster(args, cluster)?);
        let mut restored = 0;
        if let Some(registry) = gateway.sessions.registry().cloned() {
            // Only with the epoch the records were made under: a backend would not know their ids.
            let same_epoch = |r: &crate::registry::SessionRecord| match &gateway.backend {
                Some(hub) => kept_epoch && r.epoch.as_deref() == Some(hub.epoch.as_str()),
                None => true,
            };
            let records: Vec<_> = registry.load().await.into_iter().filter(same_epoch).collect();
            restored = gateway.sessions.restore_sessions(records).await;
            gateway.sessions.spawn_registry_refresh();
        }
        let listener =
            TcpListener::bind(args.listen).await.map_err(|source| StartError::Bind { addr: args.listen, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr: args.listen, source })?;
        gateway.sessions.spawn_sweeper();
        gateway.sessions.spawn_watchdog();
        let site_watcher = match args.watch {
            true => Some(crate::watch::spawn(gateway.site.clone(), gateway.sessions.clone())?),
            false => None,
        };
        // Never below --idle-close, so a WebSocket is ended by the 4408 rule, not cut by the idle limit.
        let timeouts =
            ConnTimeouts { idle: args.http_idle_timeout.max(args.idle_close), header_read: args.http_header_timeout };
        let http = HttpServer::spawn(listener, crate::http::router(gateway.clone()), timeouts);
        let token = gateway.backend.as_ref().is_some_and(|hub| hub.token.is_some());
        // Text logs read `ui-gateway version=0.1.0 mode=embedded listen=… site=… lua=on …`; JSON logs
        // get the same as fields.
        tracing::info!(
            version = %env!("CARGO_PKG_VERSION"),
            mode = %gateway.mode.as_str(),
            listen = %addr,
            site = %crate::config::site_description(&args.site),
            lua = %if gateway.sessions.session_config().lua.is_some() { "on" } else { "off" },
            backend_token = token,
            debug_pages = %gateway.debug_pages.as_str(),
            watch = args.watch,
            node_id = %args.node_id.map(|n| n.to_string()).unwrap_or_default(),
            registry = args.registry.is_some(),
            restored,
            "ui-gateway"
        );
        if gateway.backend.is_some() && !token {
            tracing::warn!("no backend token: /backend accepts local peers only");
        }
        if !addr.ip().is_loopback() && gateway.debug_pages == crate::config::DebugPages::On {
            tracing::warn!(listen = %addr, "debug pages are on and the listen address is not loopback");
        }
        if !addr.ip().is_loopback() {
            tracing::warn!(listen = %addr, "listening on a non-loopback address: session URLs are bearer capabilities");
            if gateway.allowed_hosts.is_empty() {
                tracing::warn!(
                    "no --allowed-host: requests naming a host other than an IP address or localhost get 421"
                );
            }
        }
        Ok(RunningGateway { addr, gateway, http, _site_watcher: site_watcher, decommission: args.decommission })
    }

    /// Graceful shutdown (docs/deployment.md "Shutdown"): close the listener (`/healthz` answers 503 from now on),
    /// end every session (sockets close with 1001, a backend hears `closed` for each, ascending, then
    /// 1001), wait for those sockets to finish their close, then let HTTP finish. Returns whether all
    /// of it made the deadline.
    ///
    /// With a registry this is a restart unless `--decommission` (docs/deploy/cluster.md "Restart
    /// survival"): the sessions' sockets close with 1001 but the backend hears no `closed`, and the
    /// records stay for the next start with the same `--node-id`.
    pub async fn shutdown(self, deadline: Duration) -> bool {
        let started = tokio::time::Instant::now();
        let until = started + deadline;
        let sessions = self.gateway.sessions.count();
        tracing::info!(sessions, "shutdown started");
        self.gateway.stopping.store(true, Ordering::Release);
        self.http.stop_accepting();
        let registry = self.gateway.sessions.registry().cloned();
        match (&registry, self.decommission) {
            (Some(_), false) => {
                self.gateway.sessions.suspend_all();
            }
            _ => {
                self.gateway.sessions.destroy_all(EndReason::Shutdown);
            }
        }
        if let Some(hub) = &self.gateway.backend {
            hub.close(crate::protocol::close::GOING_AWAY, "shutdown");
        }
        if let Some(registry) = &registry {
            if self.decommission {
                registry.forget_epoch().await;
            }
            if !registry.flush(until.saturating_duration_since(tokio::time::Instant::now())).await {
                tracing::warn!("registry writes not all sent before the shutdown deadline");
            }
        }
        let sockets_closed = tokio::time::timeout_at(until, self.gateway.live_sockets.wait_idle()).await.is_ok();
        let finished = sockets_closed && tokio::time::timeout_at(until, self.http.drain()).await.is_ok();
        if !finished {
            tracing::warn!(
                sockets = self.gateway.live_sockets.count(),
                http_finished = sockets_closed,
                "shutdown deadline reached with work left"
            );
        }
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "shutdown finished");
        finished
    }
}
