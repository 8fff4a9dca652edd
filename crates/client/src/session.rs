//! One session's state on the backend side: its tracker, the variables the gateway told it about,
//! which of them are watched, its client variables (hybrid) — and the rules of PROTOCOL.md B9
//! that turn a gateway batch into the reply batch.
//!
//! This is the synchronous core; [`task`](super::task) runs it as one task per session.

use std::any::Any;
use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value as Json;
use tokio::sync::mpsc::UnboundedSender;

use super::object::{Obj, Object};
use super::resolver::ObjectResolver;
use super::url_paths::{self, UrlPaths};
use super::value::UiValue;
use crate::ids::{VarId, VendedId};
use crate::protocol::property::name as property;
use crate::protocol::{Create, ErrorCode, ErrorReport, Message, MessageError, PropertyWrite, ServerMessage, Update};
use crate::tracker::{Access, JValue, Origin, Tracker, Writer};

/// A closure from a [`SessionHandle`](super::SessionHandle), run on the session's task against the app
/// state (type-erased; the handle checks the type) and the session.
pub(crate) type Job = Box<dyn FnOnce(&mut dyn Any, &mut Session) + Send>;

/// What a session's task receives, in order: gateway batches, handle closures, the end.
pub(crate) enum Input {
    /// A gateway batch, from backend connection number `generation` (a new number = a reconnect).
    Batch {
        messages: Vec<Result<Message, MessageError>>,
        user_event: bool,
        generation: u64,
    },
    Run(Job),
    Close,
}

/// What one batch or closure produced for the gateway: one batch (split into frames by the link).
#[derive(Debug, PartialEq)]
pub(crate) struct Reply {
    pub user_event: bool,
    pub messages: Vec<Message>,
}

/// The origin of every change the gateway made: such changes are not echoed back (PROTOCOL.md B9 rule 4).
const GATEWAY: Origin = 1;

/// How the gateway runs: the backend owns variable 1 (connected), or Lua does and the backend adds
/// client variables (hybrid).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Connected,
    Hybrid,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Connected => "connected",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// A session's app state, as the factory builds it. Its root object, if any, becomes variable 1:
/// at once in connected mode, on the first forwarded `watch` of variable 1 in hybrid mode.
pub trait Root: 'static {
    fn root(&self) -> Option<JValue> {
        None
    }
}

impl<T: Object> Root for Obj<T> {
    fn root(&self) -> Option<JValue> {
        Some(self.to_ui())
    }
}

impl Root for () {}

type ValueCallback = Box<dyn FnMut(&Json, &mut Session)>;

/// A variable this backend created under a Lua-owned variable (hybrid mode).
struct ClientVar {
    id: VarId,
    parent: VarId,
    path: String,
    access: Access,
    watch: bool,
    /// The last value the gateway reported (`None` before the first).
    value: Option<Json>,
    /// The last value this backend wrote, re-sent after a reconnect.
    written: Option<Json>,
    callback: Option<ValueCallback>,
}

/// The backend-side state of one session. Handed to the factory and to [`SessionHandle::run`]
/// closures; changes made there are detected and sent when they return.
pub struct Session {
    id: VendedId,
    mode: Mode,
    tracker: Tracker<ObjectResolver>,
    root: Option<JValue>,
    /// Variable 1 exists at the gateway because this backend created it.
    root_created: bool,
    /// Variable 1 is to be created with the next flush.
    root_pending: bool,
    browser_vars: BTreeSet<VarId>,
    /// Property names browsers set, per variable: never echoed in watch answers.
    browser_props: HashMap<VarId, HashSet<String>>,
    watched: HashSet<VarId>,
    /// Variables to answer with their full state at the next flush, in order.
    answers: Vec<VarId>,
    /// Messages (errors, client-variable creates and writes) to send before the detected changes.
    out: Vec<Message>,
    client_vars: Vec<ClientVar>,
    next_client_id: i64,
    user_event: bool,
    input: UnboundedSender<Input>,
    /// Registered URL paths and the pages showing them (PROTOCOL.md B9.2).
    url_paths: UrlPaths,
}

impl Session {
    pub(crate) fn new(id: VendedId, mode: Mode, input: UnboundedSender<Input>) -> Self {
        Session {
            id,
            mode,
            tracker: Tracker::new(ObjectResolver::new()),
            root: None,
            root_created: false,
            root_pending: false,
            browser_vars: BTreeSet::new(),
            browser_props: HashMap::new(),
            watched: HashSet::new(),
            answers: Vec::new(),
            out: Vec::new(),
            client_vars: Vec::new(),
            next_client_id: -1,
            user_event: false,
            input,
            url_paths: UrlPaths::default(),
        }
    }

