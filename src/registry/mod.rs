//! The optional session registry in Redis (`--registry redis://…`, docs/deploy/cluster.md).
//!
//! It gives a cluster two things a single process cannot have on its own:
//! * vended ids from one counter (`INCR ui:vended`), unique across nodes and never reused, even by a
//!   node restarted after a crash;
//! * restart survival: each node records its sessions (internal id, vended id, node, last activity,
//!   epoch) with a TTL that activity refreshes, and keeps its backend epoch; a node started again
//!   with the same `--node-id` re-creates them under the same URLs.
//!
//! Redis is never on a session's path: records go through one writer task ([`writer`]), refreshes
//! are batched by the session manager, and the only awaited call on `GET /` (the vended id) has a
//! short timeout and is skipped while Redis is known to be down. Down means node-local fallback ids
//! ([`fallback`]), one warning per outage ([`health`]) and `ui_registry_errors_total`.

pub mod fallback;
pub mod health;
pub mod keys;
pub mod record;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;

use crate::ids::{NodeId, SessionId, VendedId};
pub use fallback::FallbackIds;
use health::{Health, Op};
pub use record::SessionRecord;
use writer::Write;

/// How long one Redis call may take before it counts as failed (the vended id on `GET /` waits
/// at most this long).
pub const OP_TIMEOUT: Duration = Duration::from_millis(250);

/// How often a down registry is probed, and how often sessions' activity is written back.
pub const PROBE_PERIOD: Duration = Duration::from_secs(1);

/// Records of sessions that never expire (`--session-timeout 0`) still get a TTL, so a node that is
/// gone for good does not leave them forever.
pub const MAX_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why the registry cannot be used at all (a bad `--registry` value; exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("--registry: not a Redis URL ({0})")]
    Url(redis::RedisError),
    #[error("--registry needs --node-id: records and the epoch are kept per node")]
    NoNodeId,
}

/// Wall clock in Unix milliseconds (records carry it; the session clock is monotonic).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A node's handle on the registry, shared by the session manager and startup.
pub struct Registry {
    pub node: NodeId,
    client: redis::Client,
    /// `None` until the first connection works (the probe task keeps trying).
    conn: Mutex<Option<ConnectionManager>>,
    pub health: Health,
    fallback: FallbackIds,
    writes: mpsc::Sender<Write>,
    /// How long a record lives without a refresh.
    pub ttl: Duration,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("node", &self.node).field("down", &self.health.is_down()).finish()
    }
}

impl Registry {
    /// Checks the URL, tries one connection (a failure is logged and retried in the background,
    /// never fatal) and starts the writer and the probe. `ttl` is how long an idle session's record
    /// lives: the session timeout plus the refresh slack.
    pub async fn connect(url: &str, node: Option<NodeId>, ttl: Duration) -> Result<Arc<Registry>, RegistryError> {
        let node = node.ok_or(RegistryError::NoNodeId)?;
        let client = redis::Client::open(url).map_err(RegistryError::Url)?;
        let (tx, rx) = mpsc::channel(writer::QUEUE);
        let ttl = ttl.clamp(PROBE_PERIOD * 4, MAX_TTL);
        let registry = Arc::new(Registry {
            node,
            client,
            conn: Mutex::new(None),
            health: Health::starting_down(),
            fallback: FallbackIds::from_clock(node),
            writes: tx,
            ttl,
        });
        registry.try_connect().await;
        tokio::spawn(writer::run(Arc::downgrade(&registry), rx));
        tokio::spawn(probe(Arc::downgrade(&registry)));
        Ok(registry)
    }

