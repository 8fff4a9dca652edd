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
//!   upper/lower/reverse/sub/byte/char/pack/unpack/packsize`, `utf8.*`) keep the stock C function and
//!   get a thin Lua wrapper (`lua/bounded.lua`) that charges its work through a `charge` function.
//!
//! When the budget is spent the call raises `lua-timeout` (as the hook does) and the phase ends with
//! that code; `pcall` cannot hide it, since the phase outcome reads the sticky `Budget::exhausted`.
//!
//! Why raw C functions rather than `Lua::create_function`: converting four arguments to `mlua`
//! values costs several times a whole typical match, and a pattern error must reach scripts as the
//! plain string stock Lua raises. The price is `unsafe` code with one rule, kept throughout: `lua_error`
//! (and any Lua API call that may raise: pushing a string, calling a replacement function) unwinds by
//! `longjmp`, so no value with a destructor may be alive in these functions when they call the Lua
//! API. Matching state ([`Meter`], [`Matcher`], [`Capture`]) owns nothing; messages are formatted into
//! a stack buffer; a panic in the matcher is caught and raised as a Lua error.

use std::ffi::{c_char, c_int};
use std::fmt::Write as _;
use std::sync::Arc;

use mlua::{ffi, Lua, Table};

use super::builtin::BOUNDED;
use super::limits::Budget;
use super::pattern::{self, Capture, Matcher, Meter, PatternError, TIMEOUT_MESSAGE};

/// Bytes of `gsub` output that cost one step (as in `lua/bounded.lua`).
const BYTES_PER_STEP: usize = 16;

/// Installs the bounded functions into the state's `string`, `table`, `utf8` and `os` tables (the
/// string metatable's `__index` is the same `string` table, so `("x"):find(...)` is covered too).
pub fn install(lua: &Lua, budget: Arc<Budget>) -> mlua::Result<()> {
    let budget_for_c = budget.clone();
    // SAFETY: the closure only creates values on the stack; `exec_raw` runs it protected.
    let functions: Table = unsafe {
        lua.exec_raw((), move |l| {
            ffi::lua_createtable(l, 0, 4);
            push_budget(l, budget_for_c);
            for (name, f) in [
                (c"find", raw_find as ffi::lua_CFunction),
                (c"match", raw_match),
                (c"gmatch", raw_gmatch),
                (c"gsub", raw_gsub),
            ] {
                ffi::lua_pushvalue(l, -1);
                ffi::lua_pushcclosure(l, f, 1);
                ffi::lua_setfield(l, -3, name.as_ptr());
            }
            ffi::lua_pop(l, 1);
        })?
    };
    let charge = lua.create_function(move |_, steps: f64| {
        // Saturating: a rep count of 1e300 is charged as "everything".
        let steps = if steps.is_finite() && steps > 0.0 {
            steps as u64
        } else if steps > 0.0 {
            u64::MAX
        } else {
            0
        };
        if budget.charge(steps) {
            Ok(())
        } else {
            crate::metrics::metrics().lua_limit_hit("library");
            Err(mlua::Error::runtime(TIMEOUT_MESSAGE))
        }
    })?;
    BOUNDED.chunk(lua).call((functions, charge))
}

// ------------------------------------------------------------------------------------------------
// The budget as an upvalue: a userdata holding `Arc::into_raw`, released by its `__gc`.

/// Pushes a userdata that keeps `budget` alive until the state collects it (at the latest when it
/// closes: created before any script runs, it is finalized after every script-made finalizer).
unsafe fn push_budget(l: *mut ffi::lua_State, budget: Arc<Budget>) {
    let slot = ffi::lua_newuserdatauv(l, std::mem::size_of::<*const Budget>(), 0) as *mut *const Budget;
    slot.write(Arc::into_raw(budget));
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
    use mlua::MultiValue;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    /// A sandboxed state as sessions get it, with a budget of `limit` steps.
    fn state(limit: u64) -> (Lua, Arc<Budget>) {
        let lua = sandbox::new_state().unwrap();
        let budget = Arc::new(Budget::new(limit));
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
        let lua2 = sandbox::new_state().unwrap();
        lua2.gc_collect().unwrap();
        let b = lua2.used_memory();
        let f = BOUNDED.chunk(&lua2).into_function().unwrap();
        lua2.gc_collect().unwrap();
        eprintln!("protos alone: {} bytes", lua2.used_memory() - b);
        drop(f);
        assert!(added < 16 * 1024, "{added}");
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
        let noop = ours.create_function(|_, ()| Ok(())).unwrap();
        ours.globals().set("noop", noop).unwrap();
        let noop4 = ours.create_function(|_, _: MultiValue| Ok(())).unwrap();
        ours.globals().set("noop4", noop4).unwrap();
        let started = std::time::Instant::now();
        ours.load("for i = 1, 200000 do noop() end").exec().unwrap();
        eprintln!("baseline: 200k calls of an empty Rust function: {:?}", started.elapsed());
        let started = std::time::Instant::now();
        ours.load("local s = 'hello' for i = 1, 200000 do noop4(s, 'world', 1, true) end").exec().unwrap();
        eprintln!("baseline: 200k calls with 4 arguments: {:?}", started.elapsed());
        for (name, code) in cases {
            for (which, lua) in [("stock", &stock), ("bounded", &ours)] {
                let started = std::time::Instant::now();
                lua.load(code).exec().unwrap();
                eprintln!("{name:>10} {which:>8}: {:?}", started.elapsed());
            }
        }
    }
}
