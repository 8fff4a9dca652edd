//! The target server and a small pool of keep-alive HTTP/1.1 connections (at most one per set-up in
//! flight, so `--concurrency 4` means 4 client connections).

use std::net::SocketAddr;

use axum::http::{header, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpStream;

/// The server under test.
#[derive(Clone, Debug)]
pub struct Target {
    /// `host[:port]` as given: the `Host` header and the `Origin`'s authority.
    pub authority: String,
    /// `http://host[:port]`: the `Origin` header of WebSocket upgrades.
    pub origin: String,
    /// Where to connect (resolved once).
    pub addr: SocketAddr,
}

impl Target {
    /// Parses `http://host[:port][/]` and resolves the host.
    pub async fn resolve(url: &str) -> Result<Target, String> {
        let uri: Uri = url.parse().map_err(|e| format!("--target {url:?}: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => return Err(format!("--target {url:?}: scheme {other:?} is not supported (http only)")),
            None => return Err(format!("--target {url:?}: expected http://host[:port]")),
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!("--target {url:?}: give the server's base URL without a path"));
        }
        let authority = uri.authority().ok_or_else(|| format!("--target {url:?}: no host"))?;
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("--target {url:?}: cannot resolve {host:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("--target {url:?}: {host:?} has no address"))?;
        Ok(Target { authority: authority.as_str().to_string(), origin: format!("http://{authority}"), addr })
    }

    /// A TCP connection to the server with Nagle's algorithm off.
    pub async fn connect(&self) -> std::io::Result<TcpStream> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// An HTTP exchange that did not produce a status.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connect: {0}")]
    Connect(#[from] std::io::Error),
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
}

/// Reusable HTTP/1.1 connections to the target.
pub struct HttpPool {
    target: Target,
    idle: Mutex<Vec<SendRequest<Empty<Bytes>>>>,
}

/// Status and `Location` of a response (its body is read and dropped).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub location: Option<String>,
}

impl HttpPool {
    pub fn new(target: Target) -> Self {
        HttpPool { target, idle: Mutex::new(Vec::new()) }
    }

    async fn open(&self) -> Result<SendRequest<Empty<Bytes>>, HttpError> {
        let stream = self.target.connect().await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn take_idle(&self) -> Option<SendRequest<Empty<Bytes>>> {
        let mut idle = self.idle.lock();
        while let Some(s) = idle.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    /// `GET path` without following redirects.
    pub async fn get(&self, path: &str) -> Result<Answer, HttpError> {
        self.send(Method::GET, path).await
    }

    /// `DELETE path` (ending a session: docs/deployment.md "HTTP routes").
    pub async fn delete(&self, path: &str) -> Result<Answer, HttpError> {
        self.send(Method::DELETE, path).await
    }

    /// One request without a body. A kept-alive connection the server closed meanwhile is replaced once.
    async fn send(&self, method: Method, path: &str) -> Result<Answer, HttpError> {
        let mut retried = false;
        loop {
            let (mut sender, reused) = match self.take_idle() {
                Some(s) => (s, true),
                None => (self.open().await?, false),
            };
            let request = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(header::HOST, &self.target.authority)
                .header(header::USER_AGENT, concat!("ui-gateway-loadtest/", env!("CARGO_PKG_VERSION")))
                .body(Empty::<Bytes>::new())
                .expect("valid request");
            let sent = match sender.ready().await {
                Ok(()) => sender.send_request(request).await,
                Err(e) => Err(e),
            };
            let response = match sent {
                Ok(r) => r,
                Err(_) if reused && !retried => {
                    retried = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let status = response.status();
            let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
            response.into_body().collect().await?;
            self.idle.lock().push(sender);
            return Ok(Answer { status, location });
        }
    }
}
