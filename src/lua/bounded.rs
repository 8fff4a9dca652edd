//! Library functions with bounded cost (docs/lua-limits.md; security review C1, H1, H2).
//!
//! The instruction hook only fires between VM instructions, so a C library function runs as long as
//! its input asks: a backtracking pattern for ~10²² steps, `table.move({},1,3e8,1,{})` for 3·10⁸
//! iterations. Here every such function of the sandbox gets a cost charged to the phase's
//! [`Budget`]:
//! - `string.find/match/gmatch/gsub` are replaced by C functions written in Rust over the
//!   step-counted matcher in [`super::pattern`], with Lua 5.4's argument handling, results and error
//!   messages (they follow `lstrlib.c`'s structure: arguments through `luaL_check*`, output through a
//!   `luaL_Buffer`, errors through `lua_error`);
//! - the rest (`table.move/concat/sort/insert/remove/unpack/pack`, `os.date`, `string.rep/format/
//!   upper/lower/reverse/sub/byte/char/pack/unpack/packsize`, `utf8.*`) keep the stock C function
//!   behind a wrapper (a C closure: budget, stock function, [`Charge`]) that charges the work before
//!   or after calling it, so results and error messages stay the stock function's. A step is one
//!   element moved or visited, one value, or [`BYTES_PER_STEP`] bytes produced or scanned.
//!
//! When the budget is spent the call raises `lua-timeout` (as the hook does) and the phase ends with
//! that code; `pcall` cannot hide it, since the phase outcome reads the sticky `Budget::exhausted`.
//!
//! Why raw C functions rather than `Lua::create_function` or Lua wrappers: converting four arguments
//! to `mlua` values costs several times a whole typical match, a pattern error must reach scripts as
//! the plain string stock Lua raises, and every session pays for Lua function prototypes in its heap
//! (Lua wrappers cost ~11 KB per session; these C closures ~2 KB). The price is `unsafe` code with one rule, kept throughout: `lua_error`
//! (and any Lua API call that may raise: pushing a string, calling a replacement function) unwinds by
//! `longjmp`, so no value with a destructor may be alive in these functions when they call the Lua
//! API. Matching state ([`Meter`], [`Matcher`], [`Capture`]) owns nothing; messages are formatted into
//! a stack buffer; a panic in the matcher is caught and raised as a Lua error.

use std::ffi::{c_char, c_int};
use std::fmt::Write as _;
use std::sync::Arc;

use mlua::{ffi, Lua};

use super::limits::Budget;
use super::pattern::{self, Capture, Matcher, Meter, PatternError};

/// Bytes produced or scanned that cost one step (about one VM instruction's worth of copying).
const BYTES_PER_STEP: usize = 16;

/// What a wrapper charges around the stock function it calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
enum Charge {
    /// Result bytes (`format`, `upper`, `lower`, `reverse`, `sub`).
    Produced,
    /// One step per value returned (`byte`, `table.unpack`, `utf8.codepoint`).
    Results,
    /// One step per argument (`char`, `table.pack`, `utf8.char`).
    Args,
    /// Bytes of the first argument, a format or a string scanned whole (`packsize`, `utf8.len`).
    First,
    /// `os.date`: 8 steps per format byte (one `strftime` per conversion).
    DateFormat,
    /// `string.pack`: format bytes and arguments, then result bytes.
    Pack,
    /// `string.unpack`: format bytes, then values.
    Unpack,
    /// `string.rep`: copies / 8 and result bytes, after copying; copies of nothing (n / 2) before.
    Rep,
    /// `table.move`: `e - f + 1` elements, before moving.
    Move,
    /// `table.concat`: elements and result bytes, after.
    Concat,
    /// `table.sort`: n·⌈log₂ n⌉, before.
    Sort,
    /// `table.insert` with a position: elements shifted up, before.
    Insert,
    /// `table.remove` with a position: elements shifted down, before.
    Remove,
    /// `utf8.offset`: bytes walked, after.
    Offset,
    /// `utf8.codes`: wraps the iterator it returns in a [`Charge::CodesStep`].
    Codes,
    /// One `utf8.codes` iteration: bytes skipped, after.
    CodesStep,
}

const CHARGES: [Charge; 16] = [
    Charge::Produced,
    Charge::Results,
    Charge::Args,
    Charge::First,
    Charge::DateFormat,
    Charge::Pack,
    Charge::Unpack,
    Charge::Rep,
    Charge::Move,
    Charge::Concat,
    Charge::Sort,
    Charge::Insert,
    Charge::Remove,
    Charge::Offset,
    Charge::Codes,
    Charge::CodesStep,
];

/// The wrapped library functions.
const WRAPPED: &[(&std::ffi::CStr, &std::ffi::CStr, Charge)] = &[
    (c"string", c"rep", Charge::Rep),
    (c"string", c"format", Charge::Produced),
    (c"string", c"upper", Charge::Produced),
    (c"string", c"lower", Charge::Produced),
    (c"string", c"reverse", Charge::Produced),
    (c"string", c"sub", Charge::Produced),
    (c"string", c"byte", Charge::Results),
    (c"string", c"char", Charge::Args),
    (c"string", c"pack", Charge::Pack),
    (c"string", c"unpack", Charge::Unpack),
    (c"string", c"packsize", Charge::First),
    (c"table", c"move", Charge::Move),
    (c"table", c"concat", Charge::Concat),
    (c"table", c"sort", Charge::Sort),
    (c"table", c"insert", Charge::Insert),
    (c"table", c"remove", Charge::Remove),
    (c"table", c"unpack", Charge::Results),
    (c"table", c"pack", Charge::Args),
    (c"utf8", c"char", Charge::Args),
    (c"utf8", c"codepoint", Charge::Results),
    (c"utf8", c"len", Charge::First),
    (c"utf8", c"offset", Charge::Offset),
    (c"utf8", c"codes", Charge::Codes),
    (c"os", c"date", Charge::DateFormat),
];

