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
pub use crate::state::{Gateway, StartError};

/// A gateway serving on a socket.
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub gateway: Arc<Gateway>,
    http: HttpServer,
    /// `--watch`: stops watching when the gateway goes.
    _site_watcher: Option<crate::watch::SiteWatcher>,
}

impl RunningGateway {
    /// Binds the listener and starts serving.
    pub async fn start(args: &ServeArgs) -> Result<RunningGateway, StartError> {
        let gateway = Arc::new(Gateway::new(args)?);
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
        Ok(RunningGateway { addr, gateway, http, _site_watcher: site_watcher })
    }

    /// Graceful shutdown (docs/deployment.md "Shutdown"): close the listener (`/healthz` answers 503 from now on),
    /// end every session (sockets close with 1001, a backend hears `closed` for each, ascending, then
    /// 1001), wait for those sockets to finish their close, then let HTTP finish. Returns whether all
    /// of it made the deadline.
    pub async fn shutdown(self, deadline: Duration) -> bool {
        let started = tokio::time::Instant::now();
        let until = started + deadline;
        let sessions = self.gateway.sessions.count();
        tracing::info!(sessions, "shutdown started");
        self.gateway.stopping.store(true, Ordering::Release);
        self.http.stop_accepting();
        self.gateway.sessions.destroy_all(EndReason::Shutdown);
        if let Some(hub) = &self.gateway.backend {
            hub.close(crate::protocol::close::GOING_AWAY, "shutdown");
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
