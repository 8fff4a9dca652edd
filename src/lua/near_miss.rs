//! "Did you mean …?" for misspelt field names (docs/attributes.md "Errors on the page").
//!
//! A binding to a field that does not exist reads as nil, and nil before a name is not an error: a
//! field may be unset until the app fills it. So `ui-value="vots"` on an object with `votes` shows an
//! empty span and no message anywhere, the most common typo an author makes. In development mode
//! (`--dev`, `--watch`) the resolver asks this module, for every nil it reads from a table, whether the
//! name is one or two letters away from a name the object or its prototypes do have; if so the read is
//! a `path-failure` naming the likely field, which the page's error panel and the log show. Production
//! keeps nil: the check costs a scan of the object's keys per nil read.

use mlua::{Table, Value};

/// Keys looked at per check, over the object and its prototype chain: a big map used as an object
/// must not make every nil read scan all of it.
const MAX_KEYS: usize = 256;
/// Prototype levels followed through `__index` tables.
const MAX_DEPTH: usize = 8;
/// Names longer than this are never compared (the distance is quadratic in the length).
const MAX_NAME: usize = 64;

/// A name close to the one asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    /// The name that exists.
    pub name: String,
    /// Whether it holds a function (so the binding probably wants `name()`).
    pub is_function: bool,
}

