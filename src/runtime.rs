//! Where session actors run: a tokio runtime of their own (threads named `ui-lua`), apart from the
//! runtime that serves HTTP, browser and backend sockets, `/healthz` and `/metrics`.
//!
//! Why a second runtime: a session runs Lua synchronously inside its actor task, and a Lua phase may
//! legitimately run for up to its budget (about a second). On the I/O runtime that stalled every socket
//! the worker thread served, and a worker stuck in a C call froze the process. Here a busy session can
//! only hold a `ui-lua` thread, never an I/O thread.
//!
//! Why a busy session gives its worker away ([`escape_worker`]): with a fixed set of workers, k busy
//! sessions would still stall every other session sharded to the same k workers. So once one mailbox
//! item has run longer than [`SLICE`], the Lua hook hands the worker's queue (every other session waiting
//! on it) to a fresh thread and keeps running on its own thread, which the kernel then time-slices like
//! any other. The worker count stays small (`--lua-threads`, default: the cores) and the threads that busy
//! sessions may hold at once are capped (`--lua-busy-threads`); past the cap, new escapes wait for a
//! thread and the queue depth metric shows it. Items that finish within the slice, nearly all of them,
//! never leave their worker: no thread hop on the fast path.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tokio::task::JoinHandle;

/// How long one mailbox item may keep a `ui-lua` worker before it hands the worker's other sessions to
/// another thread.
pub const SLICE: Duration = Duration::from_millis(5);

/// Sizes of the session runtime.
#[derive(Clone, Copy, Debug)]
pub struct RuntimeSize {
    /// Worker threads (`--lua-threads`; 0 = one per core).
    pub workers: usize,
    /// Threads busy sessions may hold at once after leaving their worker (`--lua-busy-threads`).
    pub busy_threads: usize,
}

impl Default for RuntimeSize {
    fn default() -> Self {
        RuntimeSize { workers: 0, busy_threads: 256 }
    }
}

/// The runtime session actors (and so all session Lua, `main.lua` included) run on.
#[derive(Debug)]
pub struct SessionRuntime {
    /// `Some` until dropped; dropping shuts it down in the background (dropping a runtime inside an
    /// async context would otherwise panic).
    runtime: Option<Runtime>,
    handle: Handle,
}

impl SessionRuntime {
    pub fn new(size: RuntimeSize) -> std::io::Result<SessionRuntime> {
        let workers =
            if size.workers == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { size.workers };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .max_blocking_threads(size.busy_threads.max(1))
            .thread_name("ui-lua")
            .enable_time()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(SessionRuntime { runtime: Some(runtime), handle })
    }

    /// Spawns a task (a session actor, a session's construction) on the session runtime.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Updates the scrape-time figures of `/metrics` (per-worker busy time, queue depth).
    pub fn report_metrics(&self) {
        crate::metrics::metrics().lua_runtime(&self.handle.metrics());
    }
}

impl Drop for SessionRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Called from the Lua hook once an item has run past [`SLICE`]: hands this worker's other tasks to a
/// new thread, so they run while this session keeps computing on its own thread.
///
/// Best effort by design: if the handover thread has not picked the worker up by the time this returns,
/// the worker stays here and the next slice tries again. Outside a multi-thread runtime (unit tests on
/// a current-thread runtime, a session built synchronously) it does nothing.
pub fn escape_worker() {
    let multi_thread = Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(std::thread::yield_now);
        crate::metrics::metrics().lua_escapes.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// A task that never yields but escapes its worker does not stall a task queued behind it on the
    /// same (single) worker.
    #[test]
    fn an_escaped_task_frees_its_worker() {
        let rt = SessionRuntime::new(RuntimeSize { workers: 1, busy_threads: 4 }).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let spinning = stop.clone();
        rt.spawn(async move {
            let mut last = std::time::Instant::now();
            while !spinning.load(Ordering::Relaxed) {
                if last.elapsed() >= SLICE {
                    escape_worker();
                    last = std::time::Instant::now();
                }
                std::hint::spin_loop();
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        let (tx, rx) = std::sync::mpsc::channel();
        rt.spawn(async move {
            let _ = tx.send(());
        });
        let answered = rx.recv_timeout(Duration::from_secs(10)).is_ok();
        stop.store(true, Ordering::Relaxed);
        assert!(answered, "the second task never ran while the first kept computing");
    }

    #[test]
    fn escaping_outside_a_multi_thread_runtime_is_a_no_op() {
        escape_worker();
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async { escape_worker() });
    }
}
