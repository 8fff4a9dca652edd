//! `ui.json_encode` / `ui.json_decode` (docs/lua-api.md, docs/variables.md "Values").
//!
//! Both are bounded by what the script already owns: decoding builds Lua values directly from the text
//! (no intermediate tree in Rust), so everything it allocates counts against the session's Lua heap
//! limit; encoding never allocates more than [`MAX_ENCODED`] bytes and encodes sparse integer keys as
//! an object instead of padding an array with nulls.

use std::collections::HashSet;
use std::fmt;

use mlua::{Lua, Table, Value};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as Json};

use crate::tracker::value::MAX_VALUE_DEPTH;

/// The largest text `ui.json_encode` produces (the default Lua heap limit: a larger string could not be
/// handed back to the script anyway).
pub const MAX_ENCODED: usize = 64 << 20;

/// How deep `ui.json_encode` follows nested tables.
const MAX_ENCODE_DEPTH: usize = 128;

/// Why a JSON conversion failed. The message is what the script gets as the second result.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("{0}")]
    Syntax(String),
    #[error("limit-exceeded: JSON nested deeper than {0}")]
    TooDeep(usize),
    #[error("cannot encode a table cycle")]
    Cycle,
    #[error("limit-exceeded: encoded JSON larger than {MAX_ENCODED} bytes")]
    TooLarge,
    #[error("{0}")]
    Lua(#[from] mlua::Error),
}

/// JSON text → Lua: `null` → nil (holes in arrays), integers fitting i64 → integers, objects → tables.
/// `{"obj":N}` stays a plain table: only written values resolve object ids.
pub fn decode(lua: &Lua, text: &str) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = LuaSeed { lua, depth: 0 }.deserialize(&mut de).map_err(unwrap_seed_error)?;
    de.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
    Ok(value)
}

/// The seed reports Lua failures and the depth limit through serde's text errors; this turns the two
/// sentinels back into their variants.
fn unwrap_seed_error(e: serde_json::Error) -> JsonError {
    let text = e.to_string();
    if text.starts_with(DEPTH_SENTINEL) {
        JsonError::TooDeep(MAX_VALUE_DEPTH)
    } else if text.starts_with(MEMORY_SENTINEL) {
        JsonError::Lua(mlua::Error::MemoryError("not enough memory".into()))
    } else {
        JsonError::Syntax(text)
    }
}

const DEPTH_SENTINEL: &str = "\u{1}depth";
const MEMORY_SENTINEL: &str = "\u{1}memory";

fn seed_error<E: de::Error>(e: mlua::Error) -> E {
    match e {
        mlua::Error::MemoryError(_) => E::custom(MEMORY_SENTINEL),
        other => E::custom(other),
    }
}

/// Builds one Lua value straight from the parser's events.
struct LuaSeed<'a> {
    lua: &'a Lua,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for LuaSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for LuaSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Boolean(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Integer(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Number(v as f64), Value::Integer))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Number(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.lua.create_string(v).map(Value::String).map_err(seed_error)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Nil)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_VALUE_DEPTH {
            return Err(de::Error::custom(DEPTH_SENTINEL));
        }
        let t = self.lua.create_table().map_err(seed_error)?;
        let mut i: i64 = 0;
        while let Some(item) = seq.next_element_seed(LuaSeed { lua: self.lua, depth: self.depth + 1 })? {
            i += 1;
            t.raw_set(i, item).map_err(seed_error)?;
        }
        Ok(Value::Table(t))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_VALUE_DEPTH {
            return Err(de::Error::custom(DEPTH_SENTINEL));
        }
        let t = self.lua.create_table().map_err(seed_error)?;
        while let Some(key) = map.next_key_seed(LuaSeed { lua: self.lua, depth: self.depth + 1 })? {
            let value = map.next_value_seed(LuaSeed { lua: self.lua, depth: self.depth + 1 })?;
            t.raw_set(key, value).map_err(seed_error)?;
        }
        Ok(Value::Table(t))
    }
}

/// Lua → JSON text: sequences → arrays (holes → null), other tables → objects with sorted keys (numeric
/// keys as decimal strings; `_` keys, functions and userdata skipped), integral floats → integers;
/// a cycle is an error. A table of positive integer keys that is mostly holes (largest key more than
/// twice the count, past 16) is an object, so `{[2^40] = 1}` costs one entry, not 2^40 nulls.
pub fn encode(v: &Value) -> Result<String, JsonError> {
    let mut seen = HashSet::new();
    let json = to_json(v, &mut seen, 0)?;
    let text = json.to_string();
    if text.len() > MAX_ENCODED {
        return Err(JsonError::TooLarge);
    }
    Ok(text)
}

fn number(f: f64) -> Json {
    if f.is_finite() && f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
        Json::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null)
    }
}

