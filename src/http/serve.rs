//! The HTTP/1.1 serve loop: accepts connections and runs hyper on each with the router.
//!
//! It stands in for `axum::serve`, which hides what the request limits and the graceful shutdown (docs/deployment.md "Security", "Shutdown") need:
//! - hyper's head-size limit, so a request head over 16 KiB gets `431`;
//! - the header read timeout and idle limit of [`super::timeouts`], which need to see each request
//!   start and end;
//! - a listener that closes while accepted connections keep being served (shutdown step 1, so that
//!   `/healthz` on an open keep-alive connection can still answer `503`), and a separate drain that
//!   lets in-flight requests finish and closes idle connections.
//!
//! Browsers speak HTTP/1.1 to a plain-text server, so HTTP/2 is not offered.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::timeouts::{ConnTimeouts, RequestCycle, TimedStream};

/// The largest request head (request line and headers) read before answering `431` (docs/deployment.md "Security").
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The HTTP server task and the two switches shutdown turns.
pub struct HttpServer {
    stop_accepting: watch::Sender<bool>,
    drain: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// Serves `app` on `listener` until [`HttpServer::drain`]. Dropping the server stops accepting
    /// and drains too.
    pub fn spawn(listener: TcpListener, app: Router, timeouts: ConnTimeouts) -> HttpServer {
        let (stop_accepting, stop_rx) = watch::channel(false);
        let (drain, drain_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, app, timeouts, stop_rx, drain_rx));
        HttpServer { stop_accepting, drain, task }
    }

    /// Closes the listener; accepted connections keep being served.
    pub fn stop_accepting(&self) {
        let _ = self.stop_accepting.send(true);
    }

    /// Stops accepting, lets in-flight requests finish, closes idle keep-alive connections, and
    /// resolves when every connection is gone. Upgraded WebSockets have left hyper by then; the
    /// gateway's socket tally waits for those.
    pub async fn drain(self) {
        let _ = self.stop_accepting.send(true);
        let _ = self.drain.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    timeouts: ConnTimeouts,
    mut stop_accepting: watch::Receiver<bool>,
    drain: watch::Receiver<bool>,
) {
    let mut http = http1::Builder::new();
    // The header read timeout is TimedStream's: hyper's own would also cut idle keep-alive connections.
    http.max_buf_size(MAX_HEAD_BYTES).header_read_timeout(None);
    // Every connection task holds a receiver; the loop's end waits until all are dropped.
    let (connections, alive) = watch::channel(());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    spawn_connection(&http, stream, peer, app.clone(), timeouts, drain.clone(), alive.clone())
                }
                // Per-connection failures (reset before accept) and descriptor exhaustion: retry shortly.
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Asked to stop, or the server handle is gone.
            _ = switched_on(&mut stop_accepting) => break,
        }
    }
    drop(listener);
    drop(alive);
    connections.closed().await;
}

fn spawn_connection(
    http: &http1::Builder,
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    timeouts: ConnTimeouts,
    mut drain: watch::Receiver<bool>,
    alive: watch::Receiver<()>,
) {
    // Frames and answers are small and latency-bound; Nagle's algorithm would only delay them.
    let _ = stream.set_nodelay(true);
    let cycle = RequestCycle::new();
    let io = TokioIo::new(TimedStream::new(stream, timeouts, cycle.clone()));
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        cycle.request_started();
        let mut request = request.map(axum::body::Body::new);
        // What `into_make_service_with_connect_info` would add: handlers read the peer from it.
        request.extensions_mut().insert(ConnectInfo(peer));
        let answer = tower_service::Service::call(&mut app.clone(), request);
        let cycle = Arc::clone(&cycle);
        async move {
            let response = answer.await.unwrap_or_else(|never: Infallible| match never {});
            cycle.response_ready(response.status() == StatusCode::SWITCHING_PROTOCOLS);
            Ok::<_, Infallible>(response)
        }
    });
    let connection = http.serve_connection(io, service).with_upgrades();
    tokio::spawn(async move {
        tokio::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            _ = switched_on(&mut drain) => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = result {
            // Client resets, malformed or oversized heads (hyper has answered 4xx), timeouts.
            tracing::debug!(%peer, %error, "HTTP connection ended with an error");
        }
        drop(alive);
    });
}

/// Resolves once the switch is on, or its sender is gone.
async fn switched_on(switch: &mut watch::Receiver<bool>) {
    let _ = switch.wait_for(|on| *on).await;
}
