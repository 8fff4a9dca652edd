//! Pattern matching of scenario vectors (`protocol/vectors/README.md` §2.4).
//!
//! A pattern is JSON. Objects need the same key set, arrays the same length, numbers the same value (a
//! pattern integer only matches a received integer), everything else equality, except the placeholder
//! strings `$any`, `$string`, `$hex32`, `$hex32:NAME` and `$obj:NAME`; `$$…` is a literal string starting with `$`;
//! `{"$json": P}` matches a string whose text is JSON matching `P`.

use std::collections::HashMap;

use serde_json::Value;

/// `$obj:NAME` and `$hex32:NAME` bindings; they last for a whole vector.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bindings {
    names: HashMap<String, i64>,
    hex: HashMap<String, String>,
}

impl Bindings {
    pub fn get(&self, name: &str) -> Option<i64> {
        self.names.get(name).copied()
    }

    fn bind_hex(&mut self, name: &str, text: &str, at: &str) -> Result<(), String> {
        match self.hex.get(name) {
            Some(bound) if bound == text => Ok(()),
            Some(bound) => Err(format!("{at}: $hex32:{name} is bound to {bound:?}, received {text:?}")),
            None => {
                if let Some((other, _)) = self.hex.iter().find(|(_, v)| *v == text) {
                    return Err(format!(
                        "{at}: {text:?} is already bound to $hex32:{other}, so it cannot be $hex32:{name}"
                    ));
                }
                self.hex.insert(name.to_string(), text.to_string());
                Ok(())
            }
        }
    }

    fn bind(&mut self, name: &str, n: i64, at: &str) -> Result<(), String> {
        match self.names.get(name) {
            Some(&bound) if bound == n => Ok(()),
            Some(&bound) => Err(format!("{at}: $obj:{name} is bound to {bound}, received {n}")),
            None => {
                if let Some((other, _)) = self.names.iter().find(|(_, &v)| v == n) {
                    return Err(format!("{at}: {n} is already bound to $obj:{other}, so it cannot be $obj:{name}"));
                }
                self.names.insert(name.to_string(), n);
                Ok(())
            }
        }
    }
}

