//! Per-session Lua limits: an instruction budget and a wall-clock limit per phase, a wall-clock cap per
//! mailbox item (all its phases together), and (set on the state) a heap limit.
//!
//! Terms: a *phase* is one unit of Lua work the session reports on (main.lua, one frame's messages, one
//! timer callback, one `lua` property run, one change-detection pass); a mailbox *item* is everything the
//! session does for one message (a frame and the pass after it, all timers due at once, …).
//!
//! Why both counts and clocks: the instruction count is deterministic and cheap, but it says nothing
//! about time spent in C (library functions charge their work with [`Budget::charge`]) and it restarts
//! with every phase, so a `lua` property that re-queues itself or a thousand due timers would each get a
//! full budget. The per-item cap bounds all of that together. Exhaustion is sticky: once spent, the hook
//! raises at every tick, the sandbox's `pcall`/`xpcall`/`coroutine.resume` re-raise (so a script cannot
//! swallow it), and every later phase of the same item fails at once.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{HookTriggers, Lua, VmState};

/// How often the hook runs, in VM instructions.
pub const HOOK_EVERY: u32 = 1000;

/// The message every budget failure raises inside Lua (the session reports it as `lua-timeout`).
pub const TIMEOUT_MESSAGE: &str = "lua-timeout: Lua budget exhausted";

/// Which limit ended a phase (for the `ui_lua_limit_hits` metric and the error text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spent {
    Instructions,
    PhaseTime,
    ItemTime,
}

impl Spent {
    pub fn metric_label(self) -> &'static str {
        match self {
            Spent::Instructions => "instructions",
            Spent::PhaseTime | Spent::ItemTime => "time",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Spent::Instructions => "Lua instruction budget exhausted",
            Spent::PhaseTime => "Lua time limit of the phase reached",
            Spent::ItemTime => "Lua time limit of the event reached",
        }
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(code: u8) -> Option<Spent> {
        match code {
            1 => Some(Spent::Instructions),
            2 => Some(Spent::PhaseTime),
            3 => Some(Spent::ItemTime),
            _ => None,
        }
    }
}

/// Time limits of a session's Lua.
#[derive(Clone, Copy, Debug)]
pub struct TimeLimits {
    /// Wall time one phase may take (`--lua-phase-time`).
    pub phase: Duration,
    /// Wall time one mailbox item may take, all its phases together (`--lua-item-time`).
    pub item: Duration,
}

impl Default for TimeLimits {
    fn default() -> Self {
        TimeLimits { phase: Duration::from_secs(1), item: Duration::from_secs(3) }
    }
}

const NEVER: u64 = u64::MAX;

