//! Scenario files (docs/configuration.md "ui-gateway loadtest"): which variables each simulated session creates under variable 1,
//! which one it drives and which one it times.
//!
//! ```json
//! {"bindings":[{"path":"count","access":"r"},{"path":"increment()","access":"action"}],
//!  "action":1,"observe":0,"value":null}
//! ```
//!
//! `action` and `observe` are 0-based indexes into `bindings`; binding `i` gets client id `2 + i`. Two
//! optional extensions serve apps whose observed value only changes when the written value does:
//! `"values":[…]` (action `k` of a session writes `values[k % len]` instead of `value`), and a binding's
//! `"value"` (written once, in the set-up frame, right after the creates). A third one lets a scenario
//! render what a browser renders below variable 1 (a list's rows): a binding's `"parent"`, the index
//! of an earlier binding to create it under (default: variable 1).

use std::path::Path;

use serde::Deserialize;
use serde_json::{json, Value};

/// The built-in demo's scenario, the default.
pub const DEFAULT_SCENARIO: &str = r#"{"bindings":[{"path":"count","access":"r"},{"path":"increment()","access":"action"}],
 "action":1,"observe":0,"value":null}"#;

/// One variable the session creates as a child of variable 1.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub path: String,
    /// `r`, `w`, `rw` or `action`; absent = the server's default (`rw`).
    #[serde(default)]
    pub access: Option<String>,
    /// Extension: a value written once after the creates.
    #[serde(default, deserialize_with = "present")]
    pub value: Option<Value>,
    /// Extension: index of an earlier binding to create this one under (default: variable 1).
    #[serde(default)]
    pub parent: Option<usize>,
}

/// A parsed, validated scenario.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub bindings: Vec<Binding>,
    pub action: usize,
    pub observe: usize,
    #[serde(default)]
    pub value: Value,
    /// Extension: values written in turn by successive actions (replaces `value`).
    #[serde(default)]
    pub values: Option<Vec<Value>>,
}

/// Distinguishes `"value": null` (Some(Null)) from an absent key (None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A scenario that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("scenario {origin}: {message}")]
pub struct ScenarioError {
    pub origin: String,
    pub message: String,
}

impl Scenario {
    /// The built-in demo scenario.
    pub fn builtin() -> Scenario {
        Scenario::parse(DEFAULT_SCENARIO, "built-in").expect("the built-in scenario is valid")
    }

    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError { origin: origin.clone(), message: format!("cannot read: {e}") })?;
        Scenario::parse(&text, &origin)
    }

    /// Parses and validates scenario JSON; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let err = |message: String| ScenarioError { origin: origin.to_string(), message };
        let s: Scenario = serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
        if s.bindings.is_empty() {
            return Err(err("`bindings` is empty".into()));
        }
        for (i, b) in s.bindings.iter().enumerate() {
            if b.path.is_empty() {
                return Err(err(format!("binding {i}: `path` is empty")));
            }
            if b.parent.is_some_and(|p| p >= i) {
                return Err(err(format!("binding {i}: `parent` must name an earlier binding")));
            }
            if let Some(a) = &b.access {
                if !matches!(a.as_str(), "r" | "w" | "rw" | "action") {
                    return Err(err(format!("binding {i}: unknown access {a:?} (r, w, rw, action)")));
                }
            }
        }
        let n = s.bindings.len();
        if s.action >= n {
            return Err(err(format!("`action` {} is not a binding index (0..{n})", s.action)));
        }
        if s.observe >= n {
            return Err(err(format!("`observe` {} is not a binding index (0..{n})", s.observe)));
        }
        if !s.bindings[s.observe].readable() {
            return Err(err(format!("`observe` binding {:?} is not readable (r or rw)", s.bindings[s.observe].path)));
        }
        if s.bindings[s.action].access.as_deref() == Some("r") {
            return Err(err(format!("`action` binding {:?} is read-only", s.bindings[s.action].path)));
        }
        if s.values.as_ref().is_some_and(Vec::is_empty) {
            return Err(err("`values` is empty".into()));
        }
        Ok(s)
    }

    /// Client id of binding `i`.
    pub fn client_id(i: usize) -> i64 {
        2 + i as i64
    }

    pub fn action_id(&self) -> i64 {
        Scenario::client_id(self.action)
    }

    pub fn observe_id(&self) -> i64 {
        Scenario::client_id(self.observe)
    }

    /// The frame that creates every binding (and writes the bindings' initial values).
    pub fn setup_frame(&self) -> String {
        let mut messages: Vec<Value> = self
            .bindings
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut props = serde_json::Map::new();
                props.insert("path".into(), b.path.clone().into());
                if let Some(a) = &b.access {
                    props.insert("access".into(), a.clone().into());
                }
                let parent = b.parent.map_or(1, Scenario::client_id);
                json!({"type":"create","data":{"id":Scenario::client_id(i),"parentId":parent,"properties":props}})
            })
            .collect();
        for (i, b) in self.bindings.iter().enumerate() {
            if let Some(v) = &b.value {
                messages.push(json!({"type":"update","data":{"varId":Scenario::client_id(i),"value":v}}));
            }
        }
        json!({"userEvent":false,"messages":messages}).to_string()
    }

    /// The action frames, one per distinct value; action `k` of a session sends `frames[k % len]`.
    pub fn action_frames(&self) -> Vec<String> {
        let values = match &self.values {
            Some(v) => v.clone(),
            None => vec![self.value.clone()],
        };
        values
            .into_iter()
            .map(|v| {
                json!({"userEvent":true,"messages":[{"type":"update","data":{"varId":self.action_id(),"value":v}}]})
                    .to_string()
            })
            .collect()
    }
}