/// A placeholder string of a pattern, or `None` for a literal (with `$$` already unescaped).
enum Placeholder<'a> {
    Any,
    String,
    Hex32,
    Hex32Named(&'a str),
    Obj(&'a str),
    Literal(&'a str),
}

fn placeholder(s: &str) -> Result<Placeholder<'_>, String> {
    if s.starts_with("$$") {
        // `$$x` is the literal `$x`: drop the first `$` only.
        return Ok(Placeholder::Literal(&s[1..]));
    }
    match s {
        "$any" => Ok(Placeholder::Any),
        "$string" => Ok(Placeholder::String),
        "$hex32" => Ok(Placeholder::Hex32),
        _ => match (s.strip_prefix("$obj:"), s.strip_prefix("$hex32:")) {
            (Some(""), _) => Err("`$obj:` needs a name".to_string()),
            (Some(name), _) => Ok(Placeholder::Obj(name)),
            (_, Some("")) => Err("`$hex32:` needs a name".to_string()),
            (_, Some(name)) => Ok(Placeholder::Hex32Named(name)),
            _ if s.starts_with('$') => {
                Err(format!("unknown placeholder {s:?} (write \"$${}\" for a literal)", &s[1..]))
            }
            _ => Ok(Placeholder::Literal(s)),
        },
    }
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64()
}

fn numbers_equal(p: &serde_json::Number, r: &serde_json::Number) -> bool {
    if is_integer(p) {
        if !is_integer(r) {
            return false;
        }
        return match (p.as_i64(), r.as_i64()) {
            (Some(a), Some(b)) => a == b,
            _ => p.as_u64() == r.as_u64(),
        };
    }
    match (p.as_f64(), r.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A short human name of a JSON value's kind, for mismatch messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if is_integer(n) => "an integer",
        Value::Number(_) => "a float",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Matches `received` against `pattern`. On success new `$obj` bindings are committed; on failure
/// `bindings` is left as it was and the error names the JSON path of the first mismatch.
pub fn match_value(pattern: &Value, received: &Value, bindings: &mut Bindings) -> Result<(), String> {
    let mut trial = bindings.clone();
    walk(pattern, received, &mut trial, "$")?;
    *bindings = trial;
    Ok(())
}

fn walk(pattern: &Value, received: &Value, b: &mut Bindings, at: &str) -> Result<(), String> {
    match (pattern, received) {
        (Value::String(p), r) => match placeholder(p).map_err(|e| format!("{at}: bad pattern: {e}"))? {
            Placeholder::Any => Ok(()),
            Placeholder::String if r.is_string() => Ok(()),
            Placeholder::String => Err(format!("{at}: expected a string, received {}", kind(r))),
            Placeholder::Hex32 => match r.as_str() {
                Some(s) if is_hex32(s) => Ok(()),
                _ => Err(format!("{at}: expected 32 lowercase hex digits, received {r}")),
            },
            Placeholder::Hex32Named(name) => match r.as_str() {
                Some(s) if is_hex32(s) => b.bind_hex(name, s, at),
                _ => Err(format!("{at}: expected 32 lowercase hex digits for $hex32:{name}, received {r}")),
            },
            Placeholder::Obj(name) => match r {
                Value::Number(n) if is_integer(n) && n.as_i64().is_some_and(|n| n >= 1) => {
                    b.bind(name, n.as_i64().unwrap_or_default(), at)
                }
                _ => Err(format!("{at}: expected an object number ≥ 1 for $obj:{name}, received {r}")),
            },
            Placeholder::Literal(s) => match r.as_str() {
                Some(got) if got == s => Ok(()),
                _ => Err(format!("{at}: expected {}, received {r}", Value::String(s.to_string()))),
            },
        },
        (Value::Object(p), r) if p.len() == 1 && p.contains_key("$json") => {
            let text =
                r.as_str().ok_or_else(|| format!("{at}: expected a string holding JSON, received {}", kind(r)))?;
            let inner: Value =
                serde_json::from_str(text).map_err(|e| format!("{at}: expected a string holding JSON ({e}): {r}"))?;
            walk(&p["$json"], &inner, b, &format!("{at}<json>"))
        }
        (Value::Null, Value::Null) => Ok(()),
        (Value::Bool(p), Value::Bool(r)) if p == r => Ok(()),
        (Value::Number(p), Value::Number(r)) => {
            if numbers_equal(p, r) {
                Ok(())
            } else if is_integer(p) && !is_integer(r) {
                Err(format!("{at}: expected the integer {p}, received the float {r}"))
            } else {
                Err(format!("{at}: expected {p}, received {r}"))
            }
        }
        (Value::Array(p), Value::Array(r)) => {
            if p.len() != r.len() {
                return Err(format!("{at}: expected {} elements, received {}", p.len(), r.len()));
            }
            for (i, (pe, re)) in p.iter().zip(r).enumerate() {
                walk(pe, re, b, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Object(p), Value::Object(r)) => {
            if let Some(k) = p.keys().find(|k| !r.contains_key(*k)) {
                return Err(format!("{at}: key {k:?} is missing"));
            }
            if let Some(k) = r.keys().find(|k| !p.contains_key(*k)) {
                return Err(format!("{at}: unexpected key {k:?} (value {})", r[k.as_str()]));
            }
            // Compare in the pattern's key order so the first reported mismatch is predictable.
            for (k, pv) in p {
                walk(pv, &r[k.as_str()], b, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (p, r) => Err(format!("{at}: expected {p}, received {r}")),
    }
}

/// `"order": "any"`: the `messages` arrays of `pattern` and `received` match as multisets (each pattern
/// element to a distinct received element), except that a pattern `create` of id 1 must match the first
/// received message. Every other field matches as usual.
pub fn match_any_order(pattern: &Value, received: &Value, bindings: &mut Bindings) -> Result<(), String> {
    let (Some(pm), Some(rm)) =
        (pattern.get("messages").and_then(Value::as_array), received.get("messages").and_then(Value::as_array))
    else {
        return Err("order \"any\" needs a `messages` array in both the pattern and the received frame".into());
    };
    if pm.len() != rm.len() {
        return Err(format!("$.messages: expected {} elements, received {}", pm.len(), rm.len()));
    }
    let mut trial = bindings.clone();
    // Everything but `messages`, in order.
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("messages".into(), Value::Array(Vec::new()));
        }
        v
    };
    walk(&strip(pattern), &strip(received), &mut trial, "$")?;
    let mut used = vec![false; rm.len()];
    let mut order: Vec<usize> = (0..pm.len()).collect();
    // A pattern `create` of id 1 is pinned to the first received message.
    if let Some(root) = pm.iter().position(is_root_create) {
        walk(&pm[root], &rm[0], &mut trial, "$.messages[0]")
            .map_err(|e| format!("the create of variable 1 must come first: {e}"))?;
        used[0] = true;
        order.retain(|&i| i != root);
    }
    if assign(pm, rm, &order, &mut used, &mut trial) {
        *bindings = trial;
        return Ok(());
    }
    // Explain with the first pattern element that matches nothing left on its own.
    for &i in &order {
        let alone = (0..rm.len()).filter(|&j| !used[j]).any(|j| walk(&pm[i], &rm[j], &mut trial.clone(), "$").is_ok());
        if !alone {
            return Err(format!("$.messages: no received message matches pattern element {i}: {}", pm[i]));
        }
    }
    Err("$.messages: the messages match individually but not as a one-to-one assignment (check $obj bindings)".into())
}

fn is_root_create(m: &Value) -> bool {
    m.get("type").and_then(Value::as_str) == Some("create")
        && m.get("data").and_then(|d| d.get("id")).and_then(Value::as_i64) == Some(1)
}

/// Backtracking assignment of pattern elements `order` to unused received elements.
fn assign(pm: &[Value], rm: &[Value], order: &[usize], used: &mut [bool], b: &mut Bindings) -> bool {
    let Some((&first, rest)) = order.split_first() else { return true };
    for j in 0..rm.len() {
        if used[j] {
            continue;
        }
        let mut trial = b.clone();
        if walk(&pm[first], &rm[j], &mut trial, "$").is_ok() {
            used[j] = true;
            if assign(pm, rm, rest, used, &mut trial) {
                *b = trial;
                return true;
            }
            used[j] = false;
        }
    }
    false
}

/// Prepares a `send` frame: `"$obj:NAME"` becomes its bound number, `"$$x"` becomes `"$x"`; other
/// strings are sent as written.
pub fn substitute(frame: &Value, bindings: &Bindings) -> Result<Value, String> {
    Ok(match frame {
        Value::String(s) if s.starts_with("$$") => Value::String(s[1..].to_string()),
        Value::String(s) => match s.strip_prefix("$obj:") {
            Some(name) => match bindings.get(name) {
                Some(n) => Value::from(n),
                None => return Err(format!("$obj:{name} is used in a send before it was bound")),
            },
            None => frame.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|v| substitute(v, bindings)).collect::<Result<_, _>>()?),
        Value::Object(o) => Value::Object(
            o.iter().map(|(k, v)| Ok((k.clone(), substitute(v, bindings)?))).collect::<Result<_, String>>()?,
        ),
        v => v.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    fn ok(p: Value, r: &str) -> Bindings {
        let mut b = Bindings::default();
        match_value(&p, &parse(r), &mut b).unwrap_or_else(|e| panic!("{p} vs {r}: {e}"));
        b
    }

    fn bad(p: Value, r: &str) -> String {
        let mut b = Bindings::default();
        match_value(&p, &parse(r), &mut b).expect_err(&format!("{p} should not match {r}"))
    }

    #[test]
    fn plain_values_and_key_order() {
        ok(json!({"a": 1, "b": [true, null, "x"]}), r#"{"b":[true,null,"x"],"a":1}"#);
        bad(json!([1, 2]), "[1,2,3]");
        bad(json!([1, 2]), "[2,1]");
        bad(json!("x"), r#""y""#);
        bad(json!(true), "false");
        assert!(bad(json!({"a": 1}), r#"{"a":1,"b":2}"#).contains("unexpected key \"b\""));
        assert!(bad(json!({"a": 1, "b": 2}), r#"{"a":1}"#).contains("\"b\" is missing"));
    }

    #[test]
    fn absent_and_null_differ() {
        bad(json!({"varId": 2, "value": null}), r#"{"varId":2}"#);
        bad(json!({"varId": 2}), r#"{"varId":2,"value":null}"#);
        ok(json!({"varId": 2, "value": null}), r#"{"varId":2,"value":null}"#);
        // `$any` needs the key too.
        bad(json!({"varId": 2, "value": "$any"}), r#"{"varId":2}"#);
        ok(json!({"varId": 2, "value": "$any"}), r#"{"varId":2,"value":null}"#);
    }

    #[test]
    fn integers_and_floats() {
        ok(json!(5), "5");
        assert!(bad(json!(5), "5.0").contains("float"));
        bad(json!(5), "5e0");
        bad(json!(5), "6");
        ok(json!(-3), "-3");
        ok(json!(2.5), "2.5");
        // A pattern float compares by value.
        ok(parse("5.0"), "5");
        ok(parse("5.0"), "5.0");
        bad(json!(5), r#""5""#);
        ok(json!(u64::MAX), &u64::MAX.to_string());
    }

    #[test]
    fn string_placeholders() {
        ok(json!("$any"), r#"{"x":[1]}"#);
        ok(json!("$any"), "null");
        ok(json!("$string"), r#""""#);
        bad(json!("$string"), "1");
        ok(json!("$hex32"), r#""0123456789abcdef0123456789abcdef""#);
        bad(json!("$hex32"), r#""0123456789ABCDEF0123456789abcdef""#);
        bad(json!("$hex32"), r#""0123456789abcdef0123456789abcde""#);
        bad(json!("$hex32"), r#""0123456789abcdef0123456789abcdefa""#);
        ok(json!("$$any"), r#""$any""#);
        bad(json!("$$any"), r#""x""#);
        ok(json!("$$$x"), r#""$$x""#);
        assert!(bad(json!("$nope"), r#""$nope""#).contains("unknown placeholder"));
        // Non-placeholder strings compare by decoded characters.
        ok(json!("é"), r#""\u00e9""#);
    }

    #[test]
    fn json_in_strings() {
        let p = json!({"$json": {"A.DEFAULT": "<template>a</template>", "B.x": "$string"}});
        ok(p.clone(), r#""{\"B.x\":\"t\",\"A.DEFAULT\":\"<template>a</template>\"}""#);
        bad(p.clone(), r#""{\"A.DEFAULT\":\"<template>b</template>\",\"B.x\":\"t\"}""#);
        assert!(bad(p.clone(), r#""not json""#).contains("holding JSON"));
        bad(p, r#"{"A.DEFAULT":"<template>a</template>","B.x":"t"}"#);
        // Two keys are an ordinary object pattern.
        ok(json!({"$json": 1, "x": 2}), r#"{"$json":1,"x":2}"#);
    }

    #[test]
    fn obj_bindings() {
        let b = ok(
            json!([{"obj": "$obj:app"}, {"obj": "$obj:item"}, {"obj": "$obj:app"}]),
            r#"[{"obj":1},{"obj":2},{"obj":1}]"#,
        );
        assert_eq!((b.get("app"), b.get("item")), (Some(1), Some(2)));
        // Later uses must equal the binding.
        bad(json!([{"obj": "$obj:app"}, {"obj": "$obj:app"}]), r#"[{"obj":1},{"obj":2}]"#);
        // Two names never share a number.
        assert!(
            bad(json!([{"obj": "$obj:a"}, {"obj": "$obj:b"}]), r#"[{"obj":3},{"obj":3}]"#).contains("already bound")
        );
        // Only integers ≥ 1.
        bad(json!({"obj": "$obj:a"}), r#"{"obj":0}"#);
        bad(json!({"obj": "$obj:a"}), r#"{"obj":1.0}"#);
        bad(json!({"obj": "$obj:a"}), r#"{"obj":"1"}"#);
        // Bindings persist across matches, and a failed match binds nothing.
        let mut b = Bindings::default();
        assert!(match_value(&json!([{"obj": "$obj:x"}, 9]), &parse(r#"[{"obj":4},8]"#), &mut b).is_err());
        assert_eq!(b.get("x"), None);
        match_value(&json!({"obj": "$obj:x"}), &parse(r#"{"obj":7}"#), &mut b).unwrap();
        assert!(match_value(&json!({"obj": "$obj:x"}), &parse(r#"{"obj":4}"#), &mut b).is_err());
        assert!(match_value(&json!({"obj": "$obj:y"}), &parse(r#"{"obj":7}"#), &mut b).is_err());
        match_value(&json!({"obj": "$obj:y"}), &parse(r#"{"obj":8}"#), &mut b).unwrap();
        assert_eq!((b.get("x"), b.get("y")), (Some(7), Some(8)));
    }

    #[test]
    fn hex_bindings() {
        let a = "0123456789abcdef0123456789abcdef";
        let b = "fedcba9876543210fedcba9876543210";
        let mut bind = Bindings::default();
        match_value(&json!({"e": "$hex32:first"}), &json!({"e": a}), &mut bind).unwrap();
        // The same name must see the same text; another name must see another text.
        assert!(match_value(&json!("$hex32:first"), &json!(b), &mut bind).is_err());
        assert!(match_value(&json!("$hex32:second"), &json!(a), &mut bind).unwrap_err().contains("already bound"));
        match_value(&json!("$hex32:second"), &json!(b), &mut bind).unwrap();
        match_value(&json!("$hex32:first"), &json!(a), &mut bind).unwrap();
        assert!(match_value(&json!("$hex32:third"), &json!("XYZ"), &mut bind).is_err());
        assert!(match_value(&json!("$hex32:"), &json!(a), &mut bind).is_err());
    }

    #[test]
    fn send_substitution() {
        let mut b = Bindings::default();
        b.bind("item", 12, "$").unwrap();
        let sent = substitute(&json!({"value": {"obj": "$obj:item"}, "s": "$$obj:item", "t": "$any"}), &b).unwrap();
        assert_eq!(sent, json!({"value": {"obj": 12}, "s": "$obj:item", "t": "$any"}));
        assert!(substitute(&json!({"obj": "$obj:nope"}), &b).is_err());
    }

    fn batch(messages: Value) -> Value {
        json!({"session": "1", "messages": messages})
    }

    fn create(id: i64) -> Value {
        json!({"type": "create", "data": {"id": id}})
    }

    fn watch(id: i64) -> Value {
        json!({"type": "watch", "data": {"varId": id}})
    }

    #[test]
    fn order_any() {
        let mut b = Bindings::default();
        let p = batch(json!([watch(2), watch(3), watch(4)]));
        match_any_order(&p, &batch(json!([watch(4), watch(2), watch(3)])), &mut b).unwrap();
        assert!(match_any_order(&p, &batch(json!([watch(4), watch(2), watch(2)])), &mut b).is_err());
        assert!(match_any_order(&p, &batch(json!([watch(4), watch(2)])), &mut b).is_err());
        // Other fields still match exactly.
        let mut other = batch(json!([watch(2), watch(3), watch(4)]));
        other["session"] = json!("2");
        assert!(match_any_order(&p, &other, &mut b).is_err());
        // A create of variable 1 must come first.
        let p = batch(json!([watch(2), create(1)]));
        match_any_order(&p, &batch(json!([create(1), watch(2)])), &mut b).unwrap();
        assert!(match_any_order(&p, &batch(json!([watch(2), create(1)])), &mut b).is_err());
        // Placeholders need backtracking: `$any` must not steal the only match of a stricter element.
        let p = batch(json!(["$any", watch(2)]));
        match_any_order(&p, &batch(json!([watch(2), watch(3)])), &mut b).unwrap();
        // Bindings are consistent across the assignment.
        let mut b = Bindings::default();
        let upd = |o: &str| json!({"type": "update", "data": {"value": {"obj": o}}});
        let got = |n: i64| json!({"type": "update", "data": {"value": {"obj": n}}});
        let p = batch(json!([upd("$obj:a"), upd("$obj:b"), upd("$obj:a")]));
        match_any_order(&p, &batch(json!([got(5), got(6), got(5)])), &mut b).unwrap();
        assert_eq!((b.get("a"), b.get("b")), (Some(5), Some(6)));
        let mut b = Bindings::default();
        assert!(match_any_order(&p, &batch(json!([got(5), got(6), got(7)])), &mut b).is_err());
        assert_eq!(b, Bindings::default());
    }
}