/// Installs the bounded functions into the state's `string`, `table`, `utf8` and `os` tables (the
/// string metatable's `__index` is the same `string` table, so `("x"):find(...)` is covered too), and
/// points the 5.1 aliases `string.gfind` and `unpack` (lua/compat.lua) at them.
pub fn install(lua: &Lua, budget: Arc<Budget>) -> mlua::Result<()> {
    // SAFETY: the closure only reads and sets fields of the library tables and creates closures;
    // `exec_raw` runs it protected, so an allocation failure is an ordinary error.
    unsafe {
        lua.exec_raw::<()>((), move |l| {
            push_budget(l, budget);
            let ud = ffi::lua_gettop(l);
            ffi::lua_rawgeti(l, ffi::LUA_REGISTRYINDEX, ffi::LUA_RIDX_GLOBALS);
            let globals = ffi::lua_gettop(l);
            // Patterns.
            ffi::lua_getfield(l, globals, c"string".as_ptr());
            ffi::lua_getfield(l, -1, c"gmatch".as_ptr());
            let stock_gmatch = ffi::lua_topointer(l, -1);
            ffi::lua_pop(l, 1);
            for (name, f) in [
                (c"find", raw_find as ffi::lua_CFunction),
                (c"match", raw_match),
                (c"gmatch", raw_gmatch),
                (c"gsub", raw_gsub),
            ] {
                ffi::lua_pushvalue(l, ud);
                ffi::lua_pushcclosure(l, f, 1);
                ffi::lua_setfield(l, -2, name.as_ptr());
            }
            ffi::lua_getfield(l, -1, c"gfind".as_ptr());
            let gfind_is_stock = ffi::lua_topointer(l, -1) == stock_gmatch;
            ffi::lua_pop(l, 1);
            if gfind_is_stock {
                ffi::lua_getfield(l, -1, c"gmatch".as_ptr());
                ffi::lua_setfield(l, -2, c"gfind".as_ptr());
            }
            ffi::lua_pop(l, 1);
            // The rest.
            ffi::lua_getfield(l, globals, c"table".as_ptr());
            ffi::lua_getfield(l, -1, c"unpack".as_ptr());
            let stock_unpack = ffi::lua_topointer(l, -1);
            ffi::lua_pop(l, 2);
            for (lib, name, charge) in WRAPPED {
                if ffi::lua_getfield(l, globals, lib.as_ptr()) != ffi::LUA_TTABLE {
                    ffi::lua_pop(l, 1);
                    continue;
                }
                if ffi::lua_getfield(l, -1, name.as_ptr()) == ffi::LUA_TFUNCTION {
                    push_wrapper(l, ud, *charge);
                    ffi::lua_setfield(l, -2, name.as_ptr());
                } else {
                    ffi::lua_pop(l, 1);
                }
                ffi::lua_pop(l, 1);
            }
            ffi::lua_getfield(l, globals, c"unpack".as_ptr());
            let unpack_is_stock = ffi::lua_topointer(l, -1) == stock_unpack;
            ffi::lua_pop(l, 1);
            if unpack_is_stock {
                ffi::lua_getfield(l, globals, c"table".as_ptr());
                ffi::lua_getfield(l, -1, c"unpack".as_ptr());
                ffi::lua_setfield(l, globals, c"unpack".as_ptr());
                ffi::lua_pop(l, 1);
            }
            ffi::lua_settop(l, ud - 1);
        })
    }
}

/// Replaces the function on top of the stack by a wrapper around it (upvalues: budget, function,
/// charge).
unsafe fn push_wrapper(l: *mut ffi::lua_State, ud: c_int, charge: Charge) {
    ffi::lua_pushvalue(l, ud);
    ffi::lua_insert(l, -2);
    ffi::lua_pushinteger(l, charge as ffi::lua_Integer);
    ffi::lua_pushcclosure(l, wrapped, 3);
}

// ------------------------------------------------------------------------------------------------
// The budget as an upvalue: a userdata holding `Arc::into_raw`, released by its `__gc`.

/// Pushes a userdata that keeps `budget` alive until the state collects it (at the latest when it
/// closes: created before any script runs, it is finalized after every script-made finalizer).
unsafe fn push_budget(l: *mut ffi::lua_State, budget: Arc<Budget>) {
    // Into a raw pointer first: if the allocation below fails (it jumps), nothing with a destructor
    // is skipped; the count just leaks.
    let raw = Arc::into_raw(budget);
    let slot = ffi::lua_newuserdatauv(l, std::mem::size_of::<*const Budget>(), 0) as *mut *const Budget;
    slot.write(raw);
    ffi::lua_createtable(l, 0, 1);
    ffi::lua_pushcfunction(l, release_budget);
    ffi::lua_setfield(l, -2, c"__gc".as_ptr());
    ffi::lua_setmetatable(l, -2);
}

unsafe extern "C-unwind" fn release_budget(l: *mut ffi::lua_State) -> c_int {
    let slot = ffi::lua_touserdata(l, 1) as *mut *const Budget;
    if !slot.is_null() && !(*slot).is_null() {
        drop(Arc::from_raw(*slot));
        *slot = std::ptr::null();
    }
    0
}

/// The budget behind upvalue `index` of the running C function.
unsafe fn budget<'a>(l: *mut ffi::lua_State, index: c_int) -> Option<&'a Budget> {
    let slot = ffi::lua_touserdata(l, ffi::lua_upvalueindex(index)) as *const *const Budget;
    if slot.is_null() || (*slot).is_null() {
        None
    } else {
        Some(&**slot)
    }
}

// ------------------------------------------------------------------------------------------------
// Errors.

/// A message formatted without the heap, so nothing is leaked when `lua_error` jumps away.
struct Message {
    bytes: [u8; 160],
    len: usize,
}

impl std::fmt::Write for Message {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Raises `msg` with the caller's position, as `luaL_error` does.
unsafe fn raise(l: *mut ffi::lua_State, msg: &dyn std::fmt::Display) -> ! {
    let mut m = Message { bytes: [0; 160], len: 0 };
    let _ = write!(m, "{msg}");
    // The error unwinds this call anyway; dropping its stack first leaves room for the two values
    // pushed below even when a wrapped function filled it with results (e.g. `table.unpack` charged
    // after the call).
    ffi::lua_settop(l, 0);
    ffi::luaL_where(l, 1);
    ffi::lua_pushlstring(l, m.bytes.as_ptr() as *const c_char, m.len);
    ffi::lua_concat(l, 2);
    ffi::lua_error(l)
}

unsafe fn raise_pattern(l: *mut ffi::lua_State, e: PatternError) -> ! {
    if e == PatternError::Timeout {
        crate::metrics::metrics().lua_limit_hit("library");
    }
    raise(l, &e)
}

/// Runs matcher code, turning its errors (and, defensively, a panic) into Lua errors.
unsafe fn guarded<T>(l: *mut ffi::lua_State, f: impl FnOnce() -> Result<T, PatternError>) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => raise_pattern(l, e),
        Err(payload) => {
            drop(payload);
            raise(l, &"internal error in the pattern matcher")
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Arguments and results.

/// `luaL_checklstring` as a byte slice (valid while the value stays on the stack).
unsafe fn check_bytes<'a>(l: *mut ffi::lua_State, arg: c_int) -> &'a [u8] {
    let mut len = 0usize;
    let p = ffi::luaL_checklstring(l, arg, &mut len);
    std::slice::from_raw_parts(p as *const u8, len)
}

/// Bytes of a string value on the stack.
unsafe fn bytes_at<'a>(l: *mut ffi::lua_State, idx: c_int) -> &'a [u8] {
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, idx, &mut len);
    if p.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(p as *const u8, len)
    }
}

