//! Library functions with bounded cost (docs/lua-limits.md; security review C1, H1, H2).
//!
//! The instruction hook only fires between VM instructions, so a C library function runs as long as
//! its input asks: a backtracking pattern for ~10²² steps, `table.move({},1,3e8,1,{})` for 3·10⁸
//! iterations. Here every such function of the sandbox gets a cost charged to the phase's
//! [`Budget`]:
//! - `string.find/match/gmatch/gsub` are replaced by Rust functions over the step-counted matcher in
//!   [`super::pattern`], with Lua 5.4's argument handling and results;
//! - the rest (`table.move/concat/sort/insert/remove/unpack/pack`, `os.date`, `string.rep/format/upper/lower/
//!   reverse/sub/byte/char/pack/unpack/packsize`, `utf8.*`) keep the stock C function and get a thin
//!   Lua wrapper (`lua/bounded.lua`) that charges its work through [`charge`].
//!
//! When the budget is spent the call raises `lua-timeout` (as the hook does) and the phase ends with
//! that code; `pcall` cannot hide it, since the phase outcome reads the sticky `Budget::exhausted`.
//! Errors stock Lua raises with `luaL_error` (a malformed pattern, a bad argument) reach scripts as the
//! same plain strings: the Rust side returns them behind a marker and the wrapper raises them.

use std::sync::Arc;

use mlua::{Lua, MultiValue, Table, Value};

use super::builtin::BOUNDED;
use super::limits::Budget;
use super::pattern::{self, Capture, Matcher, Meter, PatternError, TIMEOUT_MESSAGE};

/// Output of `gsub` is handed to the Lua heap in pieces of this size, so the heap limit bounds it
/// (a Rust `Vec` would grow outside the limit).
const GSUB_PIECE: usize = 64 * 1024;
/// Bytes of `gsub` output that cost one step (as in `lua/bounded.lua`).
const BYTES_PER_STEP: usize = 16;

/// Why a bounded library call failed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    /// A malformed pattern, or the budget ran out while matching.
    #[error("{0}")]
    Pattern(#[from] PatternError),
    /// `luaL_argerror`'s message, e.g. `bad argument #1 to 'find' (string expected, got nil)`.
    #[error("bad argument #{index} to '{func}' ({expected} expected, got {got})")]
    BadArgument { index: usize, func: &'static str, expected: &'static str, got: &'static str },
    #[error("bad argument #{index} to '{func}' (number has no integer representation)")]
    NotInteger { index: usize, func: &'static str },
    /// `gsub`: a replacement string with `%` followed by something other than a digit or `%`.
    #[error("invalid use of '%' in replacement string")]
    ReplacementEscape,
    /// `gsub`: a function or table gave something that is neither a string, a number, false nor nil.
    #[error("invalid replacement value (a {0})")]
    ReplacementValue(&'static str),
    /// From Lua code the call ran (a `gsub` replacement function) or from the Lua heap.
    #[error(transparent)]
    Lua(#[from] mlua::Error),
}

/// What every Rust pattern function shares: the phase's budget and the failure marker its Lua
/// wrapper looks for.
#[derive(Clone)]
struct Ctx {
    budget: Arc<Budget>,
    fail: Table,
}

impl Ctx {
    fn meter(&self) -> Meter<'_> {
        Meter::new(Some(&self.budget))
    }

    /// What the Rust side of a bounded function hands back to its Lua wrapper: results, or the marker
    /// and a message the wrapper raises as a plain string (as `luaL_error` would), or an error that
    /// propagates as is (timeout, memory, errors of Lua code the call ran).
    fn finish(&self, lua: &Lua, result: Result<MultiValue, CallError>) -> mlua::Result<MultiValue> {
        match result {
            Ok(values) => Ok(values),
            Err(CallError::Lua(e)) => Err(e),
            Err(CallError::Pattern(PatternError::Timeout)) => Err(timeout()),
            Err(e) => {
                let msg = lua.create_string(e.to_string())?;
                Ok(MultiValue::from_vec(vec![Value::Table(self.fail.clone()), Value::String(msg)]))
            }
        }
    }
}

fn timeout() -> mlua::Error {
    crate::metrics::metrics().lua_limit_hit("library");
    mlua::Error::runtime(TIMEOUT_MESSAGE)
}

/// Installs the bounded functions into the state's `string`, `table` and `utf8` tables (the string
/// metatable's `__index` is the same `string` table, so `("x"):find(...)` is covered too).
pub fn install(lua: &Lua, budget: Arc<Budget>) -> mlua::Result<()> {
    let ctx = Ctx { budget: budget.clone(), fail: lua.create_table()? };
    let functions = lua.create_table()?;
    type Impl = fn(&Lua, &Ctx, &MultiValue) -> Result<MultiValue, CallError>;
    let entries: [(&str, Impl); 4] = [("find", find), ("match", str_match), ("gsub", gsub), ("gmatch", gmatch)];
    for (name, f) in entries {
        let ctx = ctx.clone();
        functions.set(name, lua.create_function(move |lua, args: MultiValue| ctx.finish(lua, f(lua, &ctx, &args)))?)?;
    }
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
            Err(timeout())
        }
    })?;
    BOUNDED.chunk(lua).call((ctx.fail, functions, charge))
}

