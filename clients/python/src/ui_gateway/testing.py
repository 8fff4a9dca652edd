"""A test client for app authors: a real gateway, the app's backend in-process, and browser tabs
driven over the browser WebSocket, so a UI is tested with pytest and no browser.

    from ui_gateway.testing import AppTest

    def test_counter():
        with AppTest(app, site="examples/counter_backend/site") as t:
            tab = t.open()
            assert tab.value("count") == 0
            tab.call("increment()")
            tab.wait_for("count", 1)

The gateway is the ``ui-gateway`` binary from ``$UI_GATEWAY_BIN``, else ``PATH``.
"""

from __future__ import annotations

import http.client
import inspect
import json
import os
import re
import shutil
import subprocess
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from .connection import Client, RunningClient
from .config import ClientConfig

DEFAULT_TIMEOUT = 5.0
_URL = re.compile(r"http://([0-9.]+):([0-9]+)")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class GatewayError(RuntimeError):
    """The gateway binary is missing or did not start."""


def gateway_binary() -> str:
    """``$UI_GATEWAY_BIN``, else ``ui-gateway`` on ``PATH``."""
    path = os.environ.get("UI_GATEWAY_BIN") or shutil.which("ui-gateway")
    if not path:
        raise GatewayError("no ui-gateway binary: set UI_GATEWAY_BIN or put ui-gateway on PATH")
    return path


