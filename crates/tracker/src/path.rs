//! The path grammar (docs/variables.md "Paths"): `a.b`, 0-based indices, `..`, `m()`, `m(_)`.
//!
//! Parsing is pure and happens once at create; names are interned by the resolver afterwards.

use super::VarError;
use crate::protocol::ErrorCode;

/// One step of a path.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Segment {
    /// `name`: a field.
    Name(String),
    /// `0`, `1`, …: a 0-based element.
    Index(u32),
    /// `m()`: call with no argument (read), or `m(self, v)` / `m(self)` on write.
    Call(String),
    /// `m(_)`: call with the written value; never called on reads.
    CallArg(String),
    /// `..`: one step back.
    Up,
}

/// A parsed path.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Path {
    pub segments: Vec<Segment>,
}

impl Path {
    pub fn last(&self) -> Option<&Segment> {
        self.segments.last()
    }
}

/// The path as text that [`parse_path`] reads back to the same segments: `.` between segments, none
/// around `..` (which is its own separator), `m()`/`m(_)` for calls.
impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut previous: Option<&Segment> = None;
        for segment in &self.segments {
            if !matches!(segment, Segment::Up) && previous.is_some_and(|p| !matches!(p, Segment::Up)) {
                f.write_str(".")?;
            }
            match segment {
                Segment::Name(name) => f.write_str(name)?,
                Segment::Index(i) => write!(f, "{i}")?,
                Segment::Call(name) => write!(f, "{name}()")?,
                Segment::CallArg(name) => write!(f, "{name}(_)")?,
                Segment::Up => f.write_str("..")?,
            }
            previous = Some(segment);
        }
        Ok(())
    }
}

fn bad(path: &str, why: &str) -> VarError {
    VarError::new(ErrorCode::BadMessage, format!("bad path {path:?}: {why}"))
}

/// Parses a path (without its `?query`). Errors are `bad-message`.
pub fn parse_path(text: &str) -> Result<Path, VarError> {
    if text.is_empty() {
        return Err(bad(text, "empty"));
    }
    let b = text.as_bytes();
    let mut segments = Vec::new();
    let mut i = 0;
    // True when a segment must follow (start, or after a separator).
    let mut need_segment = true;
    while i < b.len() {
        if b[i..].starts_with(b"..") {
            segments.push(Segment::Up);
            i += 2;
            // The separator after `..` is optional; `..` itself may follow directly.
            if i < b.len() && b[i] == b'.' && !b[i..].starts_with(b"..") {
                i += 1;
                need_segment = true;
                if i == b.len() {
                    return Err(bad(text, "ends with a separator"));
                }
            } else {
                need_segment = false;
            }
            continue;
        }
        if b[i] == b'.' {
            if need_segment {
                return Err(bad(text, "empty segment"));
            }
            i += 1;
            need_segment = true;
            if i == b.len() {
                return Err(bad(text, "ends with a separator"));
            }
            continue;
        }
        if !need_segment && !segments.last().is_some_and(|s| *s == Segment::Up) {
            return Err(bad(text, "unexpected character after a segment"));
        }
        let start = i;
        while i < b.len() && !matches!(b[i], b'.' | b'(' | b')' | b'?') {
            i += 1;
        }
        let name = &text[start..i];
        if name.is_empty() {
            return Err(bad(text, "empty name"));
        }
        if i < b.len() && b[i] == b'(' {
            if b[i..].starts_with(b"()") {
                segments.push(Segment::Call(name.to_string()));
                i += 2;
            } else if b[i..].starts_with(b"(_)") {
                segments.push(Segment::CallArg(name.to_string()));
                i += 3;
            } else {
                return Err(bad(text, "only m() and m(_) calls are allowed"));
            }
        } else if i < b.len() && matches!(b[i], b')' | b'?') {
            return Err(bad(text, "unexpected character"));
        } else {
            segments.push(index_or_name(name));
        }
        need_segment = false;
    }
    Ok(Path { segments })
}

/// Browser creates arrive split already (the protocol layer does it); Lua and backend creates may
/// still carry a query, so the tracker splits again with the protocol's implementation.
pub use crate::protocol::message::split_query;

fn index_or_name(name: &str) -> Segment {
    let canonical = name == "0" || (name.as_bytes()[0] != b'0' && name.bytes().all(|c| c.is_ascii_digit()));
    match (canonical, name.parse::<u32>()) {
        (true, Ok(n)) => Segment::Index(n),
        _ => Segment::Name(name.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::Segment::*;
    use super::*;

    fn p(s: &str) -> Vec<Segment> {
        parse_path(s).unwrap_or_else(|e| panic!("{s}: {e}")).segments
    }

    fn n(s: &str) -> Segment {
        Name(s.to_string())
    }

    #[test]
    fn names_indices_calls() {
        assert_eq!(p("a.b"), vec![n("a"), n("b")]);
        assert_eq!(p("items.0.name"), vec![n("items"), Index(0), n("name")]);
        assert_eq!(p("fullName()"), vec![Call("fullName".into())]);
        assert_eq!(p("save(_)"), vec![CallArg("save".into())]);
        assert_eq!(p("a.m().b"), vec![n("a"), Call("m".into()), n("b")]);
        assert_eq!(p("01"), vec![n("01")]);
        assert_eq!(p("@x"), vec![n("@x")]);
        assert_eq!(p("12"), vec![Index(12)]);
        assert_eq!(p("99999999999"), vec![n("99999999999")]);
    }

    #[test]
    fn dots_are_greedy() {
        assert_eq!(p("..name"), vec![Up, n("name")]);
        assert_eq!(p("...name"), vec![Up, n("name")]);
        assert_eq!(p("a..b"), vec![n("a"), Up, n("b")]);
        assert_eq!(p("....x"), vec![Up, Up, n("x")]);
        assert_eq!(p(".."), vec![Up]);
        assert_eq!(p("a.."), vec![n("a"), Up]);
        assert_eq!(p("..index"), vec![Up, n("index")]);
    }

    #[test]
    fn queries_split() {
        let (path, props) = split_query("x?wrapper=W&flag&a%20b=%41&p:high=1");
        assert_eq!(path, "x");
        let got: Vec<_> = props.iter().map(|p| (p.name.as_str(), p.value.as_str(), p.priority)).collect();
        assert_eq!(
            got,
            vec![
                ("wrapper", "W", None),
                ("flag", "true", None),
                ("a b", "A", None),
                ("p", "1", Some(crate::protocol::Priority::High))
            ]
        );
        assert_eq!(split_query("plain"), ("plain", vec![]));
    }

    #[test]
    fn display_reads_back() {
        for text in ["a.b", "items.0.name", "..name", "a..b", "....x", "a..", "m().n(_)", "01", "@x"] {
            let path = parse_path(text).unwrap();
            assert_eq!(parse_path(&path.to_string()).unwrap(), path, "{text}");
        }
        assert_eq!(parse_path("...name").unwrap().to_string(), "..name");
    }

    #[test]
    fn refused() {
        for bad in ["", "a.", ".a", "a..b.", "delete(contact)", "m(x)", "m(", "a)b", "m()x", "a.()", "x?y", "..."] {
            let e = parse_path(bad).expect_err(bad);
            assert_eq!(e.code, ErrorCode::BadMessage, "{bad}");
        }
    }
}
