//! Helpers shared by the benches: sites, session configs, variable creation.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ui_gateway::ids::VarId;
use ui_gateway::lua::{LuaBackend, LuaConfig};
use ui_gateway::protocol::PropertyWrite;
use ui_gateway::session::SessionConfig;
use ui_gateway::site::Site;
use ui_gateway::tracker::Writer;

pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

/// A session configuration serving `site` with default limits.
pub fn session_config(site: Site) -> Arc<SessionConfig> {
    Arc::new(SessionConfig { site: Arc::new(site.into()), lua: Some(LuaConfig::default()), ..SessionConfig::default() })
}

pub fn example_config(name: &str) -> Arc<SessionConfig> {
    session_config(Site::load(&example(name)).expect("example site loads"))
}

pub fn props(path: &str, access: Option<&str>) -> Vec<PropertyWrite> {
    let mut p = vec![PropertyWrite { name: "path".into(), value: path.into(), priority: None }];
    if let Some(a) = access {
        p.push(PropertyWrite { name: "access".into(), value: a.into(), priority: None });
    }
    p
}

/// Creates a browser variable and marks it watched, as a browser `create` with auto-watch does.
pub fn create(lua: &mut LuaBackend, id: i64, parent: i64, path: &str, access: Option<&str>) {
    lua.tracker_mut().create(VarId(id), VarId(parent), &props(path, access), Writer::Browser).expect("create");
    lua.tracker_mut().set_active(VarId(id), true);
}