/// The 0-based start offset from the `init` argument at `arg` (may be past the end).
unsafe fn init_offset(l: *mut ffi::lua_State, arg: c_int, len: usize) -> usize {
    pattern::start_position(ffi::luaL_optinteger(l, arg, 1), len) - 1
}

unsafe fn push_capture(l: *mut ffi::lua_State, src: &[u8], c: Capture) {
    match c {
        Capture::Bytes(r) => {
            let piece = &src[r];
            ffi::lua_pushlstring(l, piece.as_ptr() as *const c_char, piece.len());
        }
        Capture::Position(p) => ffi::lua_pushinteger(l, p as ffi::lua_Integer),
    }
}

/// Pushes the values of a match `s..e` (Lua's `push_captures`); returns how many.
unsafe fn push_captures(
    l: *mut ffi::lua_State,
    m: &Matcher<'_, '_, '_>,
    src: &[u8],
    s: usize,
    e: usize,
    whole: bool,
) -> c_int {
    let n = m.capture_count(whole);
    ffi::luaL_checkstack(l, n as c_int, c"too many captures".as_ptr());
    for i in 0..n {
        let c = guarded(l, || m.capture(i, s, e));
        push_capture(l, src, c);
    }
    n as c_int
}

// ------------------------------------------------------------------------------------------------
// Wrappers around stock functions.

/// Charges `steps` to the budget of upvalue 1, raising `lua-timeout` once it is spent.
unsafe fn charge(l: *mut ffi::lua_State, steps: u64) {
    if let Some(b) = budget(l, 1) {
        if !b.charge(steps) {
            raise_pattern(l, PatternError::Timeout);
        }
    }
}

/// Argument `arg` as an integer, if it is one (or converts to one), without raising.
unsafe fn integer_arg(l: *mut ffi::lua_State, arg: c_int) -> Option<i64> {
    let mut ok = 0;
    let v = ffi::lua_tointegerx(l, arg, &mut ok);
    (ok != 0).then_some(v)
}

/// Byte length of a string or number at `idx` (what the C side converts); 0 for anything else.
unsafe fn byte_len(l: *mut ffi::lua_State, idx: c_int) -> u64 {
    match ffi::lua_type(l, idx) {
        ffi::LUA_TSTRING | ffi::LUA_TNUMBER => bytes_at(l, idx).len() as u64,
        _ => 0,
    }
}

/// `#t` for a table argument, as the stock table functions read it (`__len` honoured).
unsafe fn table_len(l: *mut ffi::lua_State, arg: c_int) -> Option<i64> {
    if ffi::lua_type(l, arg) != ffi::LUA_TTABLE {
        return None;
    }
    let n = ffi::luaL_len(l, arg);
    Some(n)
}

fn steps(n: i128) -> u64 {
    u64::try_from(n.max(0)).unwrap_or(u64::MAX)
}

fn bytes(n: u64) -> u64 {
    n / BYTES_PER_STEP as u64
}