fn to_json(v: &Value, seen: &mut HashSet<usize>, depth: usize) -> Result<Json, JsonError> {
    if depth > MAX_ENCODE_DEPTH {
        return Err(JsonError::TooDeep(MAX_ENCODE_DEPTH));
    }
    Ok(match v {
        Value::Nil => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Integer(i) => Json::from(*i),
        Value::Number(f) => number(*f),
        Value::String(s) => Json::String(s.to_string_lossy()),
        Value::Table(t) => {
            let ptr = v.to_pointer() as usize;
            if !seen.insert(ptr) {
                return Err(JsonError::Cycle);
            }
            let out = table_to_json(t, seen, depth)?;
            seen.remove(&ptr);
            out
        }
        _ => Json::Null,
    })
}

fn table_to_json(t: &Table, seen: &mut HashSet<usize>, depth: usize) -> Result<Json, JsonError> {
    let mut ints: Vec<(i64, Value)> = Vec::new();
    let mut named: Vec<(String, Value)> = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        if matches!(v, Value::Function(_) | Value::UserData(_) | Value::LightUserData(_) | Value::Thread(_)) {
            continue;
        }
        match k {
            Value::Integer(i) if i >= 1 => ints.push((i, v)),
            Value::Integer(i) => named.push((i.to_string(), v)),
            Value::Number(f) => named.push((number(f).to_string(), v)),
            Value::String(s) => {
                let s = s.to_string_lossy();
                if !s.starts_with('_') {
                    named.push((s, v));
                }
            }
            _ => {}
        }
    }
    let largest = ints.iter().map(|(i, _)| *i).max().unwrap_or(0);
    let dense = largest <= 16 || largest / 2 <= ints.len() as i64;
    if named.is_empty() && dense {
        let len = largest as usize;
        let mut arr = vec![Json::Null; len];
        for (i, v) in ints {
            arr[(i - 1) as usize] = to_json(&v, seen, depth + 1)?;
        }
        return Ok(Json::Array(arr));
    }
    for (i, v) in ints {
        named.push((i.to_string(), v));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut map = Map::new();
    for (k, v) in named {
        map.insert(k, to_json(&v, seen, depth + 1)?);
    }
    Ok(Json::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let lua = Lua::new();
        let enc = |code: &str| encode(&lua.load(code).eval::<Value>().unwrap());
        assert_eq!(enc("return {1, 2, {3, 4}}").unwrap(), "[1,2,[3,4]]");
        assert_eq!(enc("return {1, nil, 3}").unwrap(), "[1,null,3]");
        assert_eq!(enc("return {b = 1, a = 'x', _hidden = 2, f = function() end}").unwrap(), r#"{"a":"x","b":1}"#);
        assert_eq!(enc("return {a = 1, [2] = 'two'}").unwrap(), r#"{"2":"two","a":1}"#);
        assert_eq!(enc("return 10 / 2").unwrap(), "5");
        assert_eq!(enc("return {}").unwrap(), "[]");
        assert!(enc("local t = {} t.self = t return t").is_err());
        let v = decode(&lua, r#"{"a":[1,null,3],"b":2.5,"c":{"obj":1}}"#).unwrap();
        let t = v.as_table().unwrap();
        assert_eq!(t.get::<Table>("a").unwrap().raw_get::<i64>(3).unwrap(), 3);
        assert_eq!(t.get::<f64>("b").unwrap(), 2.5);
        assert_eq!(t.get::<Table>("c").unwrap().get::<i64>("obj").unwrap(), 1);
        assert!(decode(&lua, "{").is_err());
        assert!(decode(&lua, "[1] x").is_err(), "trailing text");
    }

    #[test]
    fn sparse_tables_are_objects_and_never_allocate_their_largest_key() {
        let lua = Lua::new();
        let enc = |code: &str| encode(&lua.load(code).eval::<Value>().unwrap());
        assert_eq!(enc("return {[2^40] = 1}").unwrap(), r#"{"1099511627776":1}"#);
        assert_eq!(enc("return {[math.maxinteger] = 1}").unwrap(), format!(r#"{{"{}":1}}"#, i64::MAX));
        assert_eq!(enc("return {[1] = 1, [20] = 2}").unwrap(), r#"{"1":1,"20":2}"#);
        assert_eq!(enc("return {[3] = 1}").unwrap(), "[null,null,1]", "small holes stay an array");
    }

    #[test]
    fn decode_counts_against_the_lua_heap_and_depth_is_exact() {
        let lua = Lua::new();
        lua.set_memory_limit(8 << 20).unwrap();
        let big = format!("[{}]", vec!["\"xxxxxxxxxxxxxxxx\""; 1_000_000].join(","));
        assert!(matches!(decode(&lua, &big), Err(JsonError::Lua(mlua::Error::MemoryError(_)))));
        lua.set_memory_limit(0).unwrap();
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(decode(&lua, &nested(MAX_VALUE_DEPTH)).is_ok());
        assert!(matches!(decode(&lua, &nested(MAX_VALUE_DEPTH + 1)), Err(JsonError::TooDeep(_))));
        assert!(matches!(decode(&lua, &nested(100_000)), Err(JsonError::TooDeep(_))));
    }
}