/// The budget of the current phase and item. Owned by one session: only its thread runs its Lua, the
/// atomics only make it shareable with the hook closure.
#[derive(Debug)]
pub struct Budget {
    limit: i64,
    times: TimeLimits,
    remaining: AtomicI64,
    /// 0 while there is budget left, else a [`Spent`] code.
    spent: AtomicU8,
    anchor: Instant,
    /// Nanoseconds since `anchor`; [`NEVER`] outside an item.
    item_deadline: AtomicU64,
    phase_deadline: AtomicU64,
    /// When the running item next offers its worker to other sessions.
    next_slice: AtomicU64,
    in_item: AtomicBool,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        Budget::with_times(limit, TimeLimits::default())
    }

    pub fn with_times(limit: u64, times: TimeLimits) -> Self {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Budget {
            limit,
            times,
            remaining: AtomicI64::new(limit),
            spent: AtomicU8::new(0),
            anchor: Instant::now(),
            item_deadline: AtomicU64::new(NEVER),
            phase_deadline: AtomicU64::new(NEVER),
            next_slice: AtomicU64::new(NEVER),
            in_item: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.anchor.elapsed().as_nanos()).unwrap_or(NEVER - 1)
    }

    fn after(&self, now: u64, d: Duration) -> u64 {
        now.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(NEVER)).min(NEVER - 1)
    }

    /// A mailbox item starts: its wall-clock cap starts counting. Phases outside an item (a session
    /// built by `GET /`) are bounded by the phase limits alone.
    pub fn begin_item(&self) {
        let now = self.now();
        self.item_deadline.store(self.after(now, self.times.item), Ordering::Relaxed);
        self.next_slice.store(self.after(now, crate::runtime::SLICE), Ordering::Relaxed);
        self.in_item.store(true, Ordering::Relaxed);
    }

    pub fn end_item(&self) {
        self.item_deadline.store(NEVER, Ordering::Relaxed);
        self.next_slice.store(NEVER, Ordering::Relaxed);
        self.in_item.store(false, Ordering::Relaxed);
    }

    /// Starts a new phase with a full instruction budget and its own time limit, unless the item's cap
    /// is already spent: then the phase starts exhausted and runs nothing.
    pub fn begin_phase(&self) {
        let now = self.now();
        let item_deadline = self.item_deadline.load(Ordering::Relaxed);
        self.remaining.store(self.limit, Ordering::Relaxed);
        self.phase_deadline.store(self.after(now, self.times.phase).min(item_deadline), Ordering::Relaxed);
        let spent = if now >= item_deadline { Spent::ItemTime.code() } else { 0 };
        self.spent.store(spent, Ordering::Relaxed);
        if !self.in_item.load(Ordering::Relaxed) {
            // Work outside an item still leaves its worker to others when it runs long.
            self.next_slice.store(self.after(now, crate::runtime::SLICE), Ordering::Relaxed);
        }
    }

    pub fn exhausted(&self) -> bool {
        self.spent.load(Ordering::Relaxed) != 0
    }

    /// Which limit was hit, if any.
    pub fn spent(&self) -> Option<Spent> {
        Spent::from_code(self.spent.load(Ordering::Relaxed))
    }

    fn exhaust(&self, why: Spent) {
        let _ = self.spent.compare_exchange(0, why.code(), Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Charges `steps` units of work done outside the VM (a C function's loop, a pattern match) to the
    /// phase, as if they were instructions, and checks the clocks. Returns `false` once the budget is
    /// spent (sticky, like a hook tick): the caller must then raise [`TIMEOUT_MESSAGE`] instead of doing
    /// the work.
    pub fn charge(&self, steps: u64) -> bool {
        if self.exhausted() {
            return false;
        }
        let steps = i64::try_from(steps).unwrap_or(i64::MAX);
        let left = self.remaining.fetch_sub(steps, Ordering::Relaxed).saturating_sub(steps);
        if left <= 0 {
            self.exhaust(Spent::Instructions);
            return false;
        }
        self.check_clock()
    }

    /// Called by the hook every [`HOOK_EVERY`] instructions.
    fn tick(&self) -> bool {
        self.charge(u64::from(HOOK_EVERY))
    }

    /// The wall-clock side of a tick: the phase and item deadlines, and the slice after which a long
    /// item hands its worker's other sessions to another thread.
    fn check_clock(&self) -> bool {
        let now = self.now();
        if now >= self.phase_deadline.load(Ordering::Relaxed) {
            let item_over = now >= self.item_deadline.load(Ordering::Relaxed);
            self.exhaust(if item_over { Spent::ItemTime } else { Spent::PhaseTime });
            return false;
        }
        if now >= self.next_slice.load(Ordering::Relaxed) {
            self.next_slice.store(self.after(now, crate::runtime::SLICE), Ordering::Relaxed);
            crate::runtime::escape_worker();
        }
        true
    }

    /// The error a budget failure raises inside Lua.
    pub fn timeout_error() -> mlua::Error {
        mlua::Error::runtime(TIMEOUT_MESSAGE)
    }
}

/// Installs the counting hook for every thread of the state: the main thread and every coroutine,
/// including those created later (a per-thread hook would leave coroutines unbudgeted).
pub fn install_budget(lua: &Lua, budget: Arc<Budget>) -> mlua::Result<()> {
    lua.set_global_hook(HookTriggers::new().every_nth_instruction(HOOK_EVERY), move |_lua, _debug| {
        if budget.tick() {
            Ok(VmState::Continue)
        } else {
            Err(Budget::timeout_error())
        }
    })
}

/// Replaces `pcall`, `xpcall` and `coroutine.resume` with versions that re-raise once the budget is
/// spent: the protected call returns normally to Lua only while there is budget left, so
/// `while true do pcall(spin) end` ends at the first exhaustion and nothing after it runs.
/// (Like any Rust function, the wrappers are not yieldable: a coroutine cannot yield from inside a
/// `pcall`. Apps do not need that; the docs say so.)
pub fn install_sticky_protection(lua: &Lua, budget: Arc<Budget>) -> mlua::Result<()> {
    let g = lua.globals();
    for name in ["pcall", "xpcall"] {
        let wrapped = rethrowing(lua, g.get(name)?, budget.clone())?;
        g.set(name, wrapped)?;
    }
    let coroutine: mlua::Table = g.get("coroutine")?;
    coroutine.set("resume", rethrowing(lua, coroutine.get("resume")?, budget)?)?;
    Ok(())
}

/// `raw` as a function that raises [`TIMEOUT_MESSAGE`] instead of returning once the budget is spent.
fn rethrowing(lua: &Lua, raw: mlua::Function, budget: Arc<Budget>) -> mlua::Result<mlua::Function> {
    lua.create_function(move |_, args: mlua::MultiValue| {
        let result = raw.call::<mlua::MultiValue>(args)?;
        if budget.exhausted() {
            return Err(Budget::timeout_error());
        }
        Ok(result)
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
        assert_eq!(b.spent(), Some(Spent::Instructions));
        assert!(!b.tick());
        b.begin_phase();
        assert!(!b.exhausted());
        assert!(b.tick());
    }

    #[test]
    fn the_phase_clock_ends_a_phase_and_the_item_clock_ends_the_item() {
        let times = TimeLimits { phase: Duration::from_millis(20), item: Duration::from_millis(50) };
        let b = Budget::with_times(u64::MAX, times);
        b.begin_item();
        b.begin_phase();
        std::thread::sleep(Duration::from_millis(25));
        assert!(!b.tick());
        assert_eq!(b.spent(), Some(Spent::PhaseTime));
        b.begin_phase();
        assert!(b.tick(), "a new phase has its own time");
        std::thread::sleep(Duration::from_millis(30));
        assert!(!b.tick());
        assert_eq!(b.spent(), Some(Spent::ItemTime));
        b.begin_phase();
        assert!(b.exhausted(), "a phase begun after the item's cap starts spent");
        b.end_item();
        b.begin_phase();
        assert!(!b.exhausted(), "outside an item only the phase clock counts");
    }

    fn limited(limit: u64) -> (Lua, Arc<Budget>) {
        let lua = Lua::new();
        let budget = Arc::new(Budget::new(limit));
        install_budget(&lua, budget.clone()).unwrap();
        install_sticky_protection(&lua, budget.clone()).unwrap();
        budget.begin_phase();
        (lua, budget)
    }

    #[test]
    fn coroutines_are_budgeted() {
        let (lua, budget) = limited(1_000_000);
        let r = lua.load("coroutine.wrap(function() while true do end end)()").exec();
        assert!(r.is_err());
        assert!(budget.exhausted());
    }

    #[test]
    fn pcall_cannot_swallow_exhaustion_and_nothing_after_it_runs() {
        let (lua, budget) = limited(1_000_000);
        let r = lua.load("done = 0 while true do pcall(function() while true do end end) done = done + 1 end").exec();
        assert!(r.is_err());
        assert!(budget.exhausted());
        assert_eq!(lua.globals().get::<i64>("done").unwrap(), 0);
        budget.begin_phase();
        let r = lua
            .load("x = 0 for i = 1, 10 do xpcall(function() while true do end end, function(e) return e end) end x = 1")
            .exec();
        assert!(r.is_err());
        assert_eq!(lua.globals().get::<i64>("x").unwrap(), 0);
        budget.begin_phase();
        let r =
            lua.load("local co = coroutine.create(function() while true do end end) coroutine.resume(co) y = 1").exec();
        assert!(r.is_err());
        assert!(lua.globals().get::<Option<i64>>("y").unwrap().is_none());
    }

    #[test]
    fn pcall_still_works_within_the_budget() {
        let (lua, _budget) = limited(1_000_000);
        let (ok, msg): (bool, String) = lua.load("return pcall(error, 'boom', 0)").eval().unwrap();
        assert!(!ok);
        assert_eq!(msg, "boom");
        let (ok, v): (bool, i64) = lua.load("return xpcall(function(a) return a + 1 end, print, 41)").eval().unwrap();
        assert!(ok);
        assert_eq!(v, 42);
    }
}
