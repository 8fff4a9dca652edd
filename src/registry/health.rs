//! Whether Redis answers, so that its failures cost one log line and a metric, never a stalled
//! session creation.

use std::sync::atomic::{AtomicBool, Ordering};

/// What the registry was doing when Redis failed: the `op` label of `ui_registry_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Connect,
    Vended,
    Epoch,
    Load,
    Write,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Connect => "connect",
            Op::Vended => "vended",
            Op::Epoch => "epoch",
            Op::Load => "load",
            Op::Write => "write",
        }
    }
}

/// Up or down, with the down→up edge remembered so the sessions' records are rewritten in full.
#[derive(Debug, Default)]
pub struct Health {
    down: AtomicBool,
    /// Set when Redis comes back: records written meanwhile were lost, so everything is rewritten.
    resync: AtomicBool,
}

impl Health {
    /// A new health that starts down until the first connection works.
    pub fn starting_down() -> Self {
        Health { down: AtomicBool::new(true), resync: AtomicBool::new(false) }
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// Counts the failure; the first one of an outage is logged.
    pub fn failed(&self, op: Op, error: &dyn std::fmt::Display) {
        crate::metrics::metrics().registry_error(op.as_str());
        crate::metrics::metrics().registry_up.set(0);
        if !self.down.swap(true, Ordering::AcqRel) {
            tracing::warn!(op = op.as_str(), error = %error,
                "registry (Redis) unreachable: serving on, with node-local vended ids and no persistence until it is back");
        }
    }

    /// Redis answered; returns whether it was down before (the outage ended).
    pub fn succeeded(&self) -> bool {
        crate::metrics::metrics().registry_up.set(1);
        let was_down = self.down.swap(false, Ordering::AcqRel);
        if was_down {
            self.resync.store(true, Ordering::Release);
            tracing::info!("registry (Redis) reachable");
        }
        was_down
    }

    /// Whether every record should be rewritten now (once per outage end).
    pub fn take_resync(&self) -> bool {
        self.resync.swap(false, Ordering::AcqRel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_one_down_and_one_resync() {
        let h = Health::starting_down();
        assert!(h.is_down());
        assert!(h.succeeded());
        assert!(!h.is_down());
        assert!(h.take_resync());
        assert!(!h.take_resync());
        h.failed(Op::Write, &"refused");
        h.failed(Op::Write, &"refused");
        assert!(h.is_down());
        assert!(h.succeeded());
        assert!(!h.succeeded());
        assert!(h.take_resync());
    }
}
