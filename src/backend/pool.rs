//! [`Pool`]: which backend workers are connected and which worker serves which session. Plain data under
//! the hub's lock; the socket tasks and the sessions act on what its methods return.
//!
//! The rules (PROTOCOL.md B14 "Worker pools"):
//! - A session is pinned to one worker when it first needs a backend (its first browser frame, or a
//!   worker's batch for it), to the worker with the fewest pinned sessions per unit of announced
//!   capacity among those not draining (ties: the oldest connection). All its traffic goes there.
//! - A worker that leaves hands its sessions to the others at once (they replay to their new worker).
//!   A *named* worker that was not draining keeps them for a grace period instead: if a worker of the
//!   same name connects within it, it gets them back; afterwards they move.
//! - A session that finds no worker waits; the next worker to connect takes every waiting session.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use crate::ids::VendedId;

/// A worker as the pool sees it.
#[derive(Debug)]
pub struct Worker {
    pub generation: u64,
    /// From the upgrade URL (`?worker=NAME`): what a returning worker is recognised by.
    pub name: Option<String>,
    /// Relative weight for assignment (`?capacity=N` or a `hello`), at least 1.
    pub capacity: u32,
    pub draining: bool,
    /// Sessions pinned to it.
    pub sessions: usize,
}

impl Worker {
    /// The label used in logs and metrics: the name, or `#generation` for an unnamed worker.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| format!("#{}", self.generation))
    }
}

/// Sessions a named worker left behind, kept for its return until its grace ends.
#[derive(Debug)]
struct Orphans {
    sessions: Vec<VendedId>,
    /// The generation that left them: a later expiry for the same name must not take a newer set.
    from: u64,
}

/// What a worker's departure (or the end of its grace) means for its sessions.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Handover {
    /// Sessions moved to another worker, with its generation.
    pub moved: Vec<(VendedId, u64)>,
    /// Sessions kept for the worker's return until its grace ends.
    pub kept: Vec<VendedId>,
    /// Sessions no worker took: they wait for the next one.
    pub waiting: Vec<VendedId>,
}

/// Where a batch from a worker for a session may go.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// The session is this worker's (now, if it was nobody's).
    Own,
    /// The session is pinned to another worker.
    Other(u64),
}

#[derive(Debug)]
pub struct Pool {
    max_workers: usize,
    grace: Duration,
    workers: Vec<Worker>,
    pins: HashMap<VendedId, u64>,
    waiting: BTreeSet<VendedId>,
    orphans: HashMap<String, Orphans>,
}

impl Pool {
    pub fn new(max_workers: usize, grace: Duration) -> Pool {
        Pool {
            max_workers: max_workers.max(1),
            grace,
            workers: Vec::new(),
            pins: HashMap::new(),
            waiting: BTreeSet::new(),
            orphans: HashMap::new(),
        }
    }

    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    pub fn worker(&self, generation: u64) -> Option<&Worker> {
        self.workers.iter().find(|w| w.generation == generation)
    }

    fn worker_mut(&mut self, generation: u64) -> Option<&mut Worker> {
        self.workers.iter_mut().find(|w| w.generation == generation)
    }

    pub fn is_full(&self) -> bool {
        self.workers.len() >= self.max_workers
    }

    /// Adds a worker; returns the sessions it starts with, ascending: those it left within its grace
    /// (same name) and every waiting session.
    pub fn join(&mut self, generation: u64, name: Option<String>, capacity: u32) -> Vec<VendedId> {
        let mut start: BTreeSet<VendedId> = std::mem::take(&mut self.waiting);
        // Its own sessions from before, also when the grace ran out but the expiry has not collected
        // them yet (they would move to some worker now anyway).
        if let Some(orphans) = name.as_ref().and_then(|n| self.orphans.remove(n)) {
            start.extend(orphans.sessions);
        }
        for vended in &start {
            self.pins.insert(*vended, generation);
        }
        self.workers.push(Worker {
            generation,
            name,
            capacity: capacity.max(1),
            draining: false,
            sessions: start.len(),
        });
        start.into_iter().collect()
    }

