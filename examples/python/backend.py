#!/usr/bin/env python3
"""The Tasks app (examples/tasks/viewdefs) served by a Python backend in connected mode.

    ui-gateway --mode connected --site examples/tasks
    pip install websockets
    UI_BACKEND_URL=ws://127.0.0.1:8000/backend python3 examples/python/backend.py

Only the `websockets` package is used: this file is a complete, if small, backend library (PROTOCOL.md
"B9. What a backend must do") plus the app. The app objects are plain Python objects with a TYPE; paths resolve
against their attributes and methods; the `lua.ViewList` wrapper the viewdefs ask for is emulated.
"""

import asyncio
import json
import logging
import os
import random
import re

import websockets

URL = os.environ.get("UI_BACKEND_URL") or "ws://127.0.0.1:8000/backend"
TOKEN = os.environ.get("UI_BACKEND_TOKEN") or None
log = logging.getLogger("tasks-backend")


# ----- the app (same behaviour as examples/tasks/lua/main.lua) -----

class Task:
    TYPE = "Task"

    def __init__(self, app, name, completed=False):
        self.app, self.name, self.completed = app, name, completed

    def remove(self):
        self.app.removeTask(self)


class TasksApp:
    TYPE = "TasksApp"

    def __init__(self):
        self.tasks, self.newName, self.filter = [], "", "all"
        self.add("Buy milk")
        self.add("Write spec").completed = True
        self.add("Walk dog")

    def add(self, name):
        task = Task(self, name)
        self.tasks.append(task)
        return task

    def addTask(self):
        name = (self.newName or "").strip()
        if name:
            self.add(name)
            self.newName = ""

    def clearNew(self):
        self.newName = ""

    def removeTask(self, task):
        self.tasks = [t for t in self.tasks if t is not task]

    def remaining(self):
        return sum(1 for t in self.tasks if not t.completed)

    def filteredTasks(self):
        if self.filter not in ("active", "done"):
            return self.tasks
        want = self.filter == "done"
        return [t for t in self.tasks if bool(t.completed) == want]


# ----- lua.ViewList emulation (docs/viewdefs.md "Lists with lua.ViewList") -----

class ViewListItem:
    TYPE = "lua.ViewListItem"

    def __init__(self, lst, item, index):
        self.list, self.item, self.baseItem, self.index = lst, item, item, index

    def remove(self):
        self.list.removeAt(self.index)


class ViewList:
    TYPE = "lua.ViewList"

    def __init__(self):
        self.items, self.selectionIndex, self.source = [], -1, []

    def sync(self, source):
        """Keeps one item per (element identity, occurrence), so rows keep their ids."""
        self.source = source if isinstance(source, list) else []
        old = {}
        for it in self.items:
            old.setdefault(id(it.baseItem), []).append(it)
        items = []
        for i, element in enumerate(self.source):
            kept = old.get(id(element))
            item = kept.pop(0) if kept else ViewListItem(self, element, i)
            item.index = i
            items.append(item)
        self.items = items

    def removeAt(self, i):
        if 0 <= i < len(self.source):
            del self.source[i]


# ----- paths and values -----

class PathFailure(Exception):
    pass


SEGMENT = re.compile(r"\.\.|[^.]+")


def parse_path(text):
    """`a.b`, `0`, `m()`, `m(_)`, `..` (greedy) → [(kind, name)]."""
    segs = []
    for tok in SEGMENT.findall(text):
        if tok == "..":
            segs.append(("up", None))
        elif tok.endswith("(_)"):
            segs.append(("callarg", tok[:-3]))
        elif tok.endswith("()"):
            segs.append(("call", tok[:-2]))
        elif tok.isdigit() and (tok == "0" or tok[0] != "0"):
            segs.append(("index", int(tok)))
        else:
            segs.append(("name", tok))
    return segs


def is_object(v):
    return hasattr(v, "TYPE")


def get(base, kind, key):
    if base is None:
        return None
    if kind == "index":
        if isinstance(base, list):
            return base[key] if key < len(base) else None
        raise PathFailure(f"cannot index {type(base).__name__} with {key}")
    if not is_object(base):
        raise PathFailure(f"cannot read {key!r} of {type(base).__name__}")
    if not hasattr(base, key):
        raise PathFailure(f"{base.TYPE} has no member {key!r}")
    v = getattr(base, key)
    if kind == "call":
        if not callable(v):
            raise PathFailure(f"{key} is not a method")
        return v()
    return None if callable(v) else v