/// The wrapper: charges what can be known before the call, calls the stock function (upvalue 2)
/// with all arguments, charges what can be known after, returns its results.
unsafe extern "C-unwind" fn wrapped(l: *mut ffi::lua_State) -> c_int {
    let kind = CHARGES.get(ffi::lua_tointeger(l, ffi::lua_upvalueindex(3)) as usize).copied();
    let Some(kind) = kind else { return 0 };
    let nargs = ffi::lua_gettop(l);
    // Before: charge, and remember what the after-charge needs (the arguments are gone by then).
    let mut later: i128 = 0;
    // utf8 walks: where the walk starts (if known) and the subject's length.
    let mut walk: (Option<i128>, u64) = (None, 0);
    let pre: u64 = match kind {
        Charge::Args => nargs as u64,
        Charge::First => bytes(byte_len(l, 1)),
        Charge::DateFormat => byte_len(l, 1) * 8,
        Charge::Pack => bytes(byte_len(l, 1)) + nargs as u64,
        Charge::Unpack => bytes(byte_len(l, 1)),
        // A copy of nothing is a bare loop turn (about half an instruction's worth); copies of
        // bytes cost ~1/8 step each plus the bytes (they are bounded by the heap anyway).
        Charge::Rep => match integer_arg(l, 2) {
            Some(n) if n > 1 => {
                if byte_len(l, 1) + byte_len(l, 3) == 0 {
                    steps(i128::from(n) / 2)
                } else {
                    later = i128::from(n) / 8;
                    0
                }
            }
            _ => 0,
        },
        // Ranges stock Lua refuses ("too many elements to move", "destination wrap around") are left
        // to it: it fails before moving anything.
        Charge::Move => match (integer_arg(l, 2), integer_arg(l, 3), integer_arg(l, 4)) {
            (Some(f), Some(e), Some(t)) if e >= f => {
                let n = i128::from(e) - i128::from(f) + 1;
                let max = i128::from(i64::MAX);
                if n > max || i128::from(t) > max - n + 1 {
                    0
                } else {
                    steps(n)
                }
            }
            _ => 0,
        },
        Charge::Concat => {
            if let Some(len) = table_len(l, 1) {
                let i = if ffi::lua_isnoneornil(l, 3) != 0 { Some(1) } else { integer_arg(l, 3) };
                let j = if ffi::lua_isnoneornil(l, 4) != 0 { Some(len) } else { integer_arg(l, 4) };
                if let (Some(i), Some(j)) = (i, j) {
                    later = (i128::from(j) - i128::from(i) + 1).max(0);
                }
            }
            0
        }
        Charge::Sort => match table_len(l, 1) {
            Some(n) if n > 1 => steps(i128::from(n) * i128::from(64 - (n as u64).leading_zeros())),
            _ => 0,
        },
        Charge::Insert if nargs == 3 => match (table_len(l, 1), integer_arg(l, 2)) {
            (Some(n), Some(pos)) if n >= pos => steps(i128::from(n) - i128::from(pos) + 1),
            _ => 0,
        },
        Charge::Remove if nargs >= 2 => match (table_len(l, 1), integer_arg(l, 2)) {
            (Some(n), Some(pos)) if n > pos => steps(i128::from(n) - i128::from(pos)),
            _ => 0,
        },
        Charge::Offset => {
            let len = byte_len(l, 1);
            let from = match integer_arg(l, 3) {
                Some(i) if i < 0 => Some(len as i128 + i128::from(i) + 1),
                Some(i) => Some(i128::from(i)),
                None if ffi::lua_isnoneornil(l, 3) != 0 => match integer_arg(l, 2) {
                    Some(n) if n >= 0 => Some(1),
                    Some(_) => Some(len as i128 + 1),
                    None => None,
                },
                None => None,
            };
            walk = (from, len);
            0
        }
        Charge::CodesStep => {
            walk = (integer_arg(l, 2).map(i128::from), byte_len(l, 1));
            0
        }
        _ => 0,
    };
    charge(l, pre);
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(2));
    ffi::lua_insert(l, 1);
    ffi::lua_call(l, nargs, ffi::LUA_MULTRET);
    let nres = ffi::lua_gettop(l);
    let post: u64 = match kind {
        Charge::Produced | Charge::Pack => bytes(byte_len(l, 1)),
        Charge::Results | Charge::Unpack => nres as u64,
        Charge::Rep if later > 0 => steps(later) + bytes(byte_len(l, 1)),
        Charge::Concat => steps(later) + bytes(byte_len(l, 1)),
        // Bytes walked from the start to the result; the whole subject when either is unknown.
        Charge::Offset | Charge::CodesStep => match (walk.0, integer_arg(l, 1)) {
            (Some(from), Some(p)) => bytes(steps((i128::from(p) - from).abs())),
            _ => bytes(walk.1),
        },
        Charge::Codes => {
            // (iterator, s, 0): the iterator gets a wrapper of its own. After a call with
            // LUA_MULTRET no free slot is guaranteed, hence the check.
            if nres >= 1 && ffi::lua_type(l, 1) == ffi::LUA_TFUNCTION {
                ffi::luaL_checkstack(l, 4, c"utf8.codes".as_ptr());
                ffi::lua_pushvalue(l, 1);
                push_wrapper(l, ffi::lua_upvalueindex(1), Charge::CodesStep);
                ffi::lua_replace(l, 1);
            }
            0
        }
        _ => 0,
    };
    charge(l, post);
    nres
}

// ------------------------------------------------------------------------------------------------
// find, match, gmatch, gsub.

unsafe extern "C-unwind" fn raw_find(l: *mut ffi::lua_State) -> c_int {
    find_aux(l, true)
}

unsafe extern "C-unwind" fn raw_match(l: *mut ffi::lua_State) -> c_int {
    find_aux(l, false)
}

/// `string.find` (`find`) or `string.match`: an `init` past the end finds nothing; `find` with
/// `plain` or a pattern without special characters does a plain search.
unsafe fn find_aux(l: *mut ffi::lua_State, find: bool) -> c_int {
    let src = check_bytes(l, 1);
    let pat = check_bytes(l, 2);
    let init = init_offset(l, 3, src.len());
    if init > src.len() {
        ffi::lua_pushnil(l);
        return 1;
    }
    let mut meter = Meter::new(budget(l, 1));
    if find && (ffi::lua_toboolean(l, 4) != 0 || !pattern::has_specials(pat)) {
        let meter = &mut meter;
        let found = guarded(l, move || {
            let r = pattern::plain_find(src, pat, init, meter)?;
            meter.flush()?;
            Ok(r)
        });
        return match found {
            Some(i) => {
                ffi::lua_pushinteger(l, i as ffi::lua_Integer + 1);
                ffi::lua_pushinteger(l, (i + pat.len()) as ffi::lua_Integer);
                2
            }
            None => {
                ffi::lua_pushnil(l);
                1
            }
        };
    }
    let meter = &mut meter;
    let (found, mut m) = guarded(l, move || pattern::search(src, pat, init, meter));
    guarded(l, || m.meter().flush());
    match found {
        Some((s, e)) if find => {
            ffi::lua_pushinteger(l, s as ffi::lua_Integer + 1);
            ffi::lua_pushinteger(l, e as ffi::lua_Integer);
            push_captures(l, &m, src, s, e, false) + 2
        }
        Some((s, e)) => push_captures(l, &m, src, s, e, true),
        None => {
            ffi::lua_pushnil(l);
            1
        }
    }
}

/// `string.gmatch(s, pattern [, init])`: an iterator over the matches; an empty match right where the
/// previous match ended is skipped (Lua 5.4's rule), and `^` is an ordinary character here. The
/// iterator's upvalues: subject, pattern, budget, next position, end of the last match (or -1).
unsafe extern "C-unwind" fn raw_gmatch(l: *mut ffi::lua_State) -> c_int {
    let len = check_bytes(l, 1).len();
    check_bytes(l, 2);
    let init = init_offset(l, 3, len).min(len + 1);
    ffi::lua_settop(l, 2);
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
    ffi::lua_pushinteger(l, init as ffi::lua_Integer);
    ffi::lua_pushinteger(l, -1);
    ffi::lua_pushcclosure(l, gmatch_step, 5);
    1
}

unsafe extern "C-unwind" fn gmatch_step(l: *mut ffi::lua_State) -> c_int {
    let src = bytes_at(l, ffi::lua_upvalueindex(1));
    let pat = bytes_at(l, ffi::lua_upvalueindex(2));
    let pos = ffi::lua_tointeger(l, ffi::lua_upvalueindex(4)) as usize;
    let last = usize::try_from(ffi::lua_tointeger(l, ffi::lua_upvalueindex(5))).ok();
    let mut meter = Meter::new(budget(l, 3));
    let mut m = Matcher::new(src, pat, &mut meter);
    let found = guarded(l, || {
        let mut start = pos;
        while start <= src.len() {
            m.reset();
            match m.do_match(start, 0)? {
                Some(e) if Some(e) != last => return Ok(Some((start, e))),
                _ => start += 1,
            }
        }
        Ok(None)
    });
    guarded(l, || m.meter().flush());
    match found {
        Some((s, e)) => {
            ffi::lua_pushinteger(l, e as ffi::lua_Integer);
            ffi::lua_pushvalue(l, -1);
            ffi::lua_replace(l, ffi::lua_upvalueindex(4));
            ffi::lua_replace(l, ffi::lua_upvalueindex(5));
            push_captures(l, &m, src, s, e, true)
        }
        None => 0,
    }
}

