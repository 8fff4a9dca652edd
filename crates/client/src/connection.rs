//! The gateway connection: connect with the token, read the welcome, route frames to session tasks,
//! reconnect with backoff. Runs on the client thread's `LocalSet`.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::backoff::Backoff;
use super::config::ClientConfig;
use super::error::ClientError;
use super::session::{Input, Mode, Root};
use super::task::{self, Factory, Link};
use crate::ids::VendedId;
use crate::protocol::backend::PROTOCOL_VERSION;
use crate::protocol::backend::{encode_drain, encode_hello, parse_gateway_frame, GatewayFrame, Hello, Welcome};

/// What the application wants of the client's links.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Control {
    Run,
    /// Take no new sessions, keep serving the held ones, leave when none is left or after
    /// `drain_timeout`.
    Drain,
    Stop,
}

/// Nesting the client reads in gateway frames (the depth serde_json allows by default).
const MAX_DEPTH: usize = 128;

/// The sessions of the client and what the last welcome said.
struct Sessions<A> {
    mode: Mode,
    factory: Factory<A>,
    link: Rc<Link>,
    tasks: HashMap<VendedId, UnboundedSender<Input>>,
    epoch: Option<String>,
    /// Counts welcomes: a session's first batch under a newer generation is its replay.
    generation: u64,
}

impl<A: Root> Sessions<A> {
    fn close(&mut self, id: VendedId) {
        if let Some(tx) = self.tasks.remove(&id) {
            let _ = tx.send(Input::Close);
        }
    }

    fn close_all(&mut self) {
        for (_, tx) in self.tasks.drain() {
            let _ = tx.send(Input::Close);
        }
    }

    /// PROTOCOL.md B6: a new epoch drops everything, the same epoch the sessions not listed.
    fn welcome(&mut self, epoch: &str, live: &[VendedId]) {
        match &self.epoch {
            Some(old) if old != epoch => {
                tracing::info!(sessions = self.tasks.len(), "new gateway epoch: dropping all session state");
                self.close_all();
            }
            _ => {
                let gone: Vec<VendedId> = self.tasks.keys().filter(|id| !live.contains(id)).copied().collect();
                for id in gone {
                    tracing::debug!(session = %id, "session not live any more");
                    self.close(id);
                }
            }
        }
        self.epoch = Some(epoch.to_string());
        self.generation += 1;
    }

    /// Routes one gateway frame.
    fn frame(&mut self, bytes: &[u8]) {
        let batch = match parse_gateway_frame(bytes, MAX_DEPTH) {
            Ok(GatewayFrame::Batch(batch)) => batch,
            Ok(GatewayFrame::Closed(id)) => {
                tracing::debug!(session = %id, "session closed");
                return self.close(id);
            }
            Ok(GatewayFrame::Error(e)) => {
                return tracing::warn!(code = ?e.code, description = %e.description, "the gateway refused a frame");
            }
            Ok(GatewayFrame::Welcome(_)) => return tracing::warn!("a second welcome on one connection"),
            Err(e) => return tracing::warn!(error = %e, "unreadable frame from the gateway"),
        };
        let id = batch.session;
        let input =
            Input::Batch { messages: batch.messages, user_event: batch.user_event, generation: self.generation };
        let input = match self.tasks.get(&id) {
            Some(tx) => match tx.send(input) {
                Ok(()) => return,
                Err(failed) => {
                    tracing::error!(session = %id, "session task died (panic?): starting over");
                    failed.0
                }
            },
            None => input,
        };
        let tx = task::spawn(id, self.mode, self.factory.clone(), self.link.clone());
        let _ = tx.send(input);
        self.tasks.insert(id, tx);
    }
}

/// Why a connection ended.
enum End {
    Stopped,
    Lost(ClientError),
}

/// Runs one link to the gateway at `url` until stopped or drained (`Ok`) or refused (`Err(Refused)`),
/// reconnecting after anything else.
pub(crate) async fn run<A: Root>(
    url: String,
    config: ClientConfig,
    mode: Mode,
    factory: Factory<A>,
    mut stop: watch::Receiver<Control>,
) -> Result<(), ClientError> {
    let mut sessions =
        Sessions { mode, factory, link: Rc::new(Link::default()), tasks: HashMap::new(), epoch: None, generation: 0 };
    let mut backoff = Backoff::default();
    let result = loop {
        let started = Instant::now();
        let end = serve(&url, &config, &mut sessions, &mut stop).await;
        sessions.link.clear();
        backoff.connection_ended(started.elapsed());
        let error = match end {
            End::Stopped => break Ok(()),
            // A draining client does not come back: its sessions move to other workers.
            End::Lost(_) if *stop.borrow() == Control::Drain => break Ok(()),
            End::Lost(e @ ClientError::Refused { .. }) => {
                tracing::error!(error = %e, "backend connection refused; not retrying");
                break Err(e);
            }
            End::Lost(e) => e,
        };
        let delay = backoff.next_delay();
        tracing::warn!(error = %error, retry_in = ?delay, attempt = backoff.attempt(), "gateway connection lost");
        tokio::select! {
            _ = stop.wait_for(|c| *c != Control::Run) => break Ok(()),
            _ = tokio::time::sleep(delay) => {}
        }
    };
    sessions.close_all();
    result
}

