//! Tracker tests over a tiny in-test resolver. (The full JSON resolver comes with the change-detection
//! work; these pin the behaviour the session already relies on.)

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::json;

use super::*;

/// Test values: scalars or shared tables with an optional `type`.
#[derive(Clone, Debug)]
enum TV {
    Nil,
    Num(i64),
    Table(Rc<RefCell<Vec<(String, TV)>>>),
}

struct TestResolver;

impl Resolver for TestResolver {
    type Value = TV;
    type Key = String;
    fn nil(&self) -> TV {
        TV::Nil
    }
    fn intern(&self, name: &str) -> Result<String, VarError> {
        Ok(name.to_string())
    }
    fn get(&self, base: &TV, key: &String) -> Result<TV, VarError> {
        match base {
            TV::Table(t) => Ok(t.borrow().iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or(TV::Nil)),
            TV::Nil => Ok(TV::Nil),
            _ => Err(VarError::new(ErrorCode::PathFailure, "not a table")),
        }
    }
    fn index(&self, _: &TV, _: u32) -> Result<TV, VarError> {
        Ok(TV::Nil)
    }
    fn set(&self, _: &TV, _: &String, _: TV) -> Result<(), VarError> {
        Ok(())
    }
    fn set_index(&self, _: &TV, _: u32, _: TV) -> Result<(), VarError> {
        Ok(())
    }
    fn call(&self, _: &TV, _: &String, _: Option<TV>) -> Result<TV, VarError> {
        Ok(TV::Nil)
    }
    fn classify(&self, v: &TV) -> Kind {
        match v {
            TV::Nil => Kind::Nil,
            TV::Num(n) => Kind::Int(*n),
            TV::Table(t) => Kind::Object(Rc::as_ptr(t) as usize),
        }
    }
    fn elem(&self, _: &TV, _: usize) -> TV {
        TV::Nil
    }
    fn type_of(&self, v: &TV) -> Option<String> {
        match self.get(v, &"type".to_string()) {
            Ok(TV::Table(_)) | Ok(TV::Nil) | Ok(TV::Num(_)) | Err(_) => {
                if let TV::Table(t) = v {
                    t.borrow().iter().find(|(k, _)| k == "type").map(|_| "Adder".to_string())
                } else {
                    None
                }
            }
        }
    }
    fn from_json(&self, _: &serde_json::Value, _: &ObjectRegistry<TV>) -> Result<TV, VarError> {
        Ok(TV::Nil)
    }
}

fn table(fields: Vec<(&str, TV)>) -> TV {
    TV::Table(Rc::new(RefCell::new(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())))
}

#[test]
fn app_variable_full_state_has_object_value_and_type() {
    let mut t = Tracker::new(TestResolver);
    t.create_root(VarId::APP, table(vec![("type", TV::Num(0)), ("a", TV::Num(1))]), &[]).unwrap();
    let state = t.full_state(VarId::APP);
    let json = serde_json::to_value(&state).unwrap();
    assert_eq!(json, json!([{"type":"update","data":{"varId":1,"value":{"obj":1},"properties":{"type":"Adder"}}}]));
    assert_eq!(t.registry().len(), 1);
}

#[test]
fn scalar_root_has_no_type_and_replacing_releases_objects() {
    let mut t = Tracker::new(TestResolver);
    t.create_root(VarId::APP, table(vec![]), &[]).unwrap();
    assert_eq!(t.registry().len(), 1);
    t.create_root(VarId::APP, TV::Num(7), &[]).unwrap();
    assert!(t.registry().is_empty());
    let json = serde_json::to_value(t.full_state(VarId::APP)).unwrap();
    assert_eq!(json, json!([{"type":"update","data":{"varId":1,"value":7}}]));
}

#[test]
fn unknown_variable_is_not_found() {
    let t = Tracker::new(TestResolver);
    let json = serde_json::to_value(t.full_state(VarId(9))).unwrap();
    assert_eq!(json[0]["data"]["code"], "not-found");
}