class Registry:
    """Stable {"obj":N} per object identity, for one session."""

    def __init__(self):
        self.ids, self.objects = {}, {}

    def ref(self, obj):
        n = self.ids.get(id(obj))
        if n is None:
            n = len(self.ids) + 1
            self.ids[id(obj)] = n
            self.objects[n] = obj
        return {"obj": n}

    def to_json(self, v):
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [self.to_json(x) for x in v]
        return self.ref(v)

    def from_json(self, v):
        if isinstance(v, dict) and set(v) == {"obj"}:
            if v["obj"] not in self.objects:
                raise PathFailure(f"unknown object {v['obj']}")
            return self.objects[v["obj"]]
        if isinstance(v, list):
            return [self.from_json(x) for x in v]
        return v


# ----- one session -----

class Var:
    def __init__(self, vid, parent, props):
        self.id, self.parent, self.props = vid, parent, dict(props)
        self.path = parse_path(props.get("path", ""))
        self.access = props.get("access") or "rw"
        self.wrapper = ViewList() if props.get("wrapper") == "lua.ViewList" else None
        self.nav = None  # navigation value for children (the wrapper, else the value)
        self.sent = None  # (value JSON, type, error) last reported


class Session:
    def __init__(self, sid):
        self.id, self.app, self.reg = sid, TasksApp(), Registry()
        self.vars, self.watched, self.generation = {}, set(), None
        self.root_created, self.out, self.answers = False, [], []

    def start_value(self, var):
        return self.app if var.parent == 1 else self.vars[var.parent].nav if var.parent in self.vars else None

    def walk(self, var, segs):
        stack, owner = [self.start_value(var)], var
        for kind, key in segs:
            if kind == "up":
                if len(stack) > 1:
                    stack.pop()  # one step back inside this path
                elif owner.parent == 1 or owner.parent not in self.vars:
                    raise PathFailure("'..' above the root")
                else:  # at the start value: climb one variable
                    owner = self.vars[owner.parent]
                    stack = [self.start_value(owner)]
            else:
                stack.append(get(stack[-1], kind, key))
        return stack[-1]

    def compute(self, var):
        """(value JSON, type, error) of a readable variable; updates its navigation value."""
        if var.access not in ("r", "rw"):
            var.nav = None
            return (None, None, None)
        try:
            raw = self.walk(var, var.path)
        except PathFailure as e:
            var.nav = None
            return (None, None, ("path-failure", str(e)))
        if var.wrapper is not None:
            var.wrapper.sync(raw)
            raw = var.wrapper
        var.nav = raw
        return (self.reg.to_json(raw), raw.TYPE if is_object(raw) else "", None)

    def write(self, var, value):
        if var.access == "r":
            raise PathFailure("read-only variable")
        value = self.reg.from_json(value)
        base = self.walk(var, var.path[:-1])
        kind, key = var.path[-1]
        if kind == "up" or base is None:
            raise PathFailure("cannot write there")
        if kind in ("call", "callarg"):
            method = getattr(base, key, None)
            if not callable(method):
                raise PathFailure(f"{key} is not a method")
            method() if (kind == "call" and var.access == "action") else method(value)
        elif kind == "index":
            base[key] = value
        elif is_object(base) and hasattr(base, key) and not callable(getattr(base, key)):
            setattr(base, key, value)
        else:
            raise PathFailure(f"cannot set {key!r}")

    def error(self, vid, code, description):
        self.out.append({"type": "error", "data": {"varId": vid, "code": code, "description": description}})

    def root_create(self):
        return {"type": "create", "data": {"id": 1, "value": self.reg.ref(self.app), "properties": {"type": "TasksApp"}}}

    def apply(self, messages, generation):
        if self.generation is not None and generation != self.generation:  # replay after a reconnect
            keep = {m["data"].get("id") for m in messages if m.get("type") == "create"}
            for vid in [v for v in self.vars if v not in keep]:
                self.destroy(vid)
            self.watched.clear()
        first = self.generation is None
        self.generation = generation
        if first and not self.root_created:
            self.root_created = True
            self.out.append(self.root_create())
            self.watched.add(1)
        for m in messages:
            kind, data = m.get("type"), m.get("data", {})
            vid = data.get("varId", data.get("id"))
            if kind == "create":
                if vid in self.vars:
                    self.destroy(vid)
                parent = data.get("parentId") or 1
                if parent != 1 and parent not in self.vars:
                    self.error(vid, "not-found", f"parent {parent} not found")
                    continue
                var = self.vars[vid] = Var(vid, parent, data.get("properties", {}))
                var.sent = self.compute(var)
                if not data.get("nowatch"):
                    self.watch(vid)
            elif kind == "update":
                var = self.vars.get(vid)
                if var is None:
                    self.error(vid, "not-found", f"variable {vid} not found")
                    continue
                var.props.update(data.get("properties") or {})
                if "value" in data:
                    try:
                        self.write(var, data["value"])
                        if var.access == "rw":  # not echoed unless it reads back differently
                            var.sent = (self.reg.to_json(self.reg.from_json(data["value"])), var.sent[1], None)
                    except PathFailure as e:
                        self.error(vid, "path-failure", str(e))
            elif kind == "watch":
                self.watch(vid)
            elif kind == "unwatch":
                self.watched.discard(vid)
            elif kind == "destroy":
                self.destroy(vid)
            elif kind == "error":
                log.warning("session %s: gateway error %s", self.id, data)
        return self.flush()

    def watch(self, vid):
        if vid != 1 and vid not in self.vars:
            return self.error(vid, "not-found", f"variable {vid} not found")
        self.watched.add(vid)
        self.answers.append(vid)

    def destroy(self, vid):
        for child in [v for v in self.vars.values() if v.parent == vid]:
            self.destroy(child.id)
        self.vars.pop(vid, None)
        self.watched.discard(vid)

    def flush(self):
        """Recomputes every variable (parents first) and reports what changed for watched ones."""
        messages, self.out = self.out, []
        answers, self.answers = set(self.answers), []
        if 1 in answers and not any(m["type"] == "create" and m["data"]["id"] == 1 for m in messages):
            messages.append({"type": "update", "data": {"varId": 1, "value": self.reg.ref(self.app),
                                                        "properties": {"type": "TasksApp"}}})
        for var in sorted(self.vars.values(), key=lambda v: v.id):
            old, new = var.sent, self.compute(var)
            var.sent = new
            if var.id not in self.watched or var.access not in ("r", "rw"):
                continue
            full = var.id in answers
            if new[2] is not None:
                if full or new[2] != old[2]:
                    messages.append({"type": "error", "data": {"varId": var.id, "code": new[2][0],
                                                               "description": new[2][1]}})
                continue
            data, props = {"varId": var.id}, {}
            if full or new[0] != old[0] or old[2] is not None:
                data["value"] = new[0]
            if var.wrapper is not None and (full or old[1] != new[1]):
                props["fallbackNamespace"] = "list-item"
            if (full and new[1]) or (not full and new[1] != old[1]):
                props["type"] = new[1]
            if props:
                data["properties"] = props
            if len(data) > 1:
                messages.append({"type": "update", "data": data})
        return messages


