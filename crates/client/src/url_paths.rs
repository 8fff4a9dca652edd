//! URL paths for backends (PROTOCOL.md B9.2): the session's map of paths to presenters and the
//! `lua.UrlPage` wrapper the page asks for, the same contract as the gateway's Lua side
//! (docs/lua-api.md "URL paths").
//!
//! Once the app registered a path, variable 1 carries `urlPaths=on`. The page then creates one
//! variable under variable 1 with the path `uiUrl..` (the app itself), `wrapper=lua.UrlPage` and its
//! address as `urlPath`. That variable shows a page object (one per variable, so its `{"obj":N}` is
//! stable) with `presenter`, what the page renders, and `path`, its address: the page writes `path`
//! on Back and Forward, and [`Session::navigate`](crate::Session::navigate) moves every page.

use std::any::Any;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::ids::VarId;
use crate::object::{Obj, Object};
use crate::tracker::{JValue, JsonResolver, Wrapped};
use crate::UiValue;

/// The wrapper type the page puts on its URL variable.
pub const WRAPPER: &str = "lua.UrlPage";
/// The property of variable 1 that tells the page to route by URL.
pub const PROPERTY: &str = "urlPaths";
/// The property of the page variable that carries the page's address.
pub const URL_PATH: &str = "urlPath";
/// The first segment of the page variable's path (`uiUrl..`): a name no app defines, read as nil so
/// that `..` lands on the app itself.
pub const ANCHOR: &str = "uiUrl";

/// Normalises a URL path as the Lua side does: `""` is `/`, a leading `/` is added and a trailing one
/// dropped (`about/` is `/about`).
pub fn normalize(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut p = if path.starts_with('/') { path.to_string() } else { format!("/{path}") };
    if p.len() > 1 && p.ends_with('/') {
        p.pop();
    }
    p
}

/// The object one page variable shows. `version` is the navigation it has seen, so a
/// [`Session::navigate`](crate::Session::navigate) moves pages that existed before it, not later deep links.
struct UrlPage {
    presenter: JValue,
    path: String,
    version: u64,
}

crate::ui_object!(UrlPage as "lua.UrlPage" { fields { presenter, path } });

/// A registered presenter: its proxy (what the page's `presenter` field shows) and the handle that
/// keeps the object alive (proxies do not).
struct Registered {
    proxy: JValue,
    _keep: Box<dyn Any>,
}

#[derive(Default)]
struct State {
    paths: HashMap<String, Registered>,
    pages: HashMap<VarId, Obj<UrlPage>>,
    /// The path of the last navigation, and how many there were.
    current: String,
    version: u64,
    /// Unknown paths already logged (once each, as the Lua side does).
    warned: HashSet<String>,
}

impl State {
    fn new_page(&self, path: &str) -> Obj<UrlPage> {
        Obj::new(UrlPage { presenter: JValue::Nil, path: normalize(path), version: self.version })
    }

    /// What the page at `path` shows: its presenter, else the one of `/`, else the app (`root`).
    fn presenter_for(&mut self, path: &str, root: &JValue) -> JValue {
        if let Some(r) = self.paths.get(path) {
            return r.proxy.clone();
        }
        if path != "/" && self.warned.insert(path.to_string()) {
            tracing::warn!(path, "unknown URL path: showing the default view");
        }
        self.paths.get("/").map_or_else(|| root.clone(), |r| r.proxy.clone())
    }
}

/// One session's URL paths. Cheap to clone: the wrapper registered on the resolver shares the state.
#[derive(Clone, Default)]
pub(crate) struct UrlPaths {
    state: Rc<RefCell<State>>,
}

impl UrlPaths {
    /// Whether the app registered any path (then variable 1 carries `urlPaths=on`).
    pub fn any(&self) -> bool {
        !self.state.borrow().paths.is_empty()
    }

    /// Registers `presenter` for `path`. Returns true for the first path: the caller then marks
    /// variable 1, and the wrapper is registered on `resolver` here.
    pub fn register<T: Object>(&self, resolver: &JsonResolver, path: &str, presenter: Obj<T>) -> bool {
        let first = !self.any();
        let proxy = presenter.to_ui();
        self.state.borrow_mut().paths.insert(normalize(path), Registered { proxy, _keep: Box::new(presenter) });
        if first {
            let this = self.clone();
            resolver.register_wrapper(WRAPPER, move |req| Ok(Wrapped::Transform(this.page(req.var, req.raw))));
        }
        first
    }

    /// Whether `path` has a presenter of its own.
    pub fn is_registered(&self, path: &str) -> bool {
        self.state.borrow().paths.contains_key(&normalize(path))
    }

    /// Moves every page to `path` at their next computation.
    pub fn navigate(&self, path: &str) {
        let mut st = self.state.borrow_mut();
        st.current = normalize(path);
        st.version += 1;
    }

    /// A browser created page variable `id` with its address: its page starts there.
    pub fn page_created(&self, id: VarId, url_path: Option<&str>) {
        let mut st = self.state.borrow_mut();
        let page = st.new_page(url_path.unwrap_or("/"));
        st.pages.insert(id, page);
    }

    /// Variable `id` is gone: its page goes too.
    pub fn forget(&self, id: VarId) {
        self.state.borrow_mut().pages.remove(&id);
    }

    /// The wrapper's computation (every pass): the page object of variable `var`, its path moved by
    /// a navigation it has not seen and normalised (a browser may write anything), its presenter
    /// looked up again.
    fn page(&self, var: VarId, root: &JValue) -> JValue {
        let mut st = self.state.borrow_mut();
        let page = match st.pages.get(&var) {
            Some(p) => p.clone(),
            None => {
                let p = st.new_page("/");
                st.pages.insert(var, p.clone());
                p
            }
        };
        let path = {
            let mut p = page.borrow_mut();
            if p.version != st.version {
                p.version = st.version;
                p.path = st.current.clone();
            }
            p.path = normalize(&p.path);
            p.path.clone()
        };
        let presenter = st.presenter_for(&path, root);
        page.borrow_mut().presenter = presenter;
        page.to_ui()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised_like_the_lua_side() {
        assert_eq!(normalize(""), "/");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("about"), "/about");
        assert_eq!(normalize("/about/"), "/about");
        assert_eq!(normalize("a/b/"), "/a/b");
    }
}
