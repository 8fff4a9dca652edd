//! The debug view of a session (docs/deployment.md "HTTP routes": `/<id>/variables[.json]`), built by the session's
//! own task so it is a consistent snapshot.

use serde_json::{json, Value as Json};

use super::remote::Creator;
use super::Session;
use crate::ids::VarId;
use crate::protocol::property::name as property;
use crate::protocol::Properties;

fn props_json(props: &Properties) -> Json {
    Json::Object(props.0.iter().map(|(k, v)| (k.clone(), Json::String(v.clone()))).collect())
}

impl Session {
    /// Every variable, parent before child (Lua-owned tree first, then the remote mirror), with the
    /// session's change count.
    pub(super) fn inspect(&self) -> (Vec<Json>, u64) {
        let mut out = Vec::new();
        if let Some(lua) = &self.lua {
            let shared = lua.tracker().shared();
            let mut stack: Vec<(VarId, usize)> = shared.roots().into_iter().rev().map(|r| (r, 0)).collect();
            while let Some((id, depth)) = stack.pop() {
                let children = shared.children(id);
                let props = shared.properties(id);
                out.push(self.item(
                    id,
                    shared.parent(id),
                    "lua",
                    &props,
                    shared.value_json(id),
                    &children,
                    shared.error(id).map(|e| json!({"code": e.code.as_str(), "description": e.description})),
                    depth,
                ));
                stack.extend(children.into_iter().rev().map(|c| (c, depth + 1)));
            }
        }
        for id in self.remote.pre_order() {
            let Some(var) = self.remote.get(id) else { continue };
            let mut depth = 0;
            let mut up = var.parent;
            while let Some(p) = up {
                depth += 1;
                up = self.remote.get(p).and_then(|v| v.parent);
            }
            let error = var.error.as_ref().map(|(code, d)| json!({"code": code.as_str(), "description": d}));
            let mut item =
                self.item(id, var.parent, "remote", &var.props, var.value.clone(), &var.children, error, depth);
            if let Creator::Browser(conn) = var.creator {
                item["creator"] = json!(conn.0);
            }
            out.push(item);
        }
        (out, self.change_count)
    }

    #[allow(clippy::too_many_arguments)]
    fn item(
        &self,
        id: VarId,
        parent: Option<VarId>,
        owner: &str,
        props: &Properties,
        value: Option<Json>,
        children: &[VarId],
        error: Option<Json>,
        depth: usize,
    ) -> Json {
        let prop = |name: &str| props.get(name).unwrap_or("").to_string();
        json!({
            "id": id.0,
            "parentId": parent.map_or(0, |p| p.0),
            "owner": owner,
            "type": prop(property::TYPE),
            "path": prop(property::PATH),
            "access": props.get(property::ACCESS).unwrap_or("rw"),
            "value": value.unwrap_or(Json::Null),
            "properties": props_json(props),
            "childIds": children.iter().map(|c| c.0).collect::<Vec<_>>(),
            "watchers": self.tallies.get(&id).copied().unwrap_or(0),
            "error": error.unwrap_or(Json::Null),
            "changeCount": self.changes_of.get(&id).copied().unwrap_or(0),
            "depth": depth,
            "elementId": prop("elementId"),
        })
    }
}