/// One connection: connect, welcome, traffic until it ends.
async fn serve<A: Root>(
    url: &str,
    config: &ClientConfig,
    sessions: &mut Sessions<A>,
    stop: &mut watch::Receiver<Control>,
) -> End {
    let mut request = match url.into_client_request() {
        Ok(r) => r,
        Err(e) => return End::Lost(ClientError::Config(format!("{url}: {e}"))),
    };
    if let Some(token) = &config.token {
        match format!("Bearer {token}").parse() {
            Ok(v) => {
                request.headers_mut().insert(AUTHORIZATION, v);
            }
            Err(_) => return End::Lost(ClientError::Config("the token is not a valid header value".into())),
        }
    }
    // Nagle off: the link is request/response shaped (a batch in, its updates out), and with Nagle each
    // small reply can wait for the previous segment's delayed ACK (tens of ms). An 8 KiB read buffer:
    // tungstenite zero-fills its whole read buffer (128 KiB by default) before every socket read.
    let ws_config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let connect = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true),
    );
    let connected = tokio::select! {
        _ = stop.wait_for(|c| *c != Control::Run) => return End::Stopped,
        c = connect => c,
    };
    let ws = match connected {
        Err(_) => return End::Lost(ClientError::Silent),
        Ok(Ok((ws, _))) => ws,
        Ok(Err(WsError::Http(response))) if matches!(response.status().as_u16(), 401 | 403) => {
            return End::Lost(ClientError::Refused { status: response.status().as_u16() })
        }
        Ok(Err(e)) => return End::Lost(e.into()),
    };
    let (mut sink, mut stream) = ws.split();
    let silence = config.silence_timeout;

    // The welcome comes first (PROTOCOL.md B3).
    let welcome = loop {
        match tokio::time::timeout(silence, stream.next()).await {
            Err(_) => return End::Lost(ClientError::Silent),
            Ok(None) => return End::Lost(ClientError::Frame("closed before the welcome".into())),
            Ok(Some(Err(e))) => return End::Lost(e.into()),
            Ok(Some(Ok(Message::Text(t)))) => break t.as_bytes().to_vec(),
            Ok(Some(Ok(Message::Binary(b)))) => break b.to_vec(),
            Ok(Some(Ok(Message::Close(frame)))) => {
                let code = frame.map(|f| u16::from(f.code));
                return End::Lost(ClientError::Frame(format!("closed before the welcome ({code:?})")));
            }
            Ok(Some(Ok(_))) => continue,
        }
    };
    let welcome = match read_welcome(&welcome) {
        Ok(w) => w,
        Err(e) => {
            if let ClientError::Protocol(_) = e {
                let close = CloseFrame { code: CloseCode::Protocol, reason: "unsupported protocol".into() };
                let _ = sink.send(Message::Close(Some(close))).await;
            }
            return End::Lost(e);
        }
    };
    tracing::info!(url = %url, mode = %welcome.mode, sessions = welcome.sessions.len(), "connected to the gateway");
    if welcome.mode != sessions.mode.as_str() {
        tracing::warn!(gateway = %welcome.mode, backend = sessions.mode.as_str(), "the gateway runs in another mode");
    }
    sessions.welcome(&welcome.epoch, &welcome.sessions);
    let (tx, mut rx) = unbounded_channel::<String>();
    sessions.link.set(tx, welcome.limits.max_frame_bytes);

    if let Some(capacity) = config.capacity {
        // Also in the URL; the hello keeps a gateway that ignores the query informed.
        let _ = sink.send(Message::Text(encode_hello(Hello { capacity: Some(capacity) }).into())).await;
    }
    // Draining: when the drain began (the deadline counts from it, across reconnects it does not do).
    let mut draining: Option<Instant> = None;
    loop {
        match *stop.borrow_and_update() {
            Control::Stop => return leave(&mut sink, &mut rx, "backend stopping").await,
            Control::Drain if draining.is_none() => {
                tracing::info!(url = %url, sessions = sessions.tasks.len(), "draining: no new sessions");
                if let Err(e) = sink.send(Message::Text(encode_drain().into())).await {
                    return End::Lost(e.into());
                }
                draining = Some(Instant::now());
            }
            _ => {}
        }
        if let Some(since) = draining {
            if sessions.tasks.is_empty() || since.elapsed() >= config.drain_timeout {
                tracing::info!(url = %url, sessions = sessions.tasks.len(), "drained: leaving the gateway");
                return leave(&mut sink, &mut rx, "backend drained").await;
            }
        }
        let deadline = draining.map(|since| tokio::time::Instant::from_std(since + config.drain_timeout));
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    return leave(&mut sink, &mut rx, "backend stopping").await;
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {}
            Some(text) = rx.recv() => {
                if let Err(e) = write_replies(&mut sink, &mut rx, text).await {
                    return End::Lost(e.into());
                }
            }
            next = tokio::time::timeout(silence, stream.next()) => match next {
                Err(_) => return End::Lost(ClientError::Silent),
                Ok(None) => return End::Lost(ClientError::Frame("connection ended".into())),
                Ok(Some(Err(e))) => return End::Lost(e.into()),
                Ok(Some(Ok(msg))) => match msg {
                    Message::Text(t) => sessions.frame(t.as_bytes()),
                    Message::Binary(b) => sessions.frame(&b),
                    Message::Ping(_) => {
                        // The pong is queued by tungstenite; flush it now.
                        let _ = sink.flush().await;
                    }
                    Message::Close(frame) => {
                        let (code, reason) = frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                        return End::Lost(ClientError::Frame(format!("closed by the gateway: {code} {reason}")));
                    }
                    _ => {}
                },
            },
        }
    }
}