    async fn try_connect(&self) {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OP_TIMEOUT * 2))
            .set_response_timeout(Some(OP_TIMEOUT * 2))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let attempt = ConnectionManager::new_with_config(self.client.clone(), config);
        match tokio::time::timeout(OP_TIMEOUT * 4, attempt).await {
            Ok(Ok(conn)) => {
                *self.conn.lock() = Some(conn);
                self.health.succeeded();
            }
            Ok(Err(e)) => self.health.failed(Op::Connect, &e),
            Err(_) => self.health.failed(Op::Connect, &"timed out"),
        }
    }

    /// The connection, while Redis is believed reachable.
    fn connection(&self) -> Option<ConnectionManager> {
        if self.health.is_down() {
            return None;
        }
        self.conn.lock().clone()
    }

    /// Runs one command with [`OP_TIMEOUT`]; failures are counted and logged once per outage.
    async fn query<T: redis::FromRedisValue>(&self, op: Op, cmd: &redis::Cmd) -> Option<T> {
        let mut conn = self.connection()?;
        match tokio::time::timeout(OP_TIMEOUT, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.health.failed(op, &e);
                None
            }
            Err(_) => {
                self.health.failed(op, &"timed out");
                None
            }
        }
    }

    /// The next vended id: from the shared counter, or a node-local fallback id while Redis is down.
    pub async fn next_vended(&self) -> VendedId {
        match self.query::<u64>(Op::Vended, redis::cmd("INCR").arg(keys::VENDED)).await {
            Some(n) => VendedId(n),
            None => self.fallback.next(),
        }
    }

    /// The node's epoch: the one kept in Redis, or `proposal` if there was none (it is stored then).
    /// `None` while Redis is down: the backend gets a fresh epoch and nothing is restored.
    pub async fn epoch(&self, proposal: &str) -> Option<String> {
        let key = keys::epoch(self.node);
        self.query::<Option<String>>(Op::Epoch, redis::cmd("SET").arg(&key).arg(proposal).arg("NX").arg("GET"))
            .await
            .map(|old| old.unwrap_or_else(|| proposal.to_string()))
    }

    /// Forgets the epoch (decommission): the next start of this node is a new epoch.
    pub async fn forget_epoch(&self) {
        let _: Option<()> = self.query(Op::Write, redis::cmd("DEL").arg(keys::epoch(self.node))).await;
    }

    /// Every live record of this node (expired ones are gone already). Unreadable records are
    /// skipped with a warning.
    pub async fn load(&self) -> Vec<SessionRecord> {
        let mut keys_found: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor).arg("MATCH").arg(keys::sessions_pattern(self.node)).arg("COUNT").arg(1000);
            let Some((next, found)) = self.query::<(u64, Vec<String>)>(Op::Load, &scan).await else {
                return Vec::new();
            };
            keys_found.extend(found);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let mut records = Vec::with_capacity(keys_found.len());
        for chunk in keys_found.chunks(500) {
            let Some(values) = self.query::<Vec<Option<String>>>(Op::Load, redis::cmd("MGET").arg(chunk)).await else {
                return Vec::new();
            };
            for text in values.into_iter().flatten() {
                match SessionRecord::decode(&text) {
                    Ok(r) if r.node == self.node => records.push(r),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "registry: skipping an unreadable session record"),
                }
            }
        }
        records.sort_by_key(|r| r.vended);
        records
    }

    /// Queues a record write (creation or refresh). Never waits: a full queue drops it, counted.
    pub fn put(&self, record: SessionRecord) {
        self.enqueue(Write::Put(record));
    }

    /// Queues the removal of a session that ended for good.
    pub fn forget(&self, id: SessionId) {
        self.enqueue(Write::Forget(id));
    }

    fn enqueue(&self, write: Write) {
        if self.health.is_down() {
            // Nothing would reach Redis; the refresh after the outage rewrites every live record.
            return;
        }
        if self.writes.try_send(write).is_err() {
            self.health.failed(Op::Write, &"write queue full");
        }
    }

    /// Waits (at most `deadline`) until every write queued so far was sent: shutdown calls it so the
    /// last records (or, when decommissioning, their removal) are in Redis before the process exits.
    pub async fn flush(&self, deadline: Duration) -> bool {
        let (done, wait) = tokio::sync::oneshot::channel();
        let flushed = async { self.writes.send(Write::Flush(done)).await.is_ok() && wait.await.is_ok() };
        tokio::time::timeout(deadline, flushed).await.unwrap_or(false)
    }

    /// Whether every record must be rewritten (Redis came back after an outage).
    pub fn take_resync(&self) -> bool {
        self.health.take_resync()
    }
}

/// Reconnects (or pings) once a [`PROBE_PERIOD`] while Redis is down, until the registry is dropped.
async fn probe(registry: std::sync::Weak<Registry>) {
    let mut tick = tokio::time::interval(PROBE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(registry) = registry.upgrade() else { return };
        if !registry.health.is_down() {
            continue;
        }
        let conn = registry.conn.lock().clone();
        match conn {
            None => registry.try_connect().await,
            Some(mut conn) => {
                let ping = redis::cmd("PING");
                match tokio::time::timeout(OP_TIMEOUT, ping.query_async::<String>(&mut conn)).await {
                    Ok(Ok(_)) => {
                        registry.health.succeeded();
                    }
                    _ => crate::metrics::metrics().registry_error(Op::Connect.as_str()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_url_or_a_missing_node_id_is_a_start_error() {
        let ttl = Duration::from_secs(60);
        assert!(matches!(Registry::connect("redis://127.0.0.1:1/", None, ttl).await, Err(RegistryError::NoNodeId)));
        assert!(matches!(Registry::connect("http://nowhere", Some(NodeId(1)), ttl).await, Err(RegistryError::Url(_))));
    }

    /// Nothing listens on port 1: the registry starts anyway, down, and hands out fallback ids at
    /// once (no per-creation wait), without queueing writes that could not be sent.
    #[tokio::test]
    async fn an_unreachable_redis_degrades_to_fallback_ids() {
        let registry =
            Registry::connect("redis://127.0.0.1:1/", Some(NodeId(9)), Duration::from_secs(60)).await.unwrap();
        assert!(registry.health.is_down());
        let (a, b) = (registry.next_vended().await, registry.next_vended().await);
        assert_ne!(a, b);
        assert!(FallbackIds::is_fallback(a) && FallbackIds::is_fallback(b));
        assert_eq!(registry.epoch("ab").await, None);
        assert!(registry.load().await.is_empty());
        registry.forget(SessionId::generate());
        assert!(registry.flush(Duration::from_secs(5)).await, "the writer answers a flush even when down");
        assert_eq!(registry.ttl, Duration::from_secs(60));
    }
}
