"""The change tracker: one session's variables, resolved against the app's objects, and the
detection pass that turns what changed into ``update`` and ``error`` messages.

After every gateway batch and every handle update the session calls :meth:`Tracker.detect`. Each
readable variable is recomputed (parents before children, so a child navigates from its parent's
fresh value) and compared with the last value the gateway knows. The gateway's own writes set that
baseline at write time, so they are not echoed; action and write-only variables are never read, so a
watch of ``increment()`` never increments.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from .errors import VarError, path_failure
from .model import (
    Registry,
    Seg,
    call_method,
    collect_refs,
    get_index,
    get_member,
    parse_path,
    set_index,
    set_member,
    type_name,
)
from .url_paths import ANCHOR, WRAPPER as URL_PAGE, UrlPaths
from .wrappers import VIEW_LIST, ViewList

ACCESS = ("r", "w", "rw", "action")
_PRIORITY = {"high": 0, "medium": 1, "med": 1, "low": 2}
_UNSET = object()

TypeLookup = Callable[[str], Optional[Callable[..., Any]]]


def message(kind: str, **data: Any) -> Dict[str, Any]:
    """One protocol message ``{"type": kind, "data": {...}}``."""
    return {"type": kind, "data": data}


def error_message(var_id: int, e: VarError) -> Dict[str, Any]:
    return message("error", varId=var_id, code=e.code, description=e.description)


class Var:
    """A variable the gateway created (a browser's, forwarded), resolved by this backend."""

    __slots__ = ("id", "parent", "props", "path", "access", "seq", "wrapper", "nav", "value", "type", "error", "flagged")

    def __init__(self, var_id: int, parent: int, props: Dict[str, str], seq: int) -> None:
        self.id = var_id
        self.parent = parent
        self.props = dict(props)
        self.path: List[Seg] = parse_path(props.get("path", ""))
        self.access = props.get("access") or "rw"
        if self.access not in ACCESS:
            raise VarError("bad-message", f"unknown access {self.access!r}")
        self.seq = seq
        self.wrapper: Optional[ViewList] = None
        #: The value children navigate from: the wrapper, else the raw value.
        self.nav: Any = None
        #: What the gateway knows: value JSON (``_UNSET`` before the first report), type, error.
        self.value: Any = _UNSET
        self.type: Optional[str] = None
        self.error: Optional[VarError] = None
        #: ``fallbackNamespace`` already reported (wrapped variables).
        self.flagged = False

    @property
    def readable(self) -> bool:
        return self.access in ("r", "rw")

    @property
    def priority(self) -> int:
        return _PRIORITY.get(self.props.get("priority", "").lower(), 1)


class Tracker:
    """Variables of one session and their change detection."""

    def __init__(self, registry: Registry, lookup_type: TypeLookup) -> None:
        self.registry = registry
        self.lookup_type = lookup_type
        self.root: Any = None
        self.vars: Dict[int, Var] = {}
        self._seq = 0
        #: The session's URL paths: they answer ``wrapper=lua.UrlPage`` (PROTOCOL.md B9.2).
        self.url_paths: Optional[UrlPaths] = None

    # ----- structure -----

    def create(self, var_id: int, parent: int, props: Dict[str, str]) -> Var:
        if parent != 1 and parent not in self.vars:
            raise VarError("not-found", f"parent {parent} not found")
        self._seq += 1
        var = Var(var_id, parent, props, self._seq)
        self.vars[var_id] = var
        if var.readable:
            value, typ, err = self.compute(var)
            var.value, var.type, var.error = (_UNSET, None, err) if err else (value, typ, None)
        return var

    def destroy(self, var_id: int) -> List[int]:
        """Removes the variable and its descendants; returns their ids, children first."""
        gone: List[int] = []
        for child in [v.id for v in self.vars.values() if v.parent == var_id]:
            gone.extend(self.destroy(child))
        var = self.vars.pop(var_id, None)
        if var is not None:
            if var.wrapper is not None:
                var.wrapper.destroy()
            gone.append(var_id)
        return gone

    # ----- navigation -----

    def _start(self, var: Var) -> Any:
        if var.parent == 1:
            return self.root
        parent = self.vars.get(var.parent)
        return parent.nav if parent is not None else None

    def _walk(self, var: Var, segs: Iterable[Seg]) -> Any:
        stack = [self._start(var)]
        owner = var
        for seg in segs:
            if seg.kind == "up":
                if len(stack) > 1:
                    stack.pop()
                elif owner.parent == 1 or owner.parent not in self.vars:
                    raise path_failure("'..' above the root")
                else:
                    owner = self.vars[owner.parent]
                    stack = [self._start(owner)]
                continue
            base = stack[-1]
            if seg.kind == "name" and seg.key == ANCHOR:
                # The page's URL variable (`uiUrl..`) passes through a name no app defines on its
                # way back to the app: a missing one reads None, as a missing Lua field does.
                try:
                    stack.append(get_member(base, seg.key))
                except VarError:
                    if base is None:
                        raise
                    stack.append(None)
            elif seg.kind == "name":
                stack.append(get_member(base, seg.key))
            elif seg.kind == "index":
                stack.append(get_index(base, seg.key))
            elif seg.kind == "call":
                stack.append(call_method(base, seg.key))
            else:
                raise path_failure(f"{seg.key}(_) can only be written")
        return stack[-1]

    def compute(self, var: Var) -> Tuple[Any, str, Optional[VarError]]:
        """(value JSON, type, error) of a readable variable; refreshes its navigation value."""
        try:
            raw = self._walk(var, var.path)
            if raw is None and var.props.get("create"):
                raw = self._create_value(var)
            wrapper = var.props.get("wrapper", "")
            if wrapper == URL_PAGE and self.url_paths is not None:
                raw = self.url_paths.page(var.id, raw)
            elif wrapper:
                if wrapper != VIEW_LIST:
                    raise VarError("not-found", f"unknown wrapper {wrapper!r}")
                if var.wrapper is None:
                    var.wrapper = ViewList(self.lookup_type)
                var.wrapper._rewrap(raw, var.props.get("itemWrapper", ""))
                raw = var.wrapper
        except VarError as e:
            var.nav = None
            return None, "", e
        var.nav = raw
        return self.registry.to_json(raw), type_name(raw), None

    def _create_value(self, var: Var) -> Any:
        name = var.props["create"]
        factory = self.lookup_type(name)
        if factory is None:
            raise VarError("not-found", f"unknown create type {name!r}")
        value = factory()
        self._assign(var, value)
        return value

    # ----- writes -----

    def _assign(self, var: Var, value: Any) -> None:
        if not var.path:
            raise path_failure("empty path")
        *head, last = var.path
        if last.kind in ("up",):
            raise path_failure("cannot write '..'")
        base = self._walk(var, head)
        if last.kind == "name":
            set_member(base, last.key, value)
        elif last.kind == "index":
            set_index(base, last.key, value)
        elif last.kind == "callarg" or (last.kind == "call" and var.access == "rw"):
            call_method(base, last.key, value)
        else:  # m() on an action variable
            call_method(base, last.key)

    def write(self, var: Var, value_json: Any) -> None:
        """Applies a value the gateway wrote. For a readable variable the written value becomes the
        baseline at once: detection then reports it only if it reads back differently."""
        if var.access == "r":
            raise VarError("access-denied", "read-only variable")
        value = self.registry.from_json(value_json)
        self._assign(var, value)
        if var.readable:
            var.value = self.registry.to_json(value)
            var.error = None

    # ----- detection -----

    def answer(self, var: Var) -> Dict[str, Any]:
        """The full state of a watched variable (a watch answer)."""
        if not var.readable:
            return {}
        value, typ, err = self.compute(var)
        var.error = err
        if err is not None:
            return error_message(var.id, err)
        var.value, var.type = value, typ
        data: Dict[str, Any] = {"varId": var.id, "value": value}
        props: Dict[str, str] = {}
        if var.wrapper is not None:
            props["fallbackNamespace"] = "list-item"
            var.flagged = True
        if typ:
            props["type"] = typ
        if props:
            data["properties"] = props
        return {"type": "update", "data": data}

    def detect(self, watched: set, answers: List[int]) -> List[Dict[str, Any]]:
        """Recomputes every readable variable and returns the messages for watched ones: full answers
        for ``answers``, only changes for the others; by priority, then creation order."""
        out: List[Tuple[int, int, Dict[str, Any]]] = []
        answer_set = set(answers)
        for var in list(self.vars.values()):
            if var.id not in self.vars:
                continue
            if var.id in answer_set:
                msg = self.answer(var)
                if msg:
                    out.append((var.priority, var.seq, msg))
                continue
            if not var.readable:
                continue
            value, typ, err = self.compute(var)
            if err is not None:
                if var.id in watched and err != var.error:
                    out.append((var.priority, var.seq, error_message(var.id, err)))
                var.error = err
                continue
            recovered = var.error is not None
            data: Dict[str, Any] = {"varId": var.id}
            if recovered or value != var.value or _kinds_differ(value, var.value):
                data["value"] = value
            props: Dict[str, str] = {}
            if var.wrapper is not None and not var.flagged:
                props["fallbackNamespace"] = "list-item"
                var.flagged = True
            if typ != (var.type or ""):
                props["type"] = typ
            if props:
                data["properties"] = props
            var.value, var.type, var.error = value, typ, None
            if var.id in watched and len(data) > 1:
                out.append((var.priority, var.seq, {"type": "update", "data": data}))
        out.sort(key=lambda t: (t[0], t[1]))
        return [m for _, _, m in out]

    def release_unreferenced(self, extra: Iterable[Any] = ()) -> None:
        """Drops object numbers no variable's last value references."""
        keep: set = set()
        for var in self.vars.values():
            if var.value is not _UNSET:
                collect_refs(var.value, keep)
        for v in extra:
            collect_refs(v, keep)
        self.registry.retain(keep)


def _kinds_differ(a: Any, b: Any) -> bool:
    """``True`` vs ``1`` and ``1`` vs ``1.5`` compare equal in Python but not on the wire."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and any(_kinds_differ(x, y) for x, y in zip(a, b))
    return type(a) is not type(b)