impl Binding {
    pub fn readable(&self) -> bool {
        matches!(self.access.as_deref(), None | Some("r") | Some("rw"))
    }
}

/// `{"userEvent":false,"messages":[{"type":"watch","data":{"varId":1}}]}`.
pub const WATCH_APP: &str = r#"{"userEvent":false,"messages":[{"type":"watch","data":{"varId":1}}]}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_scenario() {
        let s = Scenario::builtin();
        assert_eq!(s.bindings.len(), 2);
        assert_eq!(
            s.bindings[0],
            Binding { path: "count".into(), access: Some("r".into()), value: None, parent: None }
        );
        assert_eq!((s.action_id(), s.observe_id()), (3, 2));
        assert_eq!(s.value, Value::Null);
        let setup: Value = serde_json::from_str(&s.setup_frame()).unwrap();
        assert_eq!(
            setup,
            json!({"userEvent":false,"messages":[
                {"type":"create","data":{"id":2,"parentId":1,"properties":{"path":"count","access":"r"}}},
                {"type":"create","data":{"id":3,"parentId":1,"properties":{"path":"increment()","access":"action"}}}]})
        );
        let actions = s.action_frames();
        assert_eq!(actions.len(), 1);
        let action: Value = serde_json::from_str(&actions[0]).unwrap();
        assert_eq!(action, json!({"userEvent":true,"messages":[{"type":"update","data":{"varId":3,"value":null}}]}));
    }

    #[test]
    fn extensions_initial_values_and_cycled_values() {
        let s = Scenario::parse(
            r#"{"bindings":[{"path":"a","value":"1"},{"path":"b"},{"path":"compute()","access":"r"},
                            {"path":"n","value":null},{"path":"x","parent":3}],
                "action":1,"observe":2,"values":["2","3"]}"#,
            "t",
        )
        .unwrap();
        assert_eq!(s.bindings[0].value, Some(json!("1")));
        assert_eq!(s.bindings[1].value, None);
        assert_eq!(s.bindings[3].value, Some(Value::Null), "an explicit null is a write of nil");
        let setup: Value = serde_json::from_str(&s.setup_frame()).unwrap();
        let msgs = setup["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 7);
        assert_eq!(msgs[4]["data"]["parentId"], json!(5), "under binding 3 (client id 5)");
        assert_eq!(msgs[5], json!({"type":"update","data":{"varId":2,"value":"1"}}));
        assert_eq!(msgs[6], json!({"type":"update","data":{"varId":5,"value":null}}));
        let frames: Vec<Value> = s.action_frames().iter().map(|f| serde_json::from_str(f).unwrap()).collect();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1]["messages"][0]["data"], json!({"varId":3,"value":"3"}));
    }

    #[test]
    fn invalid_scenarios_are_refused() {
        let bad = [
            ("not json", "expected"),
            (r#"{"bindings":[],"action":0,"observe":0}"#, "empty"),
            (r#"{"bindings":[{"path":""}],"action":0,"observe":0}"#, "path"),
            (r#"{"bindings":[{"path":"a","access":"x"}],"action":0,"observe":0}"#, "unknown access"),
            (r#"{"bindings":[{"path":"a"}],"action":1,"observe":0}"#, "`action` 1"),
            (r#"{"bindings":[{"path":"a"}],"action":0,"observe":2}"#, "`observe` 2"),
            (r#"{"bindings":[{"path":"a"},{"path":"m()","access":"action"}],"action":0,"observe":1}"#, "readable"),
            (r#"{"bindings":[{"path":"a","access":"r"}],"action":0,"observe":0}"#, "read-only"),
            (r#"{"bindings":[{"path":"a"}],"action":0,"observe":0,"values":[]}"#, "`values`"),
            (r#"{"bindings":[{"path":"a","parent":0}],"action":0,"observe":0}"#, "earlier binding"),
            (r#"{"bindings":[{"path":"a"}],"action":0,"observe":0,"obsreve":1}"#, "unknown field"),
            (r#"{"bindings":[{"path":"a"}],"observe":0}"#, "missing field `action`"),
        ];
        for (text, needle) in bad {
            let e = Scenario::parse(text, "f.json").unwrap_err();
            assert!(e.to_string().contains(needle), "{text}: {e}");
            assert!(e.to_string().starts_with("scenario f.json: "), "{e}");
        }
    }

    #[test]
    fn shipped_scenario_files_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                Scenario::load(&path).unwrap();
                n += 1;
            }
        }
        assert!(n >= 3, "demo, adder and tasks scenarios");
    }
}