/// Most replies one write to the gateway gathers.
const COALESCE_FRAMES: usize = 64;

/// Writes `first` and the replies queued behind it (up to [`COALESCE_FRAMES`]) with one flush: one
/// socket write and one TCP segment for all the sessions that answered meanwhile, instead of one each.
async fn write_replies<S>(
    sink: &mut S,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    first: String,
) -> Result<(), S::Error>
where
    S: futures::Sink<Message> + Unpin,
{
    sink.feed(Message::Text(first.into())).await?;
    for _ in 1..COALESCE_FRAMES {
        match rx.try_recv() {
            Ok(text) => sink.feed(Message::Text(text.into())).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}

/// Sends what the session tasks already replied, then closes normally.
async fn leave<S>(sink: &mut S, rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, reason: &str) -> End
where
    S: futures::Sink<Message> + Unpin,
{
    while let Ok(text) = rx.try_recv() {
        if sink.send(Message::Text(text.into())).await.is_err() {
            return End::Stopped;
        }
    }
    let close = CloseFrame { code: CloseCode::Normal, reason: reason.to_string().into() };
    let _ = sink.send(Message::Close(Some(close))).await;
    End::Stopped
}

/// Reads the first frame: a welcome in a protocol version this client speaks.
fn read_welcome(bytes: &[u8]) -> Result<Welcome, ClientError> {
    match parse_gateway_frame(bytes, MAX_DEPTH) {
        Ok(GatewayFrame::Welcome(w)) if w.protocol == PROTOCOL_VERSION => Ok(w),
        Ok(GatewayFrame::Welcome(w)) => Err(ClientError::Protocol(w.protocol)),
        Ok(other) => Err(ClientError::Frame(format!("expected a welcome, got {other:?}"))),
        Err(e) => Err(ClientError::Frame(format!("welcome: {e}"))),
    }
}

/// How long the client waits for a connection to be established before counting it as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welcome_parsing() {
        let w = read_welcome(
            br#"{"welcome":{"protocol":1,"epoch":"ab","mode":"connected","sessions":["1","4"],"limits":{"maxFrameBytes":100},"extra":1}}"#,
        )
        .unwrap();
        assert_eq!(w.epoch, "ab");
        assert_eq!(w.sessions, vec![VendedId(1), VendedId(4)]);
        assert_eq!(w.limits.max_frame_bytes, 100);
        assert!(matches!(read_welcome(br#"{"welcome":{"protocol":2}}"#), Err(ClientError::Protocol(2))));
        assert!(matches!(read_welcome(br#"{"session":"1"}"#), Err(ClientError::Frame(_))));
    }
}
