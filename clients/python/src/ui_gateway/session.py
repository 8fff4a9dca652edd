"""One browser session on the backend side: its app, its variables and the rules of the backend
protocol (PROTOCOL.md B9) that turn a gateway batch into the reply batch."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from .errors import VarError
from .model import Registry
from .tracker import Tracker, error_message, message
from .url_paths import PROPERTY as URL_PATHS, URL_PATH, WRAPPER as URL_PAGE, UrlPaths
from .wrappers import VIEW_LIST, VIEW_LIST_ITEM, ViewList, ViewListItem

if TYPE_CHECKING:
    from .handle import SessionHandle

log = logging.getLogger("ui_gateway")

CONNECTED = "connected"
HYBRID = "hybrid"

ValueCallback = Callable[[Any, "Session"], None]


@dataclass
class ClientVar:
    """A variable this backend created under a Lua-owned variable (hybrid mode)."""

    id: int
    parent: int
    path: str
    access: str
    watch: bool
    value: Any = None
    has_value: bool = False
    written: Any = None
    has_written: bool = False
    callback: Optional[ValueCallback] = field(default=None, repr=False)

    def create_message(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"id": self.id, "parentId": self.parent, "properties": {"path": self.path, "access": self.access}}
        if not self.watch:
            data["nowatch"] = True
        return {"type": "create", "data": data}


class Session:
    """A browser session's backend state, handed to the app factory.

    The factory runs once per session (on its first batch) and returns the app object; in connected
    mode that object is variable 1. Use :meth:`handle` to change the app from other threads or
    asyncio tasks, :meth:`on_close` to release resources, and (hybrid mode) :meth:`client_var`,
    :meth:`write` and :meth:`on_value` to work with Lua-owned variables.
    """

    def __init__(self, session_id: str, mode: str, sender: Callable[[Dict[str, Any]], None],
                 types: Optional[Dict[str, Callable[..., Any]]] = None, scheduler: Any = None) -> None:
        self._id = session_id
        self._mode = mode
        self._send = sender
        self._types: Dict[str, Callable[..., Any]] = {VIEW_LIST: ViewList, VIEW_LIST_ITEM: ViewListItem}
        self._types.update(types or {})
        self._registry = Registry()
        self._tracker = Tracker(self._registry, self._types.get)
        #: Registered URL paths and the pages showing them (PROTOCOL.md B9.2).
        self._url_paths = UrlPaths(session_id)
        self._tracker.url_paths = self._url_paths
        self._root_created = False
        self._root_pending = False
        self._watched: set = set()
        self._answers: List[int] = []
        self._out: List[Dict[str, Any]] = []
        self._client_vars: List[ClientVar] = []
        self._next_client_id = -1
        self._user_event = False
        self._close_callbacks: List[Callable[[], None]] = []
        self._scheduler = scheduler
        self._handle: Optional["SessionHandle"] = None
        self.closed = False
        #: The app object the factory returned.
        self.app: Any = None

    # ----- public API -----

    @property
    def id(self) -> str:
        """The vended session id (``"1"``, ``"2"``, ...), unique within one gateway epoch."""
        return self._id

    @property
    def mode(self) -> str:
        """``"connected"`` or ``"hybrid"``."""
        return self._mode

    def handle(self) -> "SessionHandle":
        """A thread-safe handle: ``handle.update(fn)`` runs ``fn(app)`` on the client's loop, then
        detects and sends the changes. Usable from any thread or asyncio task."""
        from .handle import SessionHandle

        if self._handle is None:
            self._handle = SessionHandle(self, self._scheduler)
        return self._handle

    def on_close(self, fn: Callable[[], None]) -> None:
        """Calls ``fn()`` once when the session ends (closed by the gateway, dropped on a new
        gateway epoch, or the client stopping)."""
        self._close_callbacks.append(fn)

    def register_type(self, name: str, factory: Callable[..., Any]) -> None:
        """Makes ``name`` usable as an ``itemWrapper`` (``factory(view_list_item)``) or a ``create``
        type (``factory()``) in this session."""
        self._types[name] = factory

    def is_watched(self, var_id: int) -> bool:
        """Whether the gateway currently watches variable ``var_id``."""
        return var_id in self._watched

    def register_url_path(self, path: str, presenter: Any) -> None:
        """Shows ``presenter`` to pages whose address is ``path``, so ``GET /<session>/about`` opens
        the app on it. Paths are normalised (``about/`` is ``/about``, ``""`` is ``/``); until ``/``
        is registered, ``/`` and unknown addresses show the app. The first registration marks
        variable 1 with ``urlPaths=on``, which makes the page route by address. Connected mode
        only: in hybrid mode Lua owns variable 1 and ``session:registerUrlPath`` does this."""
        if self._url_paths.register(path, presenter) and self._root_created and not self._root_pending:
            self._out.append(message("update", varId=1, properties={URL_PATHS: "on"}))

    def resolve_url_path(self, path: str) -> Any:
        """The presenter registered for ``path`` (``None`` when the address shows the default view)."""
        return self._url_paths.presenter_of(path)

    def navigate(self, path: str) -> None:
        """Moves every open page of the session to ``path``: its ``path`` changes (the browser pushes
        a history entry, so Back returns) and it shows that address's presenter. Sent with the next
        flush: at once inside a browser event or a ``handle().update(...)``."""
        self._url_paths.navigate(path)

    def client_var(self, parent: int, path: str, access: str = "rw", watch: bool = False) -> int:
        """Hybrid mode: creates a variable under the Lua-owned variable ``parent`` (usually 1),
        resolved by Lua through ``path``. With ``watch`` the gateway reports its values to
        :meth:`on_value` callbacks. Returns its (negative) id; re-created after reconnects."""
        var = ClientVar(self._next_client_id, parent, path, access, watch)
        self._next_client_id -= 1
        self._client_vars.append(var)
        self._out.append(var.create_message())
        return var.id

    def on_value(self, var_id: int, fn: ValueCallback) -> None:
        """Calls ``fn(value, session)`` with every value the gateway reports for client variable ``var_id``."""
        var = self._client_var(var_id)
        if var is not None:
            var.callback = fn

    def client_value(self, var_id: int) -> Any:
        """The last value the gateway reported for client variable ``var_id`` (``None`` before any)."""
        var = self._client_var(var_id)
        return var.value if var is not None else None

    def write(self, var_id: int, value: Any) -> None:
        """Writes ``value`` (plain JSON) to client variable ``var_id``; Lua applies it like a browser write."""
        var = self._client_var(var_id)
        if var is not None:
            var.written, var.has_written = value, True
        self._out.append(message("update", varId=var_id, value=value))

    def destroy_client_var(self, var_id: int) -> None:
        """Destroys client variable ``var_id``."""
        var = self._client_var(var_id)
        if var is not None:
            self._client_vars.remove(var)
            self._out.append(message("destroy", varId=var_id))

    def flush(self) -> None:
        """Detects changes now and sends them (normally done for you after every batch and handle update)."""
        frame = self._flush()
        if frame is not None:
            self._send(frame)

    # ----- internals -----

    def _client_var(self, var_id: int) -> Optional[ClientVar]:
        for v in self._client_vars:
            if v.id == var_id:
                return v
        return None

    def _set_app(self, app: Any) -> None:
        self.app = app
        self._tracker.root = app

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for var in list(self._tracker.vars):
            self._tracker.destroy(var)
        for fn in self._close_callbacks:
            try:
                fn()
            except Exception:
                log.exception("session %s: on_close callback failed", self._id)

    def _apply_batch(self, messages: List[Any], user_event: bool, first: bool, replay: bool) -> Optional[Dict[str, Any]]:
        self._user_event |= user_event
        if first and self._mode == CONNECTED:
            self._ensure_root()
        if replay:
            self._start_replay(messages)
        for m in messages:
            try:
                self._apply(m)
            except Exception:
                log.exception("session %s: failed to apply %r", self._id, m)
        return self._flush()

    def _start_replay(self, messages: List[Any]) -> None:
        """B9 rule 9: the replay's creates are the complete set of browser variables; its watches the
        complete set of watches; client variables are re-created (and their last write re-sent)."""
        replayed = {m.get("data", {}).get("id") for m in messages if isinstance(m, dict) and m.get("type") == "create"}
        for var_id in [v for v in self._tracker.vars if v not in replayed]:
            self._destroy(var_id)
        self._watched.clear()
        for var in self._client_vars:
            self._out.append(var.create_message())
            if var.has_written:
                self._out.append(message("update", varId=var.id, value=var.written))

    def _apply(self, m: Any) -> None:
        if not isinstance(m, dict) or not isinstance(m.get("data"), dict):
            log.warning("session %s: unreadable message %r", self._id, m)
            return
        kind, data = m.get("type"), m["data"]
        if kind == "error":
            log.warning("session %s: the gateway reported %s on %s: %s", self._id, data.get("code"), data.get("varId"), data.get("description"))
            return
        var_id = data.get("id") if kind == "create" else data.get("varId")
        if isinstance(var_id, bool) or not isinstance(var_id, int):
            log.warning("session %s: message without an id: %r", self._id, m)
            return
        if kind == "create":
            self._create(var_id, data)
        elif kind == "update":
            self._update(var_id, data)
        elif kind == "destroy":
            self._destroy(var_id)
        elif kind == "watch":
            self._watch(var_id)
        elif kind == "unwatch":
            self._watched.discard(var_id)
        else:
            log.warning("session %s: unknown message type %r", self._id, kind)

    def _error(self, var_id: int, e: VarError) -> None:
        self._out.append(error_message(var_id, e))

    def _ensure_root(self) -> bool:
        if self._root_created:
            return True
        if self.app is None:
            return False
        self._root_created = True
        self._root_pending = True
        return True

    def _create(self, var_id: int, data: Dict[str, Any]) -> None:
        if var_id < 2:
            log.warning("session %s: the gateway forwarded a create with id %s", self._id, var_id)
            return
        if var_id in self._tracker.vars:
            self._destroy(var_id)
        parent = data.get("parentId") or 1
        if parent == 1:
            self._ensure_root()
        props = {k: v for k, v in (data.get("properties") or {}).items() if isinstance(v, str)}
        if props.get("wrapper") == URL_PAGE:
            self._url_paths.page_created(var_id, props.get(URL_PATH))
        try:
            self._tracker.create(var_id, parent, props)
        except VarError as e:
            self._url_paths.forget(var_id)
            self._error(var_id, e)
            return
        if not data.get("nowatch"):
            self._watch(var_id)

    def _update(self, var_id: int, data: Dict[str, Any]) -> None:
        if var_id < 0:
            cv = self._client_var(var_id)
            if cv is not None:
                if "value" in data:
                    cv.value, cv.has_value = data["value"], True
                    if cv.callback is not None:
                        try:
                            cv.callback(data["value"], self)
                        except Exception:
                            log.exception("session %s: on_value callback failed", self._id)
                return
        var = self._tracker.vars.get(var_id)
        if var is None:
            self._error(var_id, VarError("not-found", f"variable {var_id} not found"))
            return
        props = data.get("properties")
        if isinstance(props, dict):
            for k, v in props.items():
                if not isinstance(v, str):
                    continue
                if v == "":
                    var.props.pop(k, None)
                else:
                    var.props[k] = v
        if "value" in data:
            try:
                self._tracker.write(var, data["value"])
            except VarError as e:
                self._error(var_id, e)

    def _destroy(self, var_id: int) -> None:
        for gone in self._tracker.destroy(var_id):
            self._url_paths.forget(gone)
            self._watched.discard(gone)

    def _watch(self, var_id: int) -> None:
        if var_id == 1:
            if not self._root_created:
                if self._ensure_root():
                    self._watched.add(1)
                else:
                    self._error(1, VarError("not-found", "this backend has no root object"))
                return
            self._watched.add(1)
            self._answers.append(1)
            return
        if var_id not in self._tracker.vars:
            self._error(var_id, VarError("not-found", f"variable {var_id} not found"))
            return
        self._watched.add(var_id)
        self._answers.append(var_id)

    def _root_data(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"id": 1, "value": self._registry.to_json(self.app)}
        data["properties"] = {"type": _type_of(self.app)}
        if self._url_paths.any():
            data["properties"][URL_PATHS] = "on"
        return data

    def _flush(self) -> Optional[Dict[str, Any]]:
        messages: List[Dict[str, Any]] = []
        answers, self._answers = self._answers, []
        if self._root_pending:
            self._root_pending = False
            messages.append({"type": "create", "data": self._root_data()})
            answers = [a for a in answers if a != 1]
        elif 1 in answers:
            data = self._root_data()
            data["varId"] = data.pop("id")
            messages.append({"type": "update", "data": data})
        messages.extend(self._out)
        self._out = []
        seen: List[int] = []
        for a in answers:
            if a != 1 and a not in seen:
                seen.append(a)
        messages.extend(self._tracker.detect(self._watched, seen))
        self._tracker.release_unreferenced([self._registry.to_json(self.app)] if self._root_created else [])
        user_event, self._user_event = self._user_event, False
        if not messages:
            return None
        frame: Dict[str, Any] = {"session": self._id, "messages": messages}
        if user_event:
            frame["userEvent"] = True
        return frame


def _type_of(v: Any) -> str:
    from .model import type_name

    return type_name(v)