    /// The worker for a session that needs one: its pin, or the least loaded worker that is not
    /// draining (which pins it). `None`: no worker; the session waits.
    pub fn assign(&mut self, vended: VendedId) -> Option<u64> {
        if let Some(g) = self.pins.get(&vended) {
            return Some(*g);
        }
        match self.least_loaded() {
            Some(g) => {
                self.pin(vended, g);
                Some(g)
            }
            None => {
                self.waiting.insert(vended);
                None
            }
        }
    }

    /// Least pinned sessions per unit of capacity among workers not draining; ties go to the oldest.
    fn least_loaded(&self) -> Option<u64> {
        self.workers
            .iter()
            .filter(|w| !w.draining)
            // Compare sessions/capacity as cross products, in integers.
            .min_by(|a, b| {
                let la = (a.sessions as u64 + 1) * u64::from(b.capacity);
                let lb = (b.sessions as u64 + 1) * u64::from(a.capacity);
                la.cmp(&lb).then(a.generation.cmp(&b.generation))
            })
            .map(|w| w.generation)
    }

    fn pin(&mut self, vended: VendedId, generation: u64) {
        self.waiting.remove(&vended);
        if let Some(old) = self.pins.insert(vended, generation) {
            if let Some(w) = self.worker_mut(old) {
                w.sessions = w.sessions.saturating_sub(1);
            }
        }
        if let Some(w) = self.worker_mut(generation) {
            w.sessions += 1;
        }
    }

    /// A worker sent a batch for `vended`: allowed for its own sessions, and pins a session nobody
    /// serves yet to it.
    pub fn route(&mut self, vended: VendedId, generation: u64) -> Route {
        match self.pins.get(&vended) {
            Some(g) if *g == generation => Route::Own,
            Some(g) => Route::Other(*g),
            None => {
                self.pin(vended, generation);
                Route::Own
            }
        }
    }

    /// Who serves `vended`, if anyone.
    pub fn pinned(&self, vended: VendedId) -> Option<u64> {
        self.pins.get(&vended).copied()
    }

    /// The session ended: it is nobody's any more. Returns the worker that served it.
    pub fn forget(&mut self, vended: VendedId) -> Option<u64> {
        self.waiting.remove(&vended);
        for o in self.orphans.values_mut() {
            o.sessions.retain(|v| *v != vended);
        }
        let g = self.pins.remove(&vended)?;
        if let Some(w) = self.worker_mut(g) {
            w.sessions = w.sessions.saturating_sub(1);
        }
        Some(g)
    }

    pub fn set_draining(&mut self, generation: u64) -> bool {
        match self.worker_mut(generation) {
            Some(w) if !w.draining => {
                w.draining = true;
                true
            }
            _ => false,
        }
    }

    pub fn set_capacity(&mut self, generation: u64, capacity: u32) {
        if let Some(w) = self.worker_mut(generation) {
            w.capacity = capacity.max(1);
        }
    }

    /// Worker `generation` left. A named worker that was not draining keeps its sessions for the
    /// grace period (`kept`, and the grace to wait); otherwise they move or wait at once.
    pub fn leave(&mut self, generation: u64) -> (Handover, Option<(String, Duration)>) {
        let Some(i) = self.workers.iter().position(|w| w.generation == generation) else {
            return (Handover::default(), None);
        };
        let worker = self.workers.remove(i);
        let mut sessions: Vec<VendedId> =
            self.pins.iter().filter(|(_, g)| **g == generation).map(|(v, _)| *v).collect();
        sessions.sort();
        for v in &sessions {
            self.pins.remove(v);
        }
        match worker.name {
            Some(name) if !worker.draining && !self.grace.is_zero() && !sessions.is_empty() => {
                let grace = self.grace;
                self.orphans.insert(name.clone(), Orphans { sessions: sessions.clone(), from: generation });
                (Handover { kept: sessions, ..Default::default() }, Some((name, grace)))
            }
            _ => (self.rehome(sessions), None),
        }
    }