class Gateway:
    """A ``ui-gateway`` process on a free loopback port (``--listen 127.0.0.1:0``)."""

    def __init__(self, site: Optional[str] = None, mode: str = "connected", binary: Optional[str] = None,
                 args: Sequence[str] = (), token: Optional[str] = None) -> None:
        self.site = site
        self.mode = mode
        self.binary = binary or gateway_binary()
        self.args = list(args)
        self.token = token
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.output: List[str] = []

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.addr}/"

    @property
    def backend_url(self) -> str:
        return f"ws://{self.addr}/backend"

    def start(self, timeout: float = 15.0) -> "Gateway":
        """Starts the process and waits for the URL it prints; a restart keeps the port."""
        cmd = [self.binary, "--listen", f"127.0.0.1:{self.port}", "--mode", self.mode, "--log-level", "warn"]
        if self.site:
            cmd += ["--site", str(self.site)]
        cmd += self.args
        env = {k: v for k, v in os.environ.items() if not k.startswith("UI_")}
        if self.token:
            env["UI_BACKEND_TOKEN"] = self.token
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        found = threading.Event()

        def drain(proc: subprocess.Popen) -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.output.append(line.rstrip())
                m = _URL.search(line)
                if m and not found.is_set():
                    self.port = int(m.group(2))
                    found.set()

        threading.Thread(target=drain, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise GatewayError("ui-gateway did not start: " + "\n".join(self.output[-20:]))
        return self

    def stop(self) -> None:
        """Stops the process (SIGTERM, then SIGKILL)."""
        p, self.proc = self.proc, None
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def restart(self) -> None:
        """A new gateway process on the same port: a new epoch, no sessions."""
        self.stop()
        deadline = time.monotonic() + 10
        while True:
            try:
                self.start()
                return
            except GatewayError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def new_session(self) -> str:
        """``GET /``: a new session; returns its internal (URL) id."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/")
            r = conn.getresponse()
            r.read()
            loc = r.getheader("Location")
            if r.status != 302 or not loc:
                raise GatewayError(f"GET / answered {r.status}")
            return loc.strip("/").split("/")[0]
        finally:
            conn.close()

    def _get(self, path: str) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read().decode()
            if r.status != 200:
                raise GatewayError(f"GET {path} answered {r.status}")
            return body
        finally:
            conn.close()

    def healthz(self) -> Dict[str, Any]:
        """``GET /healthz`` as JSON (``workers`` counts the connected backend workers)."""
        return json.loads(self._get("/healthz"))

    def metric(self, name: str, **labels: str) -> Optional[float]:
        """One sample of ``GET /metrics``: the series ``name`` whose labels include ``labels``
        (``None`` when there is none)."""
        for line in self._get("/metrics").splitlines():
            if line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            if not m or m.group(1) != name:
                continue
            have = dict(_LABEL.findall(m.group(2) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                return float(m.group(3))
        return None

    def open(self, session: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT, wait_root: bool = True) -> "Tab":
        """A browser tab on ``session`` (a new session when ``None``), bootstrapped with ``watch 1``
        and, with ``wait_root``, ready once variable 1 has arrived."""
        return Tab(self, session or self.new_session(), timeout, wait_root)

    def __enter__(self) -> "Gateway":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


Matcher = Union[Any, Callable[[Any], bool]]


class Tab:
    """One browser tab: its own variables (client ids from 2), what the gateway sent it, and helpers
    to read, write, call and wait as a frontend would."""

    def __init__(self, gateway: Gateway, session: str, timeout: float = DEFAULT_TIMEOUT, wait_root: bool = True) -> None:
        self.gateway = gateway
        self.session = session
        self.timeout = timeout
        self.values: Dict[int, Any] = {}
        self.props: Dict[int, Dict[str, str]] = {}
        self.errors: Dict[int, Tuple[str, str]] = {}
        #: Every error received, in order, as ``(varId, code)`` (``errors`` keeps only the current ones).
        self.error_log: List[Tuple[int, str]] = []
        self.destroyed: List[int] = []
        self.viewdefs: Dict[str, str] = {}
        self.close_code: Optional[int] = None
        self._next_id = 2
        self._paths: Dict[Tuple[int, str, str], int] = {}
        kwargs: Dict[str, Any] = {"compression": None, "max_size": None}
        if "proxy" in inspect.signature(ws_connect).parameters:
            kwargs["proxy"] = None  # loopback: never through an HTTP proxy from the environment
        # Entered as a context manager (newer websockets warn otherwise); left in close().
        self._ws = ws_connect(f"ws://{gateway.addr}/ws/{session}", **kwargs).__enter__()
        self.send([{"type": "watch", "data": {"varId": 1}}])
        if wait_root:
            # As the frontends do: children are created once variable 1 is known.
            self.wait(lambda t: 1 in t.values or 1 in t.errors, timeout, "variable 1")

    # ----- raw protocol -----

    def send(self, messages: List[Dict[str, Any]], user_event: bool = False) -> None:
        """Sends one frame ``{"userEvent":…, "messages":[…]}``."""
        self._ws.send(json.dumps({"userEvent": user_event, "messages": messages}))

    def pump(self, timeout: float = 0.05) -> bool:
        """Reads at most one frame (waiting up to ``timeout``) and records it; ``False`` if none came."""
        if self.close_code is not None:
            return False
        try:
            text = self._ws.recv(timeout=timeout)
        except TimeoutError:
            return False
        except ConnectionClosed as e:
            self.close_code = e.rcvd.code if e.rcvd is not None else 1006
            return False
        for m in json.loads(text):
            data = m["data"]
            vid = data["varId"]
            if m["type"] == "update":
                props = dict(data.get("properties") or {})
                if "viewdefs" in props:
                    self.viewdefs.update(json.loads(props.pop("viewdefs")))
                if "value" in data:
                    self.values[vid] = data["value"]
                    self.errors.pop(vid, None)
                if props:
                    self.props.setdefault(vid, {}).update(props)
            elif m["type"] == "error":
                self.errors[vid] = (data["code"], data["description"])
                self.error_log.append((vid, data["code"]))
            elif m["type"] == "destroy":
                self.destroyed.append(vid)
                self.values.pop(vid, None)
        return True

    def wait(self, predicate: Callable[["Tab"], bool], timeout: Optional[float] = None, what: str = "condition") -> None:
        """Reads frames until ``predicate(tab)`` holds; fails with what the tab knows after ``timeout``."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; values={self.values} props={self.props} errors={self.errors} closed={self.close_code}")
            if self.close_code is not None:
                raise AssertionError(f"connection closed ({self.close_code}) waiting for {what}")
            self.pump(min(0.1, max(0.0, deadline - time.monotonic())))

    def wait_closed(self, timeout: Optional[float] = None) -> int:
        """Reads frames until the gateway closes the socket; returns the close code."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while self.close_code is None:
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the connection to close")
            self.pump(0.1)
        return self.close_code

    # ----- variables -----

    def var(self, path: str, parent: int = 1, access: str = "r", nowatch: bool = False, **props: str) -> int:
        """Creates a variable (``path`` may carry a ``?query``) and returns its id. Extra properties
        (``wrapper="lua.ViewList"``) are passed as given."""
        vid = self._next_id
        self._next_id += 1
        properties = {"path": path, "access": access, **props}
        self.send([{"type": "create", "data": {"id": vid, "parentId": parent, "properties": properties, "nowatch": nowatch}}])
        return vid

    def _resolve(self, target: Union[int, str], parent: int, access: str) -> int:
        if isinstance(target, int):
            return target
        key = (parent, target, access)
        if key not in self._paths:
            self._paths[key] = self.var(target, parent, access)
        return self._paths[key]

    def id(self, path: str, parent: int = 1) -> int:
        """The id of a readable variable for ``path`` (created on first use)."""
        return self._resolve(path, parent, "r")

    def value(self, target: Union[int, str], parent: int = 1, timeout: Optional[float] = None) -> Any:
        """The value of a variable (an id) or of ``path`` under ``parent``, waiting for it to arrive.
        A variable in error raises ``AssertionError`` with the error."""
        vid = self._resolve(target, parent, "r")
        self.wait(lambda t: vid in t.values or vid in t.errors, timeout, f"a value of {target!r}")
        if vid in self.errors:
            raise AssertionError(f"{target!r}: {self.errors[vid][0]}: {self.errors[vid][1]}")
        return self.values[vid]

    def prop(self, target: Union[int, str], name: str, parent: int = 1) -> Optional[str]:
        """A property of a variable as last received (``None`` if never received)."""
        vid = self._resolve(target, parent, "r")
        return self.props.get(vid, {}).get(name)

    def error(self, target: Union[int, str], parent: int = 1) -> Optional[str]:
        """The error code currently reported for a variable, if any."""
        vid = self._resolve(target, parent, "r")
        e = self.errors.get(vid)
        return e[0] if e else None

    def write(self, target: Union[int, str], value: Any, parent: int = 1, user_event: bool = True) -> int:
        """Writes ``value`` to a variable or ``path`` (an ``rw`` variable is created on first use)."""
        vid = self._resolve(target, parent, "rw")
        self.send([{"type": "update", "data": {"varId": vid, "value": value}}], user_event)
        return vid

    def call(self, target: Union[int, str], parent: int = 1, arg: Any = None) -> int:
        """Invokes an action (``"increment()"``): an ``action`` variable written with ``arg`` (``null``)."""
        vid = self._resolve(target, parent, "action")
        self.send([{"type": "update", "data": {"varId": vid, "value": arg}}], True)
        return vid

    def wait_for(self, target: Union[int, str], expected: Matcher, parent: int = 1, timeout: Optional[float] = None) -> Any:
        """Waits until a variable's value equals ``expected`` (or ``expected(value)`` is true); returns it."""
        vid = self._resolve(target, parent, "r")
        check = expected if callable(expected) else (lambda v: v == expected)
        self.wait(lambda t: vid in t.values and bool(check(t.values[vid])), timeout, f"{target!r} to match {expected!r}")
        return self.values[vid]

    def wait_error(self, target: Union[int, str], code: str, parent: int = 1, timeout: Optional[float] = None) -> None:
        """Waits until a variable reports error ``code``."""
        vid = self._resolve(target, parent, "r")
        self.wait(lambda t: t.errors.get(vid, ("",))[0] == code, timeout, f"{code} on {target!r}")

    def close(self) -> None:
        """Closes the tab's socket (the gateway destroys its variables)."""
        try:
            self._ws.__exit__(None, None, None)
        except Exception:
            pass


