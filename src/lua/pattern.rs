//! Lua 5.4 string patterns (reference manual §6.4.1), matched in Rust with every step counted.
//!
//! Why: stock `string.find`/`match`/`gmatch`/`gsub` backtrack inside one C call, where the
//! instruction-count hook never fires, so `("a"):rep(20):find((".-"):rep(100).."b")` runs for ~10²²
//! steps and pins a thread for good (security review C1, H1, H2). This matcher has the same semantics
//! as Lua's — same results, same captures, same error messages for malformed patterns, same recursion
//! bound (200, "pattern too complex") — but counts its work: each attempt to match one pattern item
//! at one subject position, each byte a back-reference compares and each position a plain search
//! tries is one step. Steps are charged to the phase's [`Budget`] in chunks of [`CHARGE_EVERY`], and
//! when the budget is spent the match stops with [`PatternError::Timeout`], which the sandbox raises as
//! `lua-timeout`. One step costs about what one VM instruction does, so a catastrophic pattern ends
//! after roughly the phase's instruction budget (~1 s by default) instead of never.
//!
//! Positions are byte offsets into the subject (`0..=len`); reading at the end of the subject or the
//! pattern yields 0, as C's NUL terminator does in `lstrlib.c`, which the semantics depend on (`%f`
//! at the end of the subject, `(` or `%` as the pattern's last byte).

use std::fmt;

use super::limits::Budget;

/// The escape character.
const ESC: u8 = b'%';
/// Bytes that make a pattern need the matcher; a pattern without them is found by plain search.
const SPECIALS: &[u8] = b"^$*+?.([%-";
/// Recursion bound of the matcher (Lua's `MAXCCALLS`).
pub const MAX_DEPTH: usize = 200;
/// Most captures one pattern may open (Lua's `LUA_MAXCAPTURES`).
pub const MAX_CAPTURES: usize = 32;
/// Steps accumulated before they are charged to the budget: keeps the atomic off the hot path.
pub const CHARGE_EVERY: u64 = 1000;

const CAP_UNFINISHED: isize = -1;
const CAP_POSITION: isize = -2;

/// Why a pattern function failed. The messages are Lua 5.4's, so scripts that report or match them
/// see what they would see in stock Lua.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternError {
    EndsWithEscape,
    MissingBracket,
    MissingBalanceArgs,
    MissingFrontierBracket,
    /// A back-reference or replacement `%n` naming no (closed) capture; holds `n` as Lua prints it.
    InvalidCaptureIndex(i64),
    InvalidPatternCapture,
    UnfinishedCapture,
    TooManyCaptures,
    TooComplex,
    /// The phase's budget ran out while matching.
    Timeout,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::EndsWithEscape => f.write_str("malformed pattern (ends with '%')"),
            PatternError::MissingBracket => f.write_str("malformed pattern (missing ']')"),
            PatternError::MissingBalanceArgs => f.write_str("malformed pattern (missing arguments to '%b')"),
            PatternError::MissingFrontierBracket => f.write_str("missing '[' after '%f' in pattern"),
            PatternError::InvalidCaptureIndex(n) => write!(f, "invalid capture index %{n}"),
            PatternError::InvalidPatternCapture => f.write_str("invalid pattern capture"),
            PatternError::UnfinishedCapture => f.write_str("unfinished capture"),
            PatternError::TooManyCaptures => f.write_str("too many captures"),
            PatternError::TooComplex => f.write_str("pattern too complex"),
            PatternError::Timeout => f.write_str(TIMEOUT_MESSAGE),
        }
    }
}

impl std::error::Error for PatternError {}

/// What the instruction hook raises; library functions raise the same text when they run out.
pub const TIMEOUT_MESSAGE: &str = "lua-timeout: instruction budget exhausted";

/// Counts steps and charges them to a budget in chunks.
pub struct Meter<'a> {
    budget: Option<&'a Budget>,
    pending: u64,
    total: u64,
}

impl<'a> Meter<'a> {
    /// `None` counts without limit (tests, and states without a budget).
    pub fn new(budget: Option<&'a Budget>) -> Self {
        Meter { budget, pending: 0, total: 0 }
    }

