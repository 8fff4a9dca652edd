//! Per-session Lua limits: an instruction budget per phase and (set on the state) a heap limit.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use mlua::{HookTriggers, Lua, VmState};
use std::sync::Arc;

/// How often the hook runs, in VM instructions.
pub const HOOK_EVERY: u32 = 1000;

/// The instruction budget of the current phase (one inbound batch, one timer callback, one pass…).
///
/// Exhaustion is sticky for the phase: every later hook tick raises again, so `pcall` cannot swallow
/// it, and the next phase starts with a full budget.
#[derive(Debug)]
pub struct Budget {
    limit: i64,
    remaining: AtomicI64,
    exhausted: AtomicBool,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Budget { limit, remaining: AtomicI64::new(limit), exhausted: AtomicBool::new(false) }
    }

    /// Starts a new phase with a full budget.
    pub fn begin_phase(&self) {
        self.remaining.store(self.limit, Ordering::Relaxed);
        self.exhausted.store(false, Ordering::Relaxed);
    }

    pub fn exhausted(&self) -> bool {
        self.exhausted.load(Ordering::Relaxed)
    }

    /// Charges `steps` units of work done outside the VM (a C function's loop, a pattern match) to the
    /// phase, as if they were instructions. Returns `false` once the budget is spent (sticky, like a
    /// hook tick): the caller must then raise `lua-timeout` instead of doing the work.
    pub fn charge(&self, steps: u64) -> bool {
        if self.exhausted() {
            return false;
        }
        let steps = i64::try_from(steps).unwrap_or(i64::MAX);
        let left = self.remaining.fetch_sub(steps, Ordering::Relaxed).saturating_sub(steps);
        if left <= 0 {
            self.exhausted.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Called by the hook every [`HOOK_EVERY`] instructions.
    fn tick(&self) -> bool {
        if self.exhausted() {
            return false;
        }
        let left = self.remaining.fetch_sub(i64::from(HOOK_EVERY), Ordering::Relaxed) - i64::from(HOOK_EVERY);
        if left <= 0 {
            self.exhausted.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }
}

/// Installs the counting hook on a state (it also covers coroutines created later).
pub fn install_budget(lua: &Lua, budget: Arc<Budget>) -> mlua::Result<()> {
    lua.set_hook(HookTriggers::new().every_nth_instruction(HOOK_EVERY), move |_lua, _debug| {
        if budget.tick() {
            Ok(VmState::Continue)
        } else {
            Err(mlua::Error::runtime("lua-timeout: instruction budget exhausted"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_sticky_until_the_next_phase() {
        let b = Budget::new(2500);
        assert!(b.tick());
        assert!(b.tick());
        assert!(!b.tick());
        assert!(b.exhausted());
        assert!(!b.tick());
        b.begin_phase();
        assert!(!b.exhausted());
        assert!(b.tick());
    }
}