    /// The grace of `name`'s sessions (left by connection `from`) is over: those not reclaimed move.
    pub fn expire(&mut self, name: &str, from: u64) -> Handover {
        match self.orphans.get(name) {
            Some(o) if o.from == from => {}
            _ => return Handover::default(),
        }
        let orphans = self.orphans.remove(name).expect("checked above");
        self.rehome(orphans.sessions)
    }

    /// Pins each session to the least loaded worker, or makes it wait.
    fn rehome(&mut self, sessions: Vec<VendedId>) -> Handover {
        let mut handover = Handover::default();
        for vended in sessions {
            match self.assign(vended) {
                Some(g) => handover.moved.push((vended, g)),
                None => handover.waiting.push(vended),
            }
        }
        handover
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(n: u64) -> VendedId {
        VendedId(n)
    }

    #[test]
    fn sessions_go_to_the_least_loaded_worker_by_capacity() {
        let mut pool = Pool::new(4, Duration::ZERO);
        assert_eq!(pool.assign(v(1)), None, "no worker: the session waits");
        assert_eq!(pool.join(1, None, 1), vec![v(1)], "the first worker takes the waiting session");
        pool.join(2, None, 3);
        // Worker 2 has three times the capacity: of the next 8 sessions it takes most.
        for n in 2..10 {
            pool.assign(v(n));
        }
        let load = |g| pool.worker(g).unwrap().sessions;
        assert_eq!((load(1), load(2)), (2, 7));
        assert_eq!(pool.assign(v(3)), pool.pinned(v(3)), "a pinned session stays");
        pool.set_draining(2);
        assert_eq!(pool.assign(v(20)), Some(1), "draining workers get no new sessions");
    }

    #[test]
    fn a_leaving_worker_hands_its_sessions_over() {
        let mut pool = Pool::new(4, Duration::ZERO);
        pool.join(1, None, 1);
        pool.join(2, None, 1);
        for n in 1..=4 {
            pool.assign(v(n));
        }
        let (handover, grace) = pool.leave(1);
        assert_eq!(grace, None);
        assert_eq!(handover.moved, vec![(v(1), 2), (v(3), 2)]);
        assert_eq!(pool.worker(2).unwrap().sessions, 4);
        let (handover, _) = pool.leave(2);
        assert_eq!(handover.waiting, vec![v(1), v(2), v(3), v(4)], "the last worker: everything waits");
        assert_eq!(pool.join(3, None, 1), vec![v(1), v(2), v(3), v(4)]);
    }

    #[test]
    fn a_named_worker_gets_its_sessions_back_within_the_grace() {
        let mut pool = Pool::new(4, Duration::from_secs(2));
        pool.join(1, Some("a".into()), 1);
        pool.join(2, Some("b".into()), 1);
        pool.assign(v(1));
        pool.assign(v(2));
        let (handover, grace) = pool.leave(1);
        assert_eq!(handover.kept, vec![v(1)]);
        assert_eq!(grace, Some(("a".to_string(), Duration::from_secs(2))));
        assert_eq!(pool.pinned(v(1)), None);
        assert_eq!(pool.join(3, Some("a".into()), 1), vec![v(1)], "back within the grace");
        assert_eq!(pool.expire("a", 1), Handover::default(), "nothing left to expire");

        // Not back in time: the sessions move when the grace ends.
        let (handover, _) = pool.leave(3);
        assert_eq!(handover.kept, vec![v(1)]);
        assert_eq!(pool.expire("a", 3).moved, vec![(v(1), 2)]);

        // A draining worker's sessions move at once, name or not.
        pool.set_draining(2);
        let (handover, grace) = pool.leave(2);
        assert_eq!((handover.waiting, grace), (vec![v(1), v(2)], None));
    }

    #[test]
    fn batches_for_another_workers_session_are_refused() {
        let mut pool = Pool::new(2, Duration::ZERO);
        pool.join(1, None, 1);
        pool.join(2, None, 1);
        assert!(pool.is_full());
        assert_eq!(pool.route(v(5), 2), Route::Own, "an unserved session is pinned to the sender");
        assert_eq!(pool.route(v(5), 1), Route::Other(2));
        assert_eq!(pool.forget(v(5)), Some(2));
        assert_eq!(pool.worker(2).unwrap().sessions, 0);
    }
}