/// `string.gsub(s, pattern, repl [, n])`: the new string (the original when nothing changed) and the
/// number of matches replaced.
unsafe extern "C-unwind" fn raw_gsub(l: *mut ffi::lua_State) -> c_int {
    let src = check_bytes(l, 1);
    let pat = check_bytes(l, 2);
    let tr = ffi::lua_type(l, 3);
    let max = ffi::luaL_optinteger(l, 4, src.len() as ffi::lua_Integer + 1);
    if !matches!(tr, ffi::LUA_TNUMBER | ffi::LUA_TSTRING | ffi::LUA_TFUNCTION | ffi::LUA_TTABLE) {
        let got = std::ffi::CStr::from_ptr(ffi::luaL_typename(l, 3)).to_str().unwrap_or("?");
        raise(l, &format_args!("bad argument #3 to 'gsub' (string/function/table expected, got {got})"));
    }
    let (anchor, pat) = match pat.first() {
        Some(b'^') => (true, &pat[1..]),
        _ => (false, pat),
    };
    let mut meter = Meter::new(budget(l, 1));
    let mut m = Matcher::new(src, pat, &mut meter);
    // SAFETY: a luaL_Buffer is plain data that luaL_buffinit initializes; it is never moved after.
    let mut b: ffi::luaL_Buffer = std::mem::zeroed();
    let b = &mut b;
    ffi::luaL_buffinit(l, b);
    let (mut pos, mut last, mut n, mut changed) = (0usize, None, 0 as ffi::lua_Integer, false);
    while n < max {
        m.reset();
        let e = guarded(l, || m.do_match(pos, 0));
        match e {
            Some(e) if Some(e) != last => {
                n += 1;
                changed |= add_value(l, &mut m, b, src, pos, e, tr);
                pos = e;
                last = Some(e);
            }
            _ if pos < src.len() => {
                ffi::luaL_addchar(b, src[pos] as c_char);
                pos += 1;
            }
            _ => break,
        }
        if anchor {
            break;
        }
    }
    if changed {
        add_bytes(l, &mut m, b, &src[pos..]);
        guarded(l, || m.meter().flush());
        ffi::luaL_pushresult(b);
    } else {
        guarded(l, || m.meter().flush());
        ffi::lua_pushvalue(l, 1);
    }
    ffi::lua_pushinteger(l, n);
    2
}

/// Appends output bytes, one step per [`BYTES_PER_STEP`].
unsafe fn add_bytes(l: *mut ffi::lua_State, m: &mut Matcher<'_, '_, '_>, b: &mut ffi::luaL_Buffer, bytes: &[u8]) {
    guarded(l, || m.meter().step((bytes.len() / BYTES_PER_STEP) as u64));
    ffi::luaL_addlstring(b, bytes.as_ptr() as *const c_char, bytes.len());
}

/// Appends the replacement of the match `s..e`; `false` when the original text was kept (a table or
/// function gave `nil` or `false`).
#[allow(clippy::too_many_arguments)]
unsafe fn add_value(
    l: *mut ffi::lua_State,
    m: &mut Matcher<'_, '_, '_>,
    b: &mut ffi::luaL_Buffer,
    src: &[u8],
    s: usize,
    e: usize,
    tr: c_int,
) -> bool {
    match tr {
        ffi::LUA_TFUNCTION => {
            ffi::lua_pushvalue(l, 3);
            let n = push_captures(l, m, src, s, e, true);
            ffi::lua_call(l, n, 1);
        }
        ffi::LUA_TTABLE => {
            let key = guarded(l, || m.capture(0, s, e));
            push_capture(l, src, key);
            ffi::lua_gettable(l, 3);
        }
        _ => {
            add_text(l, m, b, src, s, e);
            return true;
        }
    }
    if ffi::lua_toboolean(l, -1) == 0 {
        ffi::lua_pop(l, 1);
        add_bytes(l, m, b, &src[s..e]);
        false
    } else if ffi::lua_isstring(l, -1) == 0 {
        let got = std::ffi::CStr::from_ptr(ffi::luaL_typename(l, -1)).to_str().unwrap_or("?");
        raise(l, &format_args!("invalid replacement value (a {got})"))
    } else {
        let len = bytes_at(l, -1).len();
        guarded(l, || m.meter().step((len / BYTES_PER_STEP) as u64));
        ffi::luaL_addvalue(b);
        true
    }
}