    /// The vended session id (`1`, `2`, …; shown as `"1"` on the wire).
    pub fn id(&self) -> VendedId {
        self.id
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The sender of this session's mailbox (what handles are made of).
    pub(crate) fn mailbox(&self) -> UnboundedSender<Input> {
        self.input.clone()
    }

    /// The session's tracker (advanced use: register wrapper types on its resolver).
    pub fn tracker(&self) -> &Tracker<ObjectResolver> {
        &self.tracker
    }

    /// Whether the gateway currently watches variable `id`.
    pub fn is_watched(&self, id: VarId) -> bool {
        self.watched.contains(&id)
    }

    pub(crate) fn set_root(&mut self, root: Option<JValue>) {
        self.root = root;
    }

    // ----- URL paths (PROTOCOL.md B9.2) -----

    /// Shows `presenter` to pages whose address is `path` (normalised: `about/` is `/about`), so
    /// `GET /<session>/about` opens the app on it. Until `/` is registered, `/` shows the root. The
    /// first registration marks variable 1 with `urlPaths=on`, which makes the page route by URL.
    pub fn register_url_path<T: Object>(&mut self, path: &str, presenter: Obj<T>) {
        if self.url_paths.register(self.tracker.resolver().json(), path, presenter) && self.root_created {
            let on = [PropertyWrite { name: url_paths::PROPERTY.into(), value: "on".into(), priority: None }];
            if let Err(e) = self.tracker.set_properties(VarId::APP, &on, Writer::Backend, None) {
                self.error(VarId::APP, e.code, e.description);
            }
        }
    }

    /// Whether `path` has a presenter of its own (else pages at it show the default view).
    pub fn has_url_path(&self, path: &str) -> bool {
        self.url_paths.is_registered(path)
    }

    /// Moves every open page of the session to `path`: its `path` field changes (the browser pushes
    /// a history entry, so Back returns) and it shows that path's presenter.
    pub fn navigate(&mut self, path: &str) {
        self.url_paths.navigate(path);
    }

    // ----- hybrid: client variables -----

    /// Creates a client variable: `path` (with an optional `?query`) resolved by Lua against the
    /// Lua-owned variable `parent` (hybrid mode). With `watch`, the gateway reports its value (see
    /// [`Session::on_value`]); writes go through [`Session::write`]. Re-created automatically after
    /// a reconnect.
    pub fn client_var(&mut self, parent: VarId, path: &str, access: Access, watch: bool) -> VarId {
        let id = VarId(self.next_client_id);
        self.next_client_id -= 1;
        let var =
            ClientVar { id, parent, path: path.to_string(), access, watch, value: None, written: None, callback: None };
        self.out.push(client_create(&var));
        self.client_vars.push(var);
        id
    }

    /// Calls `f` with every value the gateway reports for client variable `id` (and with the current
    /// one, if known).
    pub fn on_value(&mut self, id: VarId, f: impl FnMut(&Json, &mut Session) + 'static) {
        if let Some(var) = self.client_vars.iter_mut().find(|v| v.id == id) {
            var.callback = Some(Box::new(f));
        }
    }

    /// The last value the gateway reported for client variable `id`.
    pub fn client_value(&self, id: VarId) -> Option<&Json> {
        self.client_vars.iter().find(|v| v.id == id).and_then(|v| v.value.as_ref())
    }

    /// Writes `value` to client variable `id` (Lua applies it like a browser write).
    pub fn write(&mut self, id: VarId, value: impl Into<Json>) {
        let value = value.into();
        if let Some(var) = self.client_vars.iter_mut().find(|v| v.id == id) {
            var.written = Some(value.clone());
        }
        self.out.push(write_message(id, value));
    }

    /// Destroys client variable `id`.
    pub fn destroy_client_var(&mut self, id: VarId) {
        if let Some(i) = self.client_vars.iter().position(|v| v.id == id) {
            self.client_vars.remove(i);
            self.out.push(Message::Destroy(id));
        }
    }

    // ----- applying gateway batches -----

    /// Applies one gateway batch and returns the reply frame, if there is anything to say.
    ///
    /// `first`: the session state was just built for this batch. `replay`: the first batch after a
    /// reconnect for a session this backend already held (PROTOCOL.md B9 rule 9).
    pub(crate) fn apply_batch(
        &mut self,
        messages: Vec<Result<Message, MessageError>>,
        user_event: bool,
        first: bool,
        replay: bool,
    ) -> Option<Reply> {
        self.user_event |= user_event;
        if first && self.mode == Mode::Connected {
            self.ensure_root();
        }
        if replay {
            self.start_replay(&messages);
        }
        for msg in messages {
            self.apply_message(msg);
        }
        self.flush()
    }

    /// PROTOCOL.md B9 rule 9: the replay's creates are the complete set of browser variables, its watches the
    /// complete set of watches; client variables are re-created.
    fn start_replay(&mut self, messages: &[Result<Message, MessageError>]) {
        let replayed: HashSet<VarId> = messages
            .iter()
            .filter_map(|m| match m {
                Ok(Message::Create(c)) => Some(c.id),
                _ => None,
            })
            .collect();
        let stale: Vec<VarId> = self.browser_vars.iter().copied().filter(|id| !replayed.contains(id)).collect();
        for id in stale {
            self.destroy(id);
        }
        self.watched.clear();
        for var in &self.client_vars {
            self.out.push(client_create(var));
            if let Some(v) = &var.written {
                self.out.push(write_message(var.id, v.clone()));
            }
        }
    }

    fn apply_message(&mut self, msg: Result<Message, MessageError>) {
        match msg {
            Ok(Message::Create(c)) => self.create(c),
            Ok(Message::Update(u)) => self.update(u),
            Ok(Message::Destroy(id)) => self.destroy(id),
            Ok(Message::Watch(id)) => self.watch(id),
            Ok(Message::Unwatch(id)) => {
                self.watched.remove(&id);
            }
            Ok(Message::Error(e)) => tracing::warn!(session = %self.id, var = e.var_id.0, code = %e.code,
                description = %e.description, "the gateway reported an error"),
            Err(e) => tracing::warn!(session = %self.id, error = %e, "unreadable message from the gateway"),
        }
    }

    fn error(&mut self, id: VarId, code: ErrorCode, description: impl Into<String>) {
        self.out.push(Message::Error(ErrorReport { var_id: id, code, description: description.into() }));
    }

    fn ensure_root(&mut self) -> bool {
        if self.root_created {
            return true;
        }
        let Some(root) = self.root.clone() else { return false };
        let mut props = Vec::new();
        if self.url_paths.any() {
            props.push(PropertyWrite { name: url_paths::PROPERTY.into(), value: "on".into(), priority: None });
        }
        match self.tracker.create_root(VarId::APP, root, &props) {
            Ok(()) => {
                self.root_created = true;
                self.root_pending = true;
                true
            }
            Err(e) => {
                self.error(VarId::APP, e.code, e.description);
                false
            }
        }
    }

    fn create(&mut self, c: Create) {
        if c.id.0 < 2 {
            tracing::warn!(session = %self.id, id = c.id.0, "the gateway forwarded a create with a non-browser id");
            return;
        }
        if self.tracker.exists(c.id) {
            self.destroy(c.id);
        }
        let parent = c.parent_id.unwrap_or(VarId::APP);
        if parent == VarId::APP && !self.root_created {
            self.ensure_root();
        }
        let prop = |name: &str| c.properties.iter().rev().find(|p| p.name == name).map(|p| p.value.as_str());
        if prop(property::WRAPPER) == Some(url_paths::WRAPPER) {
            self.url_paths.page_created(c.id, prop(url_paths::URL_PATH));
        }
        match self.tracker.create(c.id, parent, &c.properties, Writer::Browser) {
            Ok(created) => {
                self.browser_vars.insert(c.id);
                self.note_browser_props(c.id, &c.properties);
                if let Some(e) = created.denied {
                    self.error(c.id, e.code, e.description);
                }
                if !c.nowatch {
                    self.watch(c.id);
                }
            }
            Err(e) => self.error(c.id, e.code, e.description),
        }
    }

    fn note_browser_props(&mut self, id: VarId, props: &[PropertyWrite]) {
        if !props.is_empty() {
            self.browser_props.entry(id).or_default().extend(props.iter().map(|p| p.name.clone()));
        }
    }

    fn update(&mut self, u: Update) {
        if u.var_id.0 < 0 {
            if let Some(i) = self.client_vars.iter().position(|v| v.id == u.var_id) {
                if let Some(value) = u.value {
                    self.client_value_arrived(i, value);
                }
                return;
            }
        }
        if !self.tracker.exists(u.var_id) {
            return self.error(u.var_id, ErrorCode::NotFound, format!("variable {} not found", u.var_id));
        }
        let props = u.properties.unwrap_or_default();
        self.note_browser_props(u.var_id, &props);
        for e in self.tracker.update(u.var_id, &props, u.value.as_ref(), Writer::Browser, Some(GATEWAY)) {
            self.error(u.var_id, e.code, e.description);
        }
    }

    fn client_value_arrived(&mut self, i: usize, value: Json) {
        self.client_vars[i].value = Some(value.clone());
        let id = self.client_vars[i].id;
        if let Some(mut f) = self.client_vars[i].callback.take() {
            f(&value, self);
            // The callback may have destroyed or re-registered the variable.
            if let Some(var) = self.client_vars.iter_mut().find(|v| v.id == id) {
                var.callback.get_or_insert(f);
            }
        }
    }

    fn destroy(&mut self, id: VarId) {
        for gone in self.tracker.destroy(id) {
            self.url_paths.forget(gone);
            self.browser_vars.remove(&gone);
            self.browser_props.remove(&gone);
            self.watched.remove(&gone);
        }
    }

    fn watch(&mut self, id: VarId) {
        if id == VarId::APP && !self.root_created {
            if self.ensure_root() {
                self.watched.insert(id);
            } else if self.root.is_none() {
                self.error(id, ErrorCode::NotFound, "this backend has no root object");
            }
            return;
        }
        if !self.tracker.exists(id) {
            return self.error(id, ErrorCode::NotFound, format!("variable {id} not found"));
        }
        self.watched.insert(id);
        self.answers.push(id);
    }

    // ----- replies -----

    /// Runs change detection and returns the batch for the gateway: queued messages, `create` of
    /// variable 1, full answers to watches, then the changed values and properties of watched
    /// variables. `None` when there is nothing to send.
    pub(crate) fn flush(&mut self) -> Option<Reply> {
        let changes = self.tracker.detect_changes();
        let mut messages = Vec::new();
        let mut answered = HashSet::new();
        if std::mem::take(&mut self.root_pending) {
            messages.push(self.root_create());
            answered.insert(VarId::APP);
        }
        messages.append(&mut self.out);
        for id in std::mem::take(&mut self.answers) {
            if answered.insert(id) && self.tracker.exists(id) {
                messages.extend(self.full_answer(id));
            }
        }
        let watched = &self.watched;
        messages.extend(
            changes
                .messages_for(Some(GATEWAY), |id| watched.contains(&id) && !answered.contains(&id))
                .into_iter()
                .map(Message::from),
        );
        let user_event = std::mem::take(&mut self.user_event);
        if messages.is_empty() {
            return None;
        }
        Some(Reply { user_event, messages })
    }

    /// `create` of variable 1 with its value and every property (the root's full state).
    fn root_create(&self) -> Message {
        let mut create = Create {
            id: VarId::APP,
            parent_id: None,
            properties: Vec::new(),
            value: None,
            nowatch: false,
            unbound: false,
        };
        for m in self.tracker.full_state(VarId::APP) {
            if let ServerMessage::Update(u) = m {
                create.value = u.value.or(create.value);
                create.properties.extend(u.properties.0.into_iter().map(|(name, value)| PropertyWrite {
                    name,
                    value,
                    priority: None,
                }));
            }
        }
        Message::Create(create)
    }

    /// A watch answer (PROTOCOL.md B9 rule 2): value and the properties this backend set, or the current error.
    fn full_answer(&self, id: VarId) -> Vec<Message> {
        let foreign = self.browser_props.get(&id);
        let mut out = Vec::new();
        for mut m in self.tracker.full_state(id) {
            if let ServerMessage::Update(u) = &mut m {
                u.properties.0.retain(|(name, _)| {
                    name != property::PATH && name != property::ACCESS && !foreign.is_some_and(|f| f.contains(name))
                });
                if u.value.is_none() && u.properties.is_empty() {
                    continue;
                }
            }
            out.push(Message::from(m));
        }
        out
    }

    /// Runs a handle closure against the session and its app, then returns the resulting batch.
    pub(crate) fn run(&mut self, app: &mut dyn Any, f: Job) -> Option<Reply> {
        f(app, self);
        self.flush()
    }
}

fn client_create(var: &ClientVar) -> Message {
    let write = |name: &str, value: &str| PropertyWrite { name: name.into(), value: value.into(), priority: None };
    Message::Create(Create {
        id: var.id,
        parent_id: Some(var.parent),
        properties: vec![write(property::PATH, &var.path), write(property::ACCESS, var.access.as_str())],
        value: None,
        nowatch: !var.watch,
        unbound: false,
    })
}

/// A value this backend writes to a variable.
fn write_message(var_id: VarId, value: Json) -> Message {
    Message::Update(Update { var_id, value: Some(value), properties: None })
}