impl Suggestion {
    /// How the suggestion reads in a message: `votes` or `vote()`.
    pub fn spelled(&self) -> String {
        if self.is_function {
            format!("{}()", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// The names closest to `missing` among the string keys of `object` and of the tables its
/// metatables' `__index` fields lead to (raw access only: no metamethod runs), if any is close enough
/// to be a typo. At most three, those of the kind the path wants first (a field for `name`, a function
/// for `name()`), then alphabetically.
pub fn closest(object: &Table, missing: &[u8], wants_function: bool) -> Vec<Suggestion> {
    if missing.len() < 3 || missing.len() > MAX_NAME {
        return Vec::new();
    }
    let limit = if missing.len() <= 5 { 1 } else { 2 };
    let mut best_distance = limit;
    let mut found: Vec<(usize, Suggestion)> = Vec::new();
    let mut seen = 0usize;
    let mut table = object.clone();
    'chain: for _ in 0..MAX_DEPTH {
        for pair in table.clone().pairs::<Value, Value>() {
            let Ok((Value::String(key), value)) = pair else { continue };
            seen += 1;
            if seen > MAX_KEYS {
                break 'chain;
            }
            let key = key.as_bytes();
            if key.starts_with(b"__") || key.len() > MAX_NAME || &*key == missing {
                continue;
            }
            let d = distance(missing, &key);
            if d == 0 || d > best_distance {
                continue;
            }
            best_distance = d;
            let name = String::from_utf8_lossy(&key).into_owned();
            if !found.iter().any(|(_, s)| s.name == name) {
                found.push((d, Suggestion { name, is_function: matches!(value, Value::Function(_)) }));
            }
        }
        let next = table.metatable().and_then(|mt| mt.raw_get::<Value>("__index").ok());
        match next {
            Some(Value::Table(t)) if t != table => table = t,
            _ => break,
        }
    }
    found.retain(|(d, _)| *d == best_distance);
    let mut found: Vec<Suggestion> = found.into_iter().map(|(_, s)| s).collect();
    found.sort_by(|a, b| (a.is_function != wants_function, &a.name).cmp(&(b.is_function != wants_function, &b.name)));
    found.truncate(3);
    found
}

/// The `type` an object's prototype chain gives it (raw reads), for messages.
pub fn type_name(object: &Table) -> Option<String> {
    let mut table = object.clone();
    for _ in 0..MAX_DEPTH {
        if let Ok(Value::String(s)) = table.raw_get::<Value>("type") {
            return Some(s.to_string_lossy());
        }
        match table.metatable().and_then(|mt| mt.raw_get::<Value>("__index").ok()) {
            Some(Value::Table(t)) if t != table => table = t,
            _ => return None,
        }
    }
    None
}

/// "`votes`", "`votes` or `vote()`": the suggestions as a message reads them.
pub fn spelled(suggestions: &[Suggestion]) -> String {
    let names: Vec<String> = suggestions.iter().map(|s| format!("`{}`", s.spelled())).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// Edit distance with adjacent transpositions (optimal string alignment), ASCII case ignored except
/// that a name differing only in case is distance 1, not 0 (it is still a different field).
fn distance(a: &[u8], b: &[u8]) -> usize {
    if a.eq_ignore_ascii_case(b) {
        return usize::from(a != b);
    }
    let lower = |c: u8| c.to_ascii_lowercase();
    let (n, m) = (a.len(), b.len());
    // Three rows: the one before the previous (for transpositions), the previous, the current.
    let mut older = vec![0usize; m + 1];
    let mut prev: Vec<usize> = (0..=m).collect();
    let mut cur = vec![0usize; m + 1];
    for i in 1..=n {
        cur[0] = i;
        for j in 1..=m {
            let cost = usize::from(lower(a[i - 1]) != lower(b[j - 1]));
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1]) {
                d = d.min(older[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut older, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[m]
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::Lua;

    #[test]
    fn distances_count_edits_and_swaps() {
        assert_eq!(distance(b"vots", b"votes"), 1);
        assert_eq!(distance(b"totl", b"total"), 1);
        assert_eq!(distance(b"vtoes", b"votes"), 1);
        assert_eq!(distance(b"Votes", b"votes"), 1);
        assert_eq!(distance(b"votes", b"votes"), 0);
        assert_eq!(distance(b"leadr", b"leader"), 1);
        assert_eq!(distance(b"options", b"opts"), 3);
        assert_eq!(distance(b"", b"abc"), 3);
    }

    fn poll(lua: &Lua) -> Table {
        lua.load(
            r#"
            local Proto = {type = "Option", vote = function(self) end, label = "x"}
            Proto.__index = Proto
            return setmetatable({votes = 2}, Proto)
            "#,
        )
        .eval()
        .unwrap()
    }

    #[test]
    fn a_misspelt_field_finds_the_field_on_the_object_and_the_method_on_its_prototype() {
        let lua = Lua::new();
        let option = poll(&lua);
        // `vots` is one edit from both `votes` and `vote`: a field path lists the field first.
        let s = closest(&option, b"vots", false);
        assert_eq!(spelled(&s), "`votes` or `vote()`");
        assert_eq!(spelled(&closest(&option, b"vots", true)), "`vote()` or `votes`");
        assert_eq!(spelled(&closest(&option, b"votse", false)), "`votes` or `vote()`");
        assert_eq!(spelled(&closest(&option, b"lable", false)), "`label`");
    }

    #[test]
    fn far_short_or_present_names_suggest_nothing() {
        let lua = Lua::new();
        let option = poll(&lua);
        assert!(closest(&option, b"description", false).is_empty());
        assert!(closest(&option, b"vo", false).is_empty(), "two letters are too short to guess from");
        assert!(closest(&option, b"__inde", false).is_empty(), "metamethod fields are never suggested");
    }

    #[test]
    fn the_type_comes_from_the_prototype_chain() {
        let lua = Lua::new();
        assert_eq!(type_name(&poll(&lua)).as_deref(), Some("Option"));
        assert_eq!(type_name(&lua.create_table().unwrap()), None);
    }

    #[test]
    fn only_the_closest_names_are_kept() {
        let lua = Lua::new();
        let t: Table = lua.load("return {counter = 1, counted = 2, count = 3}").eval().unwrap();
        // `countr` is one edit from `counter` and `count`, two from `counted`.
        assert_eq!(spelled(&closest(&t, b"countr", false)), "`count` or `counter`");
    }
}
