//! The one task that writes session records: sessions never wait on Redis. Whatever queued up while
//! a write was in flight goes out as one pipeline, so a burst of creations or a refresh of thousands
//! of sessions is a handful of round trips.

use tokio::sync::{mpsc, oneshot};

use super::health::Op;
use super::{keys, Registry, SessionRecord};
use crate::ids::SessionId;

/// Queued writes before new ones are dropped (and counted): Redis is far behind or gone.
pub const QUEUE: usize = 65_536;

/// Writes per pipeline.
const BATCH: usize = 512;

#[derive(Debug)]
pub enum Write {
    /// Create or refresh a record; it expires after the registry's TTL unless written again.
    Put(SessionRecord),
    /// The session ended for good.
    Forget(SessionId),
    /// Answered once everything queued before it was sent (shutdown waits for it).
    Flush(oneshot::Sender<()>),
}

pub async fn run(registry: std::sync::Weak<Registry>, mut rx: mpsc::Receiver<Write>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let Some(registry) = registry.upgrade() else { return };
        let mut flushed = Vec::new();
        let mut writes = Vec::with_capacity(batch.len());
        for write in batch.drain(..) {
            match write {
                Write::Flush(done) => flushed.push(done),
                other => writes.push(other),
            }
        }
        if let (false, Some(mut conn)) = (writes.is_empty(), registry.connection()) {
            let pipe = pipeline(&registry, &writes);
            match tokio::time::timeout(super::OP_TIMEOUT * 4, pipe.exec_async(&mut conn)).await {
                Ok(Ok(())) => {
                    registry.health.succeeded();
                }
                Ok(Err(e)) => registry.health.failed(Op::Write, &e),
                Err(_) => registry.health.failed(Op::Write, &"timed out"),
            }
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}

fn pipeline(registry: &Registry, batch: &[Write]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    let ttl_ms = registry.ttl.as_millis().min(u128::from(u64::MAX)) as u64;
    for write in batch {
        match write {
            Write::Put(record) => {
                pipe.cmd("SET")
                    .arg(keys::session(registry.node, &record.id))
                    .arg(record.encode())
                    .arg("PX")
                    .arg(ttl_ms);
            }
            Write::Forget(id) => {
                pipe.cmd("DEL").arg(keys::session(registry.node, id));
            }
            Write::Flush(_) => continue,
        }
        pipe.ignore();
    }
    pipe
}