    /// Counts `n` steps; charges the budget once [`CHARGE_EVERY`] have accumulated.
    #[inline]
    pub fn step(&mut self, n: u64) -> Result<(), PatternError> {
        self.pending += n;
        if self.pending >= CHARGE_EVERY {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Charges what is pending. Called at the end of every library call too, so short calls are not
    /// free when they add up.
    pub fn flush(&mut self) -> Result<(), PatternError> {
        let n = std::mem::take(&mut self.pending);
        self.total += n;
        match self.budget {
            Some(b) if !b.charge(n) => Err(PatternError::Timeout),
            _ => Ok(()),
        }
    }

    /// Steps counted so far (charged or pending).
    pub fn total(&self) -> u64 {
        self.total + self.pending
    }
}

/// One capture's value: a slice of the subject, or a position capture `()` (1-based, as Lua returns).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capture {
    Bytes(std::ops::Range<usize>),
    Position(usize),
}

#[derive(Clone, Copy)]
struct Cap {
    init: usize,
    len: isize,
}

/// The state of matching one pattern against one subject (Lua's `MatchState`).
pub struct Matcher<'s, 'm, 'b> {
    src: &'s [u8],
    pat: &'s [u8],
    level: usize,
    depth: usize,
    capture: [Cap; MAX_CAPTURES],
    meter: &'m mut Meter<'b>,
}