// ------------------------------------------------------------------------------------------------
// Arguments, as lauxlib checks them.

fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(v) => v.type_name(),
    }
}

/// `luaL_checklstring`: strings, and numbers converted the way Lua prints them.
fn check_string(lua: &Lua, args: &MultiValue, i: usize, func: &'static str) -> Result<mlua::String, CallError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => {
            Ok(lua.coerce_string(v.clone())?.expect("numbers convert to strings"))
        }
        other => Err(CallError::BadArgument { index: i + 1, func, expected: "string", got: type_name(other) }),
    }
}

/// `luaL_optinteger`.
fn opt_integer(lua: &Lua, args: &MultiValue, i: usize, func: &'static str, default: i64) -> Result<i64, CallError> {
    match args.get(i) {
        None | Some(Value::Nil) => Ok(default),
        Some(Value::Integer(n)) => Ok(*n),
        Some(v) => match lua.coerce_integer(v.clone())? {
            Some(n) => Ok(n),
            None if lua.coerce_number(v.clone())?.is_some() => Err(CallError::NotInteger { index: i + 1, func }),
            None => Err(CallError::BadArgument { index: i + 1, func, expected: "number", got: type_name(Some(v)) }),
        },
    }
}

fn truthy(v: Option<&Value>) -> bool {
    !matches!(v, None | Some(Value::Nil) | Some(Value::Boolean(false)))
}

/// The 0-based start offset from an `init` argument (may be past the end).
fn init_offset(lua: &Lua, args: &MultiValue, i: usize, func: &'static str, len: usize) -> Result<usize, CallError> {
    Ok(pattern::start_position(opt_integer(lua, args, i, func, 1)?, len) - 1)
}

fn one(v: Value) -> MultiValue {
    MultiValue::from_vec(vec![v])
}

fn capture_value(lua: &Lua, src: &[u8], c: Capture) -> mlua::Result<Value> {
    Ok(match c {
        Capture::Bytes(r) => Value::String(lua.create_string(&src[r])?),
        Capture::Position(p) => Value::Integer(p as i64),
    })
}