class AppTest:
    """A gateway with ``site`` in ``mode``, and the app's backend (``factory``) running in-process
    on a thread; :meth:`open` gives browser tabs. A context manager."""

    def __init__(self, factory: Callable[..., Any], site: Optional[str] = None, mode: str = "connected",
                 binary: Optional[str] = None, types: Optional[Dict[str, Callable[..., Any]]] = None,
                 gateway_args: Sequence[str] = ()) -> None:
        self.gateway = Gateway(site, mode, binary, gateway_args)
        self.factory = factory
        self.mode = mode
        self.types = types
        self.backend: Optional[RunningClient] = None

    def start(self) -> "AppTest":
        self.gateway.start()
        client = Client(ClientConfig(url=self.gateway.backend_url), self.types)
        backend = client.hybrid(self.factory) if self.mode == "hybrid" else client.connected(self.factory)
        self.backend = backend.start()
        if not self.backend.wait_connected(15):
            self.close()
            raise GatewayError("the backend did not connect: " + "\n".join(self.gateway.output[-20:]))
        return self

    def open(self, session: Optional[str] = None, timeout: float = DEFAULT_TIMEOUT, wait_root: bool = True) -> Tab:
        """A new tab: on a new session, or on ``session`` (another tab's ``tab.session``)."""
        return self.gateway.open(session, timeout, wait_root)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.stop()
            self.backend = None
        self.gateway.stop()

    def __enter__(self) -> "AppTest":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
