//! `ui.json_encode` / `ui.json_decode` (lua-and-tracking.md §5.1, §3.4).

use std::collections::HashSet;

use mlua::{Lua, Table, Value};
use serde_json::{Map, Value as Json};

use crate::tracker::value::MAX_VALUE_DEPTH;

/// JSON text → Lua: `null` → nil (holes in arrays), integers fitting i64 → integers, objects → tables.
/// `{"obj":N}` stays a plain table: only written values resolve object ids.
pub fn decode(lua: &Lua, text: &str) -> Result<Value, String> {
    let json: Json = serde_json::from_str(text).map_err(|e| e.to_string())?;
    to_lua(lua, &json, 0)
}

fn to_lua(lua: &Lua, json: &Json, depth: usize) -> Result<Value, String> {
    if depth > MAX_VALUE_DEPTH {
        return Err("limit-exceeded: JSON nested deeper than 32".into());
    }
    let err = |e: mlua::Error| e.to_string();
    Ok(match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => {
            n.as_i64().map(Value::Integer).unwrap_or_else(|| Value::Number(n.as_f64().unwrap_or(f64::NAN)))
        }
        Json::String(s) => Value::String(lua.create_string(s).map_err(err)?),
        Json::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0).map_err(err)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i as i64 + 1, to_lua(lua, item, depth + 1)?).map_err(err)?;
            }
            Value::Table(t)
        }
        Json::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len()).map_err(err)?;
            for (k, item) in map {
                t.raw_set(k.as_str(), to_lua(lua, item, depth + 1)?).map_err(err)?;
            }
            Value::Table(t)
        }
    })
}

/// Lua → JSON text: sequences → arrays (holes → null), other tables → objects with sorted keys (numeric
/// keys as decimal strings; `_` keys, functions and userdata skipped), integral floats → integers;
/// a cycle is an error.
pub fn encode(v: &Value) -> Result<String, String> {
    let mut seen = HashSet::new();
    let json = to_json(v, &mut seen, 0)?;
    Ok(json.to_string())
}

fn number(f: f64) -> Json {
    if f.is_finite() && f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 {
        Json::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map(Json::Number).unwrap_or(Json::Null)
    }
}

fn to_json(v: &Value, seen: &mut HashSet<usize>, depth: usize) -> Result<Json, String> {
    if depth > 128 {
        return Err("value nested too deeply".into());
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
                return Err("cannot encode a table cycle".into());
            }
            let out = table_to_json(t, seen, depth)?;
            seen.remove(&ptr);
            out
        }
        _ => Json::Null,
    })
}

fn table_to_json(t: &Table, seen: &mut HashSet<usize>, depth: usize) -> Result<Json, String> {
    let mut ints: Vec<(i64, Value)> = Vec::new();
    let mut named: Vec<(String, Value)> = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| e.to_string())?;
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
    if named.is_empty() {
        let len = ints.iter().map(|(i, _)| *i).max().unwrap_or(0) as usize;
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
    }
}