fn push_captures(lua: &Lua, out: &mut Vec<Value>, src: &[u8], caps: Vec<Capture>) -> mlua::Result<()> {
    for c in caps {
        out.push(capture_value(lua, src, c)?);
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// find, match, gmatch, gsub.

fn find(lua: &Lua, ctx: &Ctx, args: &MultiValue) -> Result<MultiValue, CallError> {
    find_or_match(lua, ctx, args, true)
}

fn str_match(lua: &Lua, ctx: &Ctx, args: &MultiValue) -> Result<MultiValue, CallError> {
    find_or_match(lua, ctx, args, false)
}

/// `string.find` (`is_find`) or `string.match`: an `init` past the end finds nothing; `find` with
/// `plain` or a pattern without special characters does a plain search.
fn find_or_match(lua: &Lua, ctx: &Ctx, args: &MultiValue, is_find: bool) -> Result<MultiValue, CallError> {
    let func = if is_find { "find" } else { "match" };
    let s = check_string(lua, args, 0, func)?;
    let p = check_string(lua, args, 1, func)?;
    let (src, pat) = (s.as_bytes(), p.as_bytes());
    let init = init_offset(lua, args, 2, func, src.len())?;
    if init > src.len() {
        return Ok(one(Value::Nil));
    }
    let mut meter = ctx.meter();
    if is_find && (truthy(args.get(3)) || !pattern::has_specials(&pat)) {
        let found = pattern::plain_find(&src, &pat, init, &mut meter)?;
        meter.flush()?;
        return Ok(match found {
            Some(i) => MultiValue::from_vec(vec![Value::Integer(i as i64 + 1), Value::Integer((i + pat.len()) as i64)]),
            None => one(Value::Nil),
        });
    }
    let (found, m) = pattern::search(&src, &pat, init, &mut meter)?;
    let mut out = Vec::new();
    match found {
        Some((start, end)) => {
            if is_find {
                out.push(Value::Integer(start as i64 + 1));
                out.push(Value::Integer(end as i64));
            }
            let caps = m.captures(start, end, !is_find)?;
            push_captures(lua, &mut out, &src, caps)?;
        }
        None => out.push(Value::Nil),
    }
    meter.flush()?;
    Ok(MultiValue::from_vec(out))
}

/// `string.gmatch(s, pattern [, init])`: an iterator over the matches; an empty match right where the
/// previous match ended is skipped (Lua 5.4's rule), and `^` is an ordinary character here.
fn gmatch(lua: &Lua, ctx: &Ctx, args: &MultiValue) -> Result<MultiValue, CallError> {
    let s = check_string(lua, args, 0, "gmatch")?;
    let p = check_string(lua, args, 1, "gmatch")?;
    let len = s.as_bytes().len();
    let mut pos = init_offset(lua, args, 2, "gmatch", len)?.min(len + 1);
    let mut last: Option<usize> = None;
    let ctx = ctx.clone();
    let iter = lua.create_function_mut(move |lua, ()| {
        let (src, pat) = (s.as_bytes(), p.as_bytes());
        let mut meter = ctx.meter();
        let mut m = Matcher::new(&src, &pat, &mut meter);
        let r = (|| -> Result<MultiValue, CallError> {
            let mut out = Vec::new();
            let mut start = pos;
            while start <= src.len() {
                m.reset();
                match m.do_match(start, 0)? {
                    Some(e) if Some(e) != last => {
                        pos = e;
                        last = Some(e);
                        push_captures(lua, &mut out, &src, m.captures(start, e, true)?)?;
                        break;
                    }
                    _ => start += 1,
                }
            }
            m.meter().flush()?;
            Ok(MultiValue::from_vec(out))
        })();
        ctx.finish(lua, r)
    })?;
    Ok(one(Value::Function(iter)))
}

/// `gsub`'s output: bytes gathered in Rust and moved to the Lua heap every [`GSUB_PIECE`] bytes, so
/// the heap limit stops an output that would not fit (stock Lua's buffer lives on that heap too).
struct Output<'l> {
    lua: &'l Lua,
    buf: Vec<u8>,
    pieces: Vec<mlua::String>,
}

impl<'l> Output<'l> {
    fn push(&mut self, bytes: &[u8], meter: &mut Meter<'_>) -> Result<(), CallError> {
        meter.step((bytes.len() / BYTES_PER_STEP) as u64)?;
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= GSUB_PIECE {
            self.pieces.push(self.lua.create_string(&self.buf)?);
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> mlua::Result<mlua::String> {
        if self.pieces.is_empty() {
            return self.lua.create_string(&self.buf);
        }
        let total = self.pieces.iter().map(|p| p.as_bytes().len()).sum::<usize>() + self.buf.len();
        let mut all = Vec::with_capacity(total);
        for p in self.pieces.drain(..) {
            all.extend_from_slice(&p.as_bytes());
        }
        all.extend_from_slice(&self.buf);
        self.lua.create_string(&all)
    }
}

/// The third argument of `gsub`.
enum Replacement {
    Text(mlua::String),
    Table(Table),
    Function(mlua::Function),
}

/// `string.gsub(s, pattern, repl [, n])`: the new string (the original when nothing changed) and the
/// number of matches replaced.
fn gsub(lua: &Lua, ctx: &Ctx, args: &MultiValue) -> Result<MultiValue, CallError> {
    let s = check_string(lua, args, 0, "gsub")?;
    let p = check_string(lua, args, 1, "gsub")?;
    let src = s.as_bytes();
    let repl = match args.get(2) {
        Some(Value::String(r)) => Replacement::Text(r.clone()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => {
            Replacement::Text(lua.coerce_string(v.clone())?.expect("numbers convert to strings"))
        }
        Some(Value::Table(t)) => Replacement::Table(t.clone()),
        Some(Value::Function(f)) => Replacement::Function(f.clone()),
        other => {
            return Err(CallError::BadArgument {
                index: 3,
                func: "gsub",
                expected: "string/function/table",
                got: type_name(other),
            })
        }
    };
    let max = opt_integer(lua, args, 3, "gsub", src.len() as i64 + 1)?;
    let pat = p.as_bytes();
    let (anchor, pat) = match pat.first() {
        Some(b'^') => (true, &pat[1..]),
        _ => (false, &pat[..]),
    };
    let mut meter = ctx.meter();
    let mut out = Output { lua, buf: Vec::new(), pieces: Vec::new() };
    let mut m = Matcher::new(&src, pat, &mut meter);
    let (mut pos, mut last, mut n, mut changed) = (0usize, None, 0i64, false);
    while n < max {
        m.reset();
        match m.do_match(pos, 0)? {
            Some(e) if Some(e) != last => {
                n += 1;
                changed |= add_value(lua, &mut m, &mut out, &src, pos, e, &repl)?;
                pos = e;
                last = Some(e);
            }
            _ if pos < src.len() => {
                out.push(&src[pos..pos + 1], m.meter())?;
                pos += 1;
            }
            _ => break,
        }
        if anchor {
            break;
        }
    }
    let result = if changed {
        out.push(&src[pos..], m.meter())?;
        m.meter().flush()?;
        out.finish()?
    } else {
        m.meter().flush()?;
        s.clone()
    };
    Ok(MultiValue::from_vec(vec![Value::String(result), Value::Integer(n)]))
}

/// Appends the replacement of the match `s..e`; `false` when the original text was kept (a table or
/// function gave `nil` or `false`).
fn add_value(
    lua: &Lua,
    m: &mut Matcher<'_, '_, '_>,
    out: &mut Output<'_>,
    src: &[u8],
    s: usize,
    e: usize,
    repl: &Replacement,
) -> Result<bool, CallError> {
    let value = match repl {
        Replacement::Text(r) => {
            add_text(m, out, src, s, e, &r.as_bytes())?;
            return Ok(true);
        }
        Replacement::Table(t) => {
            let key = capture_value(lua, src, m.capture(0, s, e)?)?;
            t.get::<Value>(key)?
        }
        Replacement::Function(f) => {
            let mut caps = Vec::new();
            push_captures(lua, &mut caps, src, m.captures(s, e, true)?)?;
            f.call::<Value>(MultiValue::from_vec(caps))?
        }
    };
    match value {
        Value::Nil | Value::Boolean(false) => {
            out.push(&src[s..e], m.meter())?;
            Ok(false)
        }
        Value::String(r) => {
            out.push(&r.as_bytes(), m.meter())?;
            Ok(true)
        }
        v @ (Value::Integer(_) | Value::Number(_)) => {
            let r = lua.coerce_string(v)?.expect("numbers convert to strings");
            out.push(&r.as_bytes(), m.meter())?;
            Ok(true)
        }
        other => Err(CallError::ReplacementValue(other.type_name())),
    }
}

/// A replacement string: `%0` is the whole match, `%1`–`%9` a capture (`%1` is the whole match when
/// the pattern has none), `%%` a percent sign.
fn add_text(
    m: &mut Matcher<'_, '_, '_>,
    out: &mut Output<'_>,
    src: &[u8],
    s: usize,
    e: usize,
    text: &[u8],
) -> Result<(), CallError> {
    let mut rest = text;
    while let Some(i) = rest.iter().position(|&b| b == b'%') {
        out.push(&rest[..i], m.meter())?;
        match rest.get(i + 1).copied() {
            Some(b'%') => out.push(b"%", m.meter())?,
            Some(b'0') => out.push(&src[s..e], m.meter())?,
            Some(d @ b'1'..=b'9') => match m.capture(usize::from(d - b'1'), s, e)? {
                Capture::Bytes(r) => out.push(&src[r], m.meter())?,
                Capture::Position(p) => out.push(p.to_string().as_bytes(), m.meter())?,
            },
            _ => return Err(CallError::ReplacementEscape),
        }
        rest = &rest[i + 2..];
    }
    out.push(rest, m.meter())
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