#[inline]
fn at(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

/// A character class letter (`%a` …) against one byte, in the C locale; any other letter after `%`
/// stands for itself.
fn match_class(c: u8, class: u8) -> bool {
    let res = match class.to_ascii_lowercase() {
        b'a' => c.is_ascii_alphabetic(),
        b'c' => c.is_ascii_control(),
        b'd' => c.is_ascii_digit(),
        b'g' => c.is_ascii_graphic(),
        b'l' => c.is_ascii_lowercase(),
        b'p' => c.is_ascii_punctuation(),
        // C's isspace: space, \t \n \v \f \r (Rust's is_ascii_whitespace lacks \v).
        b's' => matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
        b'u' => c.is_ascii_uppercase(),
        b'w' => c.is_ascii_alphanumeric(),
        b'x' => c.is_ascii_hexdigit(),
        _ => return class == c,
    };
    if class.is_ascii_uppercase() {
        !res
    } else {
        res
    }
}

/// Does the pattern need the matcher at all? (Lua's `nospecials`, negated.)
pub fn has_specials(pat: &[u8]) -> bool {
    pat.iter().any(|b| SPECIALS.contains(b))
}

/// Lua's `posrelatI`: a 1-based start position from an `init` argument (negative counts from the
/// end, 0 and too-negative values clip to 1). May exceed `len + 1`.
pub fn start_position(pos: i64, len: usize) -> usize {
    if pos > 0 {
        usize::try_from(pos).unwrap_or(usize::MAX)
    } else if pos == 0 || pos.unsigned_abs() > len as u64 {
        1
    } else {
        len - pos.unsigned_abs() as usize + 1
    }
}

/// Plain substring search from byte offset `init`, one step per candidate position plus one per
/// byte compared after a first-byte hit. Returns the offset of the first occurrence.
pub fn plain_find(src: &[u8], pat: &[u8], init: usize, meter: &mut Meter<'_>) -> Result<Option<usize>, PatternError> {
    let hay = &src[init..];
    if pat.is_empty() {
        return Ok(Some(init));
    }
    if pat.len() > hay.len() {
        return Ok(None);
    }
    let first = pat[0];
    let last_start = hay.len() - pat.len();
    let mut i = 0;
    while i <= last_start {
        // Skip to the next candidate in one go (memchr-like), counting the bytes skipped.
        match hay[i..=last_start].iter().position(|&b| b == first) {
            None => {
                meter.step((last_start + 1 - i) as u64)?;
                return Ok(None);
            }
            Some(k) => {
                meter.step(k as u64 + 1)?;
                i += k;
            }
        }
        meter.step(pat.len() as u64 - 1)?;
        if hay[i + 1..i + pat.len()] == pat[1..] {
            return Ok(Some(init + i));
        }
        i += 1;
    }
    Ok(None)
}

impl<'s, 'm, 'b> Matcher<'s, 'm, 'b> {
    pub fn new(src: &'s [u8], pat: &'s [u8], meter: &'m mut Meter<'b>) -> Self {
        Matcher { src, pat, level: 0, depth: MAX_DEPTH, capture: [Cap { init: 0, len: 0 }; MAX_CAPTURES], meter }
    }

    /// Forgets the captures of the previous attempt (Lua's `reprepstate`).
    pub fn reset(&mut self) {
        self.level = 0;
        self.depth = MAX_DEPTH;
    }

    /// The meter, so callers can flush it at the end of a call.
    pub fn meter(&mut self) -> &mut Meter<'b> {
        self.meter
    }

    /// Where the pattern item starting at `p` ends (its optional quantifier sits there).
    fn class_end(&self, mut p: usize) -> Result<usize, PatternError> {
        let c = at(self.pat, p);
        p += 1;
        if c == ESC {
            if p >= self.pat.len() {
                return Err(PatternError::EndsWithEscape);
            }
            return Ok(p + 1);
        }
        if c == b'[' {
            if at(self.pat, p) == b'^' {
                p += 1;
            }
            // The first byte of a set is taken literally, even ']'.
            loop {
                if p >= self.pat.len() {
                    return Err(PatternError::MissingBracket);
                }
                let b = self.pat[p];
                p += 1;
                if b == ESC && p < self.pat.len() {
                    p += 1;
                }
                if at(self.pat, p) == b']' {
                    break;
                }
            }
            return Ok(p + 1);
        }
        Ok(p)
    }

    /// Does byte `c` belong to the set `[...]` that starts at `p` and whose `]` is at `ec`?
    fn match_bracket_class(&self, c: u8, mut p: usize, ec: usize) -> bool {
        let mut sig = true;
        if at(self.pat, p + 1) == b'^' {
            sig = false;
            p += 1;
        }
        p += 1;
        while p < ec {
            let b = self.pat[p];
            if b == ESC {
                p += 1;
                if match_class(c, at(self.pat, p)) {
                    return sig;
                }
            } else if at(self.pat, p + 1) == b'-' && p + 2 < ec {
                p += 2;
                if b <= c && c <= self.pat[p] {
                    return sig;
                }
            } else if b == c {
                return sig;
            }
            p += 1;
        }
        !sig
    }

    /// Does the single-byte item `p..ep` match the subject byte at `s`? One step.
    fn single_match(&mut self, s: usize, p: usize, ep: usize) -> Result<bool, PatternError> {
        self.meter.step(1)?;
        if s >= self.src.len() {
            return Ok(false);
        }
        let c = self.src[s];
        Ok(match self.pat[p] {
            b'.' => true,
            ESC => match_class(c, at(self.pat, p + 1)),
            b'[' => self.match_bracket_class(c, p, ep - 1),
            b => b == c,
        })
    }

    /// `%bxy` at subject position `s`, with `x` at pattern position `p`.
    fn match_balance(&mut self, s: usize, p: usize) -> Result<Option<usize>, PatternError> {
        if p + 1 >= self.pat.len() {
            return Err(PatternError::MissingBalanceArgs);
        }
        if s >= self.src.len() || self.src[s] != self.pat[p] {
            return Ok(None);
        }
        let (open, close) = (self.pat[p], self.pat[p + 1]);
        let mut depth = 1usize;
        let mut i = s + 1;
        while i < self.src.len() {
            self.meter.step(1)?;
            let b = self.src[i];
            if b == close {
                depth -= 1;
                if depth == 0 {
                    return Ok(Some(i + 1));
                }
            } else if b == open {
                depth += 1;
            }
            i += 1;
        }
        Ok(None)
    }

    /// Greedy repetition (`*`, and `+` after its first match).
    fn max_expand(&mut self, s: usize, p: usize, ep: usize) -> Result<Option<usize>, PatternError> {
        let mut i = 0usize;
        while self.single_match(s + i, p, ep)? {
            i += 1;
        }
        loop {
            if let Some(e) = self.do_match(s + i, ep + 1)? {
                return Ok(Some(e));
            }
            if i == 0 {
                return Ok(None);
            }
            i -= 1;
        }
    }

    /// Lazy repetition (`-`).
    fn min_expand(&mut self, mut s: usize, p: usize, ep: usize) -> Result<Option<usize>, PatternError> {
        loop {
            if let Some(e) = self.do_match(s, ep + 1)? {
                return Ok(Some(e));
            }
            if self.single_match(s, p, ep)? {
                s += 1;
            } else {
                return Ok(None);
            }
        }
    }

    fn start_capture(&mut self, s: usize, p: usize, what: isize) -> Result<Option<usize>, PatternError> {
        if self.level >= MAX_CAPTURES {
            return Err(PatternError::TooManyCaptures);
        }
        self.capture[self.level] = Cap { init: s, len: what };
        self.level += 1;
        let res = self.do_match(s, p)?;
        if res.is_none() {
            self.level -= 1;
        }
        Ok(res)
    }

    fn end_capture(&mut self, s: usize, p: usize) -> Result<Option<usize>, PatternError> {
        let l = (0..self.level)
            .rev()
            .find(|&l| self.capture[l].len == CAP_UNFINISHED)
            .ok_or(PatternError::InvalidPatternCapture)?;
        self.capture[l].len = (s - self.capture[l].init) as isize;
        let res = self.do_match(s, p)?;
        if res.is_none() {
            self.capture[l].len = CAP_UNFINISHED;
        }
        Ok(res)
    }

    /// A back-reference `%1`–`%9` (`digit` is the byte after `%`).
    fn match_capture(&mut self, s: usize, digit: u8) -> Result<Option<usize>, PatternError> {
        let l = i64::from(digit) - i64::from(b'1');
        let idx = usize::try_from(l).ok().filter(|&l| l < self.level && self.capture[l].len != CAP_UNFINISHED);
        let Some(l) = idx else {
            return Err(PatternError::InvalidCaptureIndex(l + 1));
        };
        let cap = self.capture[l];
        // A position capture has no text: as in Lua, referring back to it never matches.
        let Ok(len) = usize::try_from(cap.len) else {
            return Ok(None);
        };
        if self.src.len() - s < len {
            return Ok(None);
        }
        self.meter.step(len as u64)?;
        if self.src[cap.init..cap.init + len] == self.src[s..s + len] {
            Ok(Some(s + len))
        } else {
            Ok(None)
        }
    }

    /// Matches the pattern from `p` against the subject from `s`; the end of the match, or `None`.
    pub fn do_match(&mut self, s: usize, p: usize) -> Result<Option<usize>, PatternError> {
        if self.depth == 0 {
            return Err(PatternError::TooComplex);
        }
        self.depth -= 1;
        let res = self.match_loop(s, p);
        self.depth += 1;
        res
    }

    fn match_loop(&mut self, mut s: usize, mut p: usize) -> Result<Option<usize>, PatternError> {
        loop {
            self.meter.step(1)?;
            if p == self.pat.len() {
                return Ok(Some(s));
            }
            match self.pat[p] {
                b'(' => {
                    return if at(self.pat, p + 1) == b')' {
                        self.start_capture(s, p + 2, CAP_POSITION)
                    } else {
                        self.start_capture(s, p + 1, CAP_UNFINISHED)
                    };
                }
                b')' => return self.end_capture(s, p + 1),
                b'$' if p + 1 == self.pat.len() => {
                    return Ok((s == self.src.len()).then_some(s));
                }
                ESC if at(self.pat, p + 1) == b'b' => match self.match_balance(s, p + 2)? {
                    Some(e) => {
                        s = e;
                        p += 4;
                        continue;
                    }
                    None => return Ok(None),
                },
                ESC if at(self.pat, p + 1) == b'f' => {
                    p += 2;
                    if at(self.pat, p) != b'[' {
                        return Err(PatternError::MissingFrontierBracket);
                    }
                    let ep = self.class_end(p)?;
                    let prev = if s == 0 { 0 } else { self.src[s - 1] };
                    let cur = at(self.src, s);
                    if !self.match_bracket_class(prev, p, ep - 1) && self.match_bracket_class(cur, p, ep - 1) {
                        p = ep;
                        continue;
                    }
                    return Ok(None);
                }
                ESC if at(self.pat, p + 1).is_ascii_digit() => match self.match_capture(s, self.pat[p + 1])? {
                    Some(e) => {
                        s = e;
                        p += 2;
                        continue;
                    }
                    None => return Ok(None),
                },
                _ => {
                    let ep = self.class_end(p)?;
                    let suffix = at(self.pat, ep);
                    if !self.single_match(s, p, ep)? {
                        if matches!(suffix, b'*' | b'?' | b'-') {
                            p = ep + 1;
                            continue;
                        }
                        return Ok(None);
                    }
                    match suffix {
                        b'?' => {
                            if let Some(e) = self.do_match(s + 1, ep + 1)? {
                                return Ok(Some(e));
                            }
                            p = ep + 1;
                        }
                        b'+' => return self.max_expand(s + 1, p, ep),
                        b'*' => return self.max_expand(s, p, ep),
                        b'-' => return self.min_expand(s, p, ep),
                        _ => {
                            s += 1;
                            p = ep;
                        }
                    }
                }
            }
        }
    }

    /// Capture `i` of a match `s..e` (Lua's `get_onecapture`): with no captures, index 0 is the whole
    /// match.
    pub fn capture(&self, i: usize, s: usize, e: usize) -> Result<Capture, PatternError> {
        if i >= self.level {
            if i != 0 {
                return Err(PatternError::InvalidCaptureIndex(i as i64 + 1));
            }
            return Ok(Capture::Bytes(s..e));
        }
        let cap = self.capture[i];
        match cap.len {
            CAP_UNFINISHED => Err(PatternError::UnfinishedCapture),
            CAP_POSITION => Ok(Capture::Position(cap.init + 1)),
            len => Ok(Capture::Bytes(cap.init..cap.init + len as usize)),
        }
    }

    /// How many values a match returns: its captures, or the whole match when the pattern has none
    /// and `whole` is set (`match`/`gmatch`; `find` passes `false` and returns the bounds instead).
    pub fn capture_count(&self, whole: bool) -> usize {
        if self.level == 0 && whole {
            1
        } else {
            self.level
        }
    }

    /// All captures of a match `s..e` (see [`Matcher::capture_count`]).
    pub fn captures(&self, s: usize, e: usize, whole: bool) -> Result<Vec<Capture>, PatternError> {
        (0..self.capture_count(whole)).map(|i| self.capture(i, s, e)).collect()
    }
}