# ----- the connection -----

class Backend:
    def __init__(self):
        self.sessions, self.epoch, self.generation = {}, None, 0

    def welcome(self, w):
        if w.get("protocol") != 1:
            raise RuntimeError(f"unsupported protocol {w.get('protocol')}")
        live = set(w.get("sessions", []))
        if self.epoch is not None and w["epoch"] != self.epoch:
            self.sessions.clear()  # a new gateway: all state goes
        for sid in [s for s in self.sessions if s not in live]:
            del self.sessions[sid]
        self.epoch, self.generation = w["epoch"], self.generation + 1

    def frame(self, f):
        if "error" in f:
            log.warning("gateway refused a frame: %s", f["error"])
            return None
        sid = f.get("session")
        if f.get("event") == "closed":
            self.sessions.pop(sid, None)
            return None
        session = self.sessions.setdefault(sid, Session(sid))
        messages = session.apply(f.get("messages", []), self.generation)
        if not messages:
            return None
        reply = {"session": sid, "messages": messages}
        if f.get("userEvent"):
            reply["userEvent"] = True
        return reply

    async def serve(self, ws):
        self.welcome(json.loads(await ws.recv())["welcome"])
        log.info("connected to %s", URL)
        async for text in ws:
            reply = self.frame(json.loads(text))
            if reply:
                await ws.send(json.dumps(reply))


def refused_status(e):
    response = getattr(e, "response", None)
    status = getattr(response, "status_code", None) or getattr(e, "status_code", None)
    return status if status in (401, 403) else None


async def main():
    backend, attempt = Backend(), 0
    headers = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}
    while True:
        started = asyncio.get_running_loop().time()
        try:
            try:
                connect = websockets.connect(URL, additional_headers=headers)
            except TypeError:  # websockets < 14
                connect = websockets.connect(URL, extra_headers=headers)
            async with connect as ws:
                await backend.serve(ws)
        except Exception as e:  # noqa: BLE001 - every failure means: reconnect
            if refused_status(e):
                raise SystemExit(f"the gateway refused the backend (HTTP {refused_status(e)})")
            log.warning("connection lost: %s", e)
        if asyncio.get_running_loop().time() - started >= 30:
            attempt = 0
        await asyncio.sleep(min(15.0, 0.5 * 2 ** attempt) * random.uniform(0.5, 1.0))
        attempt = min(attempt + 1, 16)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(main())