/// A replacement string (argument 3): `%0` is the whole match, `%1`–`%9` a capture (`%1` is the
/// whole match when the pattern has none), `%%` a percent sign.
unsafe fn add_text(
    l: *mut ffi::lua_State,
    m: &mut Matcher<'_, '_, '_>,
    b: &mut ffi::luaL_Buffer,
    src: &[u8],
    s: usize,
    e: usize,
) {
    let mut rest = bytes_at(l, 3);
    while let Some(i) = rest.iter().position(|&c| c == b'%') {
        add_bytes(l, m, b, &rest[..i]);
        match rest.get(i + 1).copied() {
            Some(b'%') => ffi::luaL_addchar(b, b'%' as c_char),
            Some(b'0') => add_bytes(l, m, b, &src[s..e]),
            Some(d @ b'1'..=b'9') => match guarded(l, || m.capture(usize::from(d - b'1'), s, e)) {
                Capture::Bytes(r) => add_bytes(l, m, b, &src[r]),
                Capture::Position(p) => {
                    ffi::lua_pushinteger(l, p as ffi::lua_Integer);
                    ffi::luaL_addvalue(b);
                }
            },
            _ => raise(l, &"invalid use of '%' in replacement string"),
        }
        rest = &rest[i + 2..];
    }
    add_bytes(l, m, b, rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::{limits, sandbox};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    /// A sandboxed state as sessions get it, with a budget of `limit` steps.
    fn state(limit: u64) -> (Lua, Arc<Budget>) {
        let lua = sandbox::new_state().unwrap();
        // Counted work only: the wall-clock limits are set out of reach, so a busy test machine cannot
        // turn a cost measurement into a timeout.
        let times = limits::TimeLimits {
            phase: std::time::Duration::from_secs(600),
            item: std::time::Duration::from_secs(600),
        };
        let budget = Arc::new(Budget::with_times(limit, times));
        limits::install_budget(&lua, budget.clone()).unwrap();
        install(&lua, budget.clone()).unwrap();
        (lua, budget)
    }

    fn eval<T: mlua::FromLuaMulti>(lua: &Lua, code: &str) -> T {
        lua.load(code).eval().unwrap_or_else(|e| panic!("{code}: {e}"))
    }

    /// Runs `code` in a fresh phase and expects it to end with `lua-timeout` within the budget.
    fn times_out(code: &str) {
        let (lua, budget) = state(5_000_000);
        let started = std::time::Instant::now();
        let err = lua.load(code).exec().expect_err(code);
        eprintln!("{code}: {:?}", started.elapsed());
        assert!(err.to_string().contains("lua-timeout"), "{code}: {err}");
        assert!(budget.exhausted(), "{code}");
    }

    #[test]
    fn review_inputs_end_with_lua_timeout() {
        // C1 / H2 `pattern_forever`: ~10^22 backtracking steps in stock Lua.
        times_out(r#"string.find(("a"):rep(20), (".-"):rep(100) .. "b")"#);
        times_out(r#"local s = ("a"):rep(20); s:find((".-"):rep(100) .. "b")"#);
        times_out(r#"string.match(("a"):rep(20), (".-"):rep(100) .. "b")"#);
        times_out(r#"for _ in string.gmatch(("a"):rep(20), (".-"):rep(100) .. "b") do end"#);
        times_out(r#"string.gsub(("a"):rep(20), (".-"):rep(100) .. "b", "x")"#);
        // H1: the Contacts trim on "a" .. 40k spaces .. "a" is quadratic.
        times_out(r#"local s = "a" .. (" "):rep(40000) .. "a"; s:lower():match("^%s*(.-)%s*$")"#);
        // H2 `tmove`: never allocates, so only the budget stops it.
        times_out("table.move({}, 1, 3e8, 1, {})");
        times_out(r#"string.rep("", 1e15)"#);
        times_out(r#"local f = ("%%"):rep(1e6) for i = 1, 1e4 do os.date(f) end"#);
        times_out(r#"local s = ("x"):rep(1e6) for i = 1, 1e5 do s:upper() end"#);
        times_out("local t = {} for i = 1, 2000 do t[i] = i end for i = 1, 100000 do table.insert(t, 1, i) end");
    }

    /// The memory bench's way of forcing a collection, and any oversized result: stock Lua refuses it
    /// before copying, so it stays a memory error rather than a charge.
    #[test]
    fn an_oversized_rep_is_a_memory_error() {
        let (lua, budget) = state(5_000_000);
        lua.set_memory_limit(16 << 20).unwrap();
        let err = lua.load("local s = string.rep('x', 1024 * 1024 * 1024)").exec().unwrap_err();
        assert!(err.to_string().contains("not enough memory"), "{err}");
        assert!(!budget.exhausted());
    }

    #[test]
    fn pcall_does_not_hide_a_library_timeout() {
        let (lua, budget) = state(5_000_000);
        let (ok, msg): (bool, String) = eval(
            &lua,
            r#"local ok, e = pcall(string.find, ("a"):rep(20), (".-"):rep(100) .. "b"); return ok, tostring(e)"#,
        );
        assert!(!ok);
        assert!(msg.contains("lua-timeout"), "{msg}");
        assert!(budget.exhausted());
        // Later library calls in the same phase fail at once.
        assert!(lua.load(r#"return ("abc"):find("b.")"#).exec().is_err());
        budget.begin_phase();
        assert_eq!(eval::<i64>(&lua, r#"return (("abc"):find("b."))"#), 2);
    }

    #[test]
    fn normal_calls_behave_like_stock_lua() {
        let (lua, _) = state(200_000_000);
        assert_eq!(eval::<String>(&lua, r#"return ("  hello world  "):match("^%s*(.-)%s*$")"#), "hello world");
        assert_eq!(eval::<(i64, i64)>(&lua, r#"return ("hello"):find("l")"#), (3, 3));
        assert_eq!(eval::<(i64, i64)>(&lua, r#"return string.find("a.b", ".", 1, true)"#), (2, 2));
        assert_eq!(
            eval::<(String, i64)>(&lua, r#"return string.gsub("hello world", "o", "0")"#),
            ("hell0 w0rld".into(), 2)
        );
        assert_eq!(eval::<(String, i64)>(&lua, r#"return string.gsub("abc", "%w", "%0%0", 2)"#), ("aabbc".into(), 2));
        assert_eq!(
            eval::<String>(&lua, r#"return (string.gsub("$name is $age", "%$(%w+)", {name = "Ann", age = 7}))"#),
            "Ann is 7"
        );
        assert_eq!(
            eval::<String>(&lua, r#"return (string.gsub("a b", "%w", function(w) return w:upper() end))"#),
            "A B"
        );
        assert_eq!(
            eval::<String>(
                &lua,
                r#"local r = {} for k, v in string.gmatch("a=1, b=2", "(%w+)=(%w+)") do r[#r+1] = k..v end return table.concat(r, ";")"#
            ),
            "a1;b2"
        );
        assert_eq!(
            eval::<String>(
                &lua,
                r#"local r = {} for w in string.gfind("one two", "%a+") do r[#r+1] = w end return table.concat(r, ",")"#
            ),
            "one,two"
        );
        assert_eq!(eval::<i64>(&lua, "return select('#', unpack({1, 2, 3}))"), 3);
        assert!(eval::<bool>(&lua, "return rawequal(unpack, table.unpack) and rawequal(string.gfind, string.gmatch)"));
        assert_eq!(eval::<String>(&lua, r#"return table.concat({1, 2, 3}, "-")"#), "1-2-3");
        assert_eq!(eval::<String>(&lua, r#"local t = {3, 1, 2} table.sort(t) return table.concat(t)"#), "123");
        assert_eq!(
            eval::<String>(
                &lua,
                r#"local t = {1, 2} table.insert(t, 1, 0) table.insert(t, 9) table.remove(t, 2) return table.concat(t)"#
            ),
            "029"
        );
        assert_eq!(eval::<String>(&lua, r#"return table.concat(table.move({1, 2, 3}, 1, 3, 2), ",")"#), "1,1,2,3");
        assert_eq!(
            eval::<String>(&lua, r#"return string.rep("ab", 3, "-") .. string.format("%5.1f", 2.25)"#),
            "ab-ab-ab  2.2"
        );
        assert_eq!(
            eval::<String>(
                &lua,
                r#"return ("Hello"):upper() .. ("Hello"):lower() .. ("abc"):reverse() .. ("hello"):sub(2, 3)"#
            ),
            "HELLOhellocbael"
        );
        assert_eq!(eval::<i64>(&lua, r#"return select('#', string.byte("abc", 1, -1)) + #string.char(65, 66)"#), 5);
        assert_eq!(
            eval::<String>(
                &lua,
                r#"local r = {} for p, c in utf8.codes("hé!") do r[#r+1] = p .. ":" .. c end return table.concat(r, " ")"#
            ),
            "1:104 2:233 4:33"
        );
        assert_eq!(
            eval::<(i64, i64, String)>(&lua, r#"return utf8.len("hé!"), utf8.offset("hé!", 3), utf8.char(72, 233)"#),
            (3, 4, "Hé".into())
        );
        assert_eq!(
            eval::<i64>(&lua, r#"return string.unpack("i4", string.pack("i4", 7)) + string.packsize("i4")"#),
            11
        );
    }

    #[test]
    fn charge_kinds_round_trip_through_their_upvalue() {
        for (i, c) in CHARGES.iter().enumerate() {
            assert_eq!(*c as usize, i, "{c:?}");
        }
    }

    #[test]
    fn gsub_output_beyond_the_initial_buffer_and_the_heap() {
        let (lua, _) = state(200_000_000);
        let code = r#"local r, n = string.gsub(("ab"):rep(5000), "(a)", function(a) return a .. "xy" end)
                      return #r .. ":" .. n .. ":" .. r:sub(1, 8) .. ":" .. (string.gsub(("ab"):rep(5000), "b", "%%%0"))"#;
        let stock: String = eval(&Lua::new(), code);
        assert_eq!(eval::<String>(&lua, code), stock);
        assert!(stock.starts_with("20000:5000:axybaxyb:"), "{stock}");
        lua.set_memory_limit(8 << 20).unwrap();
        let err = lua.load(r#"string.gsub(("x"):rep(1e6), "x", ("y"):rep(100))"#).exec().unwrap_err();
        assert!(err.to_string().contains("not enough memory"), "{err}");
    }

    #[test]
    fn pattern_errors_are_plain_strings_as_in_stock_lua() {
        let (lua, _) = state(200_000_000);
        for (code, want) in [
            (r#"string.find("a", "%")"#, "malformed pattern (ends with '%')"),
            (r#"string.match("a", "[a")"#, "malformed pattern (missing ']')"),
            (r#"string.gsub("a", "(a)", "%2")"#, "invalid capture index %2"),
            (r#"string.gsub("a", "a", "%x")"#, "invalid use of '%' in replacement string"),
            (r#"string.gsub("a", "a", function() return {} end)"#, "invalid replacement value (a table)"),
            (r#"for _ in string.gmatch("a", "(a") do end"#, "unfinished capture"),
        ] {
            let got: String =
                eval(&lua, &format!("local ok, e = pcall(function() {code} end) assert(not ok) return e"));
            let stock: String =
                eval(&Lua::new(), &format!("local ok, e = pcall(function() {code} end) assert(not ok) return e"));
            assert_eq!(got, stock, "{code}");
            assert!(stock.ends_with(want), "{code}: {stock}");
        }
    }

    #[test]
    fn stock_bounds_hold() {
        let (lua, _) = state(200_000_000);
        let err = |code: &str| -> String {
            eval(
                &lua,
                &format!("local ok, e = pcall(function() {code} end) assert(not ok, 'no error') return tostring(e)"),
            )
        };
        // string.format caps widths and precisions at two digits.
        assert!(err(r#"string.format("%100d", 1)"#).contains("invalid conversion"));
        assert!(err(r#"string.format("%.100f", 1)"#).contains("invalid conversion"));
        assert_eq!(eval::<usize>(&lua, r#"return #string.format("%99d", 1)"#), 99);
        // table.move refuses a destination range that wraps around.
        assert!(err("table.move({1, 2}, 1, 2, math.maxinteger)").contains("destination wrap around"));
        assert!(err("table.move({}, math.mininteger, -1, 1)").contains("too many elements to move"));
        // Results are bounded by the C stack (LUAI_MAXSTACK, 1,000,000 slots).
        assert!(err("table.unpack({}, 1, 1e7)").contains("too many results"));
        assert!(err(r#"string.byte(("x"):rep(2000000), 1, -1)"#).contains("string slice too long"));
        assert!(err("utf8.codepoint(('x'):rep(2000000), 1, -1)").contains("string slice too long"));
    }

    /// A budget spent by a charge after the call (one step per result) raises from a stack the
    /// results filled: the error still has room (Lua's API check would abort otherwise).
    #[test]
    fn a_spent_budget_raises_even_from_a_full_stack() {
        let (lua, budget) = state(2_000);
        lua.globals().set("t", lua.create_sequence_from(1..=50_000).unwrap()).unwrap();
        budget.begin_phase();
        let err = lua.load("return select('#', table.unpack(t))").exec().unwrap_err();
        assert!(err.to_string().contains("lua-timeout"), "{err}");
        budget.begin_phase();
        let err = lua.load("return string.byte(('x'):rep(50000), 1, -1)").exec().unwrap_err();
        assert!(err.to_string().contains("lua-timeout"), "{err}");
    }

    #[test]
    fn library_work_is_charged() {
        let (lua, budget) = state(1_000_000_000);
        let cost = |code: &str| {
            budget.begin_phase();
            lua.load(code).exec().unwrap();
            // What is left tells what was charged: count the 1e6-step slices still available.
            let mut spent = 0u64;
            while budget.charge(1_000_000) {
                spent += 1;
            }
            1000 - spent
        };
        // ~1e7 steps of table.move show up as ~10 of the 1e6-step slices.
        assert!(cost("table.move({}, 1, 1e7, 1, {})") >= 9);
        assert!(cost(r#"local s = string.rep("x", 1e8)"#) >= 5);
        assert!(cost("local t = {} for i = 1, 1e5 do t[i] = 1e5 - i end table.sort(t)") >= 1);
        assert!(cost(r#"string.find(("a"):rep(100), ("a-"):rep(3) .. "b")"#) >= 1);
        assert!(cost("local t = {} for i = 1, 1e6 do t[i] = '' end for i = 1, 10 do table.concat(t) end") >= 9);
        assert!(cost("local t = {} for i = 1, 1e5 do t[i] = i end for i = 1, 100 do table.remove(t, 1) end") >= 9);
        assert!(cost("local s = ('x'):rep(1e6) for i = 1, 200 do utf8.len(s) end") >= 12);
        assert!(cost("local s = ('x'):rep(1e6) for i = 1, 200 do utf8.offset(s, 1e6) end") >= 12);
        assert!(cost("local s = ('\\x80'):rep(1e6) local f = utf8.codes('a') for i = 1, 200 do f(s, 0) end") >= 12);
        assert!(cost("local s = ('x'):rep(1e6) for i = 1, 200 do s:sub(2) end") >= 12);
        assert!(cost("local x = 1") <= 1);
    }

    /// Pieces patterns are made of: every special character, classes, sets, `%b`, `%f`, back-references.
    const TOKENS: &[&str] = &[
        "a", "b", "x", " ", ".", "%a", "%d", "%s", "%W", "%", "%%", "%(", "%.", "[ab]", "[^a]", "[a-c]", "[%a]",
        "[]a]", "[", "]", "^", "$", "(", ")", "()", "*", "+", "-", "?", "%b()", "%bab", "%f[%w]", "%f[a]", "%1", "%2",
        "%0",
    ];

    fn driver(lua: &Lua) -> mlua::Function {
        lua.load(
            r#"
            local s, p, init, plain, n = ...
            local function ser(ok, ...)
              local parts = {tostring(ok)}
              for i = 1, select('#', ...) do
                local v = select(i, ...)
                parts[#parts + 1] = type(v) .. ":" .. tostring(v)
              end
              return table.concat(parts, "|")
            end
            local rf = function(...) return select('#', ...) .. "[" .. table.concat({...}, ",") .. "]" end
            local rt = {a = "T", b = false, [1] = "one", x = 5}
            local out = {}
            out[1] = ser(pcall(string.find, s, p, init, plain))
            out[2] = ser(pcall(string.match, s, p, init))
            out[3] = ser(pcall(function()
              local r, k = {}, 0
              for a, b in string.gmatch(s, p, init) do
                k = k + 1
                r[#r + 1] = tostring(a) .. "/" .. tostring(b)
                if k > 40 then break end
              end
              return table.concat(r, ";")
            end))
            out[4] = ser(pcall(string.gsub, s, p, "<%0%%>", n))
            out[5] = ser(pcall(string.gsub, s, p, "[%1]", n))
            out[6] = ser(pcall(string.gsub, s, p, rf, n))
            out[7] = ser(pcall(string.gsub, s, p, rt, n))
            return table.concat(out, "\n")
            "#,
        )
        .into_function()
        .unwrap()
    }

    #[test]
    fn same_results_as_stock_lua() {
        let stock = Lua::new();
        let (ours, budget) = state(u64::MAX);
        let (stock_f, ours_f) = (driver(&stock), driver(&ours));
        let subject = proptest::collection::vec(proptest::sample::select(b"ab()x1 %[]".to_vec()), 0..12);
        let pattern = proptest::collection::vec(proptest::sample::select(TOKENS), 0..7);
        let init = proptest::option::of(-14i64..14);
        let max = proptest::option::of(0i64..4);
        let mut runner = TestRunner::new(Config { cases: 3000, failure_persistence: None, ..Config::default() });
        runner
            .run(&(subject, pattern, init, any::<bool>(), max), |(s, p, init, plain, max)| {
                budget.begin_phase();
                let p = p.concat();
                let call = |lua: &Lua, f: &mlua::Function| -> String {
                    let s = lua.create_string(&s).unwrap();
                    f.call((s, p.as_str(), init, plain.then_some(true), max)).unwrap()
                };
                prop_assert_eq!(call(&stock, &stock_f), call(&ours, &ours_f), "pattern {:?}", p);
                Ok(())
            })
            .unwrap();
    }

    /// The wrappers' share of a session's Lua heap (P6 budgets 64 KiB for a whole small app).
    #[test]
    fn heap_cost_is_small() {
        let lua = sandbox::new_state().unwrap();
        lua.gc_collect().unwrap();
        let before = lua.used_memory();
        install(&lua, Arc::new(Budget::new(1000))).unwrap();
        lua.gc_collect().unwrap();
        let added = lua.used_memory() - before;
        eprintln!("bounded library functions: {added} bytes of Lua heap");
        assert!(added < 4 * 1024, "{added}");
    }

    /// Not a test: a rough timing of stock vs bounded on typical calls, run by hand with
    /// `cargo test --lib bounded::tests::timing -- --ignored --nocapture` (numbers in the report).
    #[test]
    #[ignore]
    fn timing() {
        let cases = [
            ("trim", r#"local s = "  hello world  " for i = 1, 200000 do local r = s:match("^%s*(.-)%s*$") end"#),
            (
                "find plain",
                r#"local s = "  hello world  " for i = 1, 200000 do local r = s:find("world", 1, true) end"#,
            ),
            ("gsub", r#"local s = "a  b   c" for i = 1, 200000 do local r = s:gsub("%s+", " ") end"#),
            ("gmatch", r#"local s = "a,b,c,d" for i = 1, 50000 do for w in s:gmatch("[^,]+") do end end"#),
            ("sub", r#"local s = "hello world" for i = 1, 200000 do local r = s:sub(2, 5) end"#),
        ];
        // Both states run the counting hook: with a count hook set, Lua 5.4 traps every instruction.
        let stock = Lua::new();
        limits::install_budget(&stock, Arc::new(Budget::new(u64::MAX))).unwrap();
        let (ours, _) = state(u64::MAX);
        for (name, code) in cases {
            for (which, lua) in [("stock", &stock), ("bounded", &ours)] {
                let started = std::time::Instant::now();
                lua.load(code).exec().unwrap();
                eprintln!("{name:>10} {which:>8}: {:?}", started.elapsed());
            }
        }
    }
}