/// Searches `pat` in `src` from byte offset `init` the way `string.find`/`string.match` do (a leading
/// `^` anchors): the first match's bounds `(start, end)` and the matcher holding its captures.
pub fn search<'s, 'm, 'b>(
    src: &'s [u8],
    pat: &'s [u8],
    init: usize,
    meter: &'m mut Meter<'b>,
) -> Result<(Option<(usize, usize)>, Matcher<'s, 'm, 'b>), PatternError> {
    let (anchor, pat) = match pat.first() {
        Some(b'^') => (true, &pat[1..]),
        _ => (false, pat),
    };
    let mut m = Matcher::new(src, pat, meter);
    let mut s = init;
    loop {
        m.reset();
        if let Some(e) = m.do_match(s, 0)? {
            return Ok((Some((s, e)), m));
        }
        s += 1;
        if anchor || s > src.len() {
            return Ok((None, m));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(src: &str, pat: &str) -> Result<Option<(usize, usize, Vec<Capture>)>, PatternError> {
        let mut meter = Meter::new(None);
        let (found, m) = search(src.as_bytes(), pat.as_bytes(), 0, &mut meter)?;
        match found {
            None => Ok(None),
            Some((s, e)) => Ok(Some((s + 1, e, m.captures(s, e, false)?))),
        }
    }

    /// `string.match` semantics: captures as text (positions as numbers).
    fn matched(src: &str, pat: &str) -> Result<Option<Vec<String>>, PatternError> {
        let mut meter = Meter::new(None);
        let (found, m) = search(src.as_bytes(), pat.as_bytes(), 0, &mut meter)?;
        let Some((s, e)) = found else { return Ok(None) };
        Ok(Some(
            m.captures(s, e, true)?
                .into_iter()
                .map(|c| match c {
                    Capture::Bytes(r) => src[r].to_string(),
                    Capture::Position(p) => p.to_string(),
                })
                .collect(),
        ))
    }

    fn one(src: &str, pat: &str) -> Option<String> {
        matched(src, pat).unwrap().map(|v| v[0].clone())
    }

    #[test]
    fn single_items_and_classes() {
        assert_eq!(one("hello world", "o w"), Some("o w".into()));
        assert_eq!(one("abc123", "%d+"), Some("123".into()));
        assert_eq!(one("abc123", "%D+"), Some("abc".into()));
        assert_eq!(one("  x", "%S"), Some("x".into()));
        assert_eq!(one("a\x0bb", "%s"), Some("\x0b".into()));
        assert_eq!(one("Hello", "%u%l+"), Some("Hello".into()));
        assert_eq!(one("a.b", "%."), Some(".".into()));
        assert_eq!(one("a+b", "%p"), Some("+".into()));
        assert_eq!(one("0x1F", "%x+$"), Some("1F".into()));
        assert_eq!(one("\x01a", "%c"), Some("\x01".into()));
        assert_eq!(one("a_b", "%w+"), Some("a".into()));
        assert_eq!(one("abc", "%g+"), Some("abc".into()));
        assert_eq!(one("abc", "%z"), None, "unknown class letters stand for themselves");
    }

    #[test]
    fn sets() {
        assert_eq!(one("hello", "[aeiou]+"), Some("e".into()));
        assert_eq!(one("hello", "[^aeiou]+"), Some("h".into()));
        assert_eq!(one("x-y", "[a-]+"), Some("-".into()));
        assert_eq!(one("2023-01", "[%d-]+"), Some("2023-01".into()));
        assert_eq!(one("a]b", "[]]"), Some("]".into()));
        assert_eq!(one("a]b", "[^]]+"), Some("a".into()));
        assert_eq!(one("f5", "[a-f0-9]+"), Some("f5".into()));
        assert_eq!(one("a%b", "[%%]"), Some("%".into()));
    }

    #[test]
    fn quantifiers() {
        assert_eq!(one("aaab", "a*"), Some("aaa".into()));
        assert_eq!(one("aaab", "a-b"), Some("aaab".into()));
        assert_eq!(one("aaab", "a-"), Some("".into()));
        assert_eq!(one("b", "a?b"), Some("b".into()));
        assert_eq!(one("ab", "a?b"), Some("ab".into()));
        assert_eq!(one("b", "a+"), None);
        assert_eq!(one("  trim me  ", "^%s*(.-)%s*$"), Some("trim me".into()));
    }

    #[test]
    fn anchors() {
        assert_eq!(find("abc", "^b").unwrap(), None);
        assert_eq!(find("abc", "^a").unwrap(), Some((1, 1, vec![])));
        assert_eq!(find("abc", "c$").unwrap(), Some((3, 3, vec![])));
        assert_eq!(one("a$b", "$b"), Some("$b".into()), "'$' not at the end is literal");
        assert_eq!(one("a^b", "a^"), Some("a^".into()), "'^' not at the start is literal");
    }

    #[test]
    fn captures_and_positions() {
        assert_eq!(matched("key = value", "(%w+)%s*=%s*(%w+)").unwrap(), Some(vec!["key".into(), "value".into()]));
        assert_eq!(matched("hello", "()ll()").unwrap(), Some(vec!["3".into(), "5".into()]));
        assert_eq!(find("hello", "(l)(l)").unwrap(), Some((3, 4, vec![Capture::Bytes(2..3), Capture::Bytes(3..4)])));
        assert_eq!(matched("abab", "((a)(b))").unwrap(), Some(vec!["ab".into(), "a".into(), "b".into()]));
    }

    #[test]
    fn back_references_balance_frontier() {
        assert_eq!(one(r#"say "hi" now"#, r#"(["'])(.-)%1"#), Some("\"".into()));
        assert_eq!(matched(r#"x='a"b'"#, r#"(["'])(.-)%1"#).unwrap().unwrap()[1], "a\"b");
        assert_eq!(one("f(a(b)c) d", "%b()"), Some("(a(b)c)".into()));
        assert_eq!(one("f(a(b c", "%b()"), None);
        assert_eq!(one("THE (quick) fox", "%f[%a]%a+"), Some("THE".into()));
        assert_eq!(one("THE (quick) fox", "%f[%l]%a+"), Some("quick".into()));
        assert_eq!(one("word", "%f[%W]"), Some("".into()), "frontier at the end sees NUL");
        assert_eq!(one("aa", "()%1"), None, "a position capture never matches as a back-reference");
    }

    #[test]
    fn malformed_patterns() {
        let err = |p: &str| matched("abc", p).unwrap_err().to_string();
        assert_eq!(err("%"), "malformed pattern (ends with '%')");
        assert_eq!(err("[a"), "malformed pattern (missing ']')");
        assert_eq!(err("[a%"), "malformed pattern (missing ']')");
        assert_eq!(err("%b"), "malformed pattern (missing arguments to '%b')");
        assert_eq!(err("%f"), "missing '[' after '%f' in pattern");
        assert_eq!(err("%1"), "invalid capture index %1");
        assert_eq!(err("(a%1)"), "invalid capture index %1");
        assert_eq!(err("%0"), "invalid capture index %0");
        assert_eq!(err("a)"), "invalid pattern capture");
        assert_eq!(err("(a"), "unfinished capture");
        assert_eq!(err(&"()".repeat(33)), "too many captures");
        assert_eq!(matched(&"a".repeat(300), &"a?".repeat(300)).unwrap_err(), PatternError::TooComplex);
    }

    #[test]
    fn plain_search() {
        let mut meter = Meter::new(None);
        assert_eq!(plain_find(b"hello world", b"o w", 0, &mut meter).unwrap(), Some(4));
        assert_eq!(plain_find(b"hello world", b"o", 5, &mut meter).unwrap(), Some(7));
        assert_eq!(plain_find(b"hello", b"", 3, &mut meter).unwrap(), Some(3));
        assert_eq!(plain_find(b"hello", b"xyz", 0, &mut meter).unwrap(), None);
        assert_eq!(plain_find(b"aaa", b"aaaa", 0, &mut meter).unwrap(), None);
        assert!(!has_specials(b"plain text"));
        assert!(has_specials(b"a.b"));
    }

    #[test]
    fn start_positions() {
        assert_eq!(start_position(1, 5), 1);
        assert_eq!(start_position(0, 5), 1);
        assert_eq!(start_position(-1, 5), 5);
        assert_eq!(start_position(-5, 5), 1);
        assert_eq!(start_position(-6, 5), 1);
        assert_eq!(start_position(9, 5), 9);
        assert_eq!(start_position(i64::MIN, 5), 1);
    }

    #[test]
    fn catastrophic_patterns_run_out_of_budget() {
        let budget = Budget::new(5_000_000);
        let mut meter = Meter::new(Some(&budget));
        let src = "a".repeat(20);
        let pat = format!("{}b", ".-".repeat(100));
        let err = search(src.as_bytes(), pat.as_bytes(), 0, &mut meter).err();
        assert_eq!(err, Some(PatternError::Timeout));
        assert!(budget.exhausted());
        // Stopped within a chunk of the budget.
        assert!(meter.total() <= 5_000_000 + CHARGE_EVERY, "{}", meter.total());
    }

    #[test]
    fn every_step_is_counted() {
        let mut meter = Meter::new(None);
        let _ = search(b"aaaaaaaaaa", b"a-a-a-b", 0, &mut meter).unwrap();
        let small = meter.total();
        let mut meter = Meter::new(None);
        let _ = search(&[b'a'; 40], b"a-a-a-b", 0, &mut meter).unwrap();
        assert!(meter.total() > small * 16, "cubic growth is visible: {small} vs {}", meter.total());
    }
}
