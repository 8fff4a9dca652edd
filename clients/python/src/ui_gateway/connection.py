"""The ``/backend`` connection: connect, welcome, route frames to sessions, reconnect with backoff,
and the epoch and replay rules of PROTOCOL.md B6 and B10."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
from typing import Any, Callable, Dict, List, Optional

from .config import Backoff, ClientConfig
from .errors import ClientError, ProtocolMismatch, Refused
from .session import CONNECTED, HYBRID, Session

log = logging.getLogger("ui_gateway")

PROTOCOL_VERSION = 1
DEFAULT_MAX_FRAME = 16 * 1024 * 1024

Factory = Callable[[Session], Any]

try:  # websockets >= 13
    from websockets.asyncio.client import connect as _ws_connect

    _HEADERS_ARG = "additional_headers"
except ImportError:  # pragma: no cover - older websockets
    from websockets import connect as _ws_connect  # type: ignore

    _HEADERS_ARG = "extra_headers"


_HAS_PROXY_ARG = "proxy" in inspect.signature(_ws_connect).parameters


def _refused_status(e: BaseException) -> Optional[int]:
    response = getattr(e, "response", None)
    status = getattr(response, "status_code", None) or getattr(e, "status_code", None)
    return status if status in (401, 403) else None


class _Link:
    """The current connection's outbound queue; frames produced while disconnected are dropped (the
    replay after the reconnect re-asks for every watched value)."""

    def __init__(self) -> None:
        self.queue: Optional[asyncio.Queue] = None
        self.max_frame = DEFAULT_MAX_FRAME

    def send(self, frame: Dict[str, Any]) -> None:
        if self.queue is None:
            return
        for part in _split(frame, self.max_frame):
            self.queue.put_nowait(part)


def _split(frame: Dict[str, Any], limit: int) -> List[str]:
    """Serialises a batch, split at message boundaries when it would exceed ``limit`` bytes."""
    text = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) <= limit or len(frame.get("messages", [])) < 2:
        return [text]
    msgs = frame["messages"]
    half = len(msgs) // 2
    return _split(dict(frame, messages=msgs[:half]), limit) + _split(dict(frame, messages=msgs[half:]), limit)


class Backend:
    """A configured backend (from :meth:`Client.connected` or :meth:`Client.hybrid`). Run it with
    :meth:`run` (blocking), ``await`` :meth:`serve` inside an asyncio program, or :meth:`start` it on
    a thread of its own."""

    def __init__(self, config: ClientConfig, mode: str, factory: Factory, types: Optional[Dict[str, Callable[..., Any]]] = None) -> None:
        self.config = config
        self.mode = mode
        self.factory = factory
        self.types = dict(types or {})
        self.sessions: Dict[str, Session] = {}
        self._epoch: Optional[str] = None
        self._generation = 0
        self._session_generation: Dict[str, int] = {}
        self._link = _Link()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._ws: Any = None
        #: Set once the welcome of a connection was received (tests wait on it).
        self.connected = threading.Event()

    # ----- running -----

    def run(self) -> None:
        """Runs until stopped (Ctrl-C) or refused: blocks the calling thread."""
        try:
            asyncio.run(self.serve())
        except KeyboardInterrupt:
            pass

    async def serve(self) -> None:
        """Serves in the running asyncio loop until :meth:`stop` or a refusal (raises :class:`Refused`)."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        backoff = Backoff()
        try:
            while not self._stop.is_set():
                started = self._loop.time()
                try:
                    await self._connection()
                except (Refused, ProtocolMismatch):
                    raise
                except Exception as e:  # every other failure means: reconnect
                    log.warning("gateway connection lost: %s", e or type(e).__name__)
                finally:
                    self._link.queue = None
                    self._ws = None
                    self.connected.clear()
                if self._stop.is_set():
                    break
                backoff.connection_ended(self._loop.time() - started)
                delay = backoff.next_delay()
                log.info("reconnecting in %.2f s (attempt %d)", delay, backoff.attempt)
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._close_all()

    def stop(self) -> None:
        """Asks :meth:`serve` to close the connection and return (thread-safe)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)

    def start(self) -> "RunningClient":
        """Starts the client on its own thread and returns at once."""
        return RunningClient(self)

    def disconnect(self) -> None:
        """Drops the current connection without a close frame (thread-safe), as a network failure
        would; the client reconnects by itself. For tests of replay and reconnect."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._abort)

    def _abort(self) -> None:
        ws = self._ws
        if ws is not None and getattr(ws, "transport", None) is not None:
            ws.transport.abort()

    # ----- one connection -----

    async def _connection(self) -> None:
        cfg = self.config
        headers = {"Authorization": f"Bearer {cfg.token}"} if cfg.token else {}
        kwargs: Dict[str, Any] = {_HEADERS_ARG: headers, "compression": None, "max_size": None,
                                  "ping_interval": 20, "ping_timeout": cfg.silence_timeout, "open_timeout": cfg.connect_timeout}
        if _HAS_PROXY_ARG:
            kwargs["proxy"] = None  # like the Rust client: a direct connection
        try:
            ws = await _ws_connect(cfg.url, **kwargs)
        except Exception as e:
            status = _refused_status(e)
            if status is not None:
                raise Refused(status) from None
            raise
        self._ws = ws
        try:
            stopper = asyncio.ensure_future(self._stop.wait())  # type: ignore[union-attr]
            first = asyncio.ensure_future(ws.recv())
            done, _ = await asyncio.wait({stopper, first}, timeout=cfg.silence_timeout, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done or not done:
                first.cancel()
                stopper.cancel()
                if not done:
                    raise ClientError("no welcome from the gateway")
                return
            self._welcome(first.result())
            queue: asyncio.Queue = asyncio.Queue()
            self._link.queue = queue
            self.connected.set()
            writer = asyncio.ensure_future(self._write(ws, queue))
            reader = asyncio.ensure_future(self._read(ws))
            done, pending = await asyncio.wait({stopper, writer, reader}, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            for t in done:
                if t is not stopper and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
            if stopper in done:
                await ws.close(1000, "backend stopping")
        finally:
            if getattr(ws, "transport", None) is not None and self._stop is not None and not self._stop.is_set():
                ws.transport.abort()

    async def _write(self, ws: Any, queue: asyncio.Queue) -> None:
        while True:
            text = await queue.get()
            await ws.send(text)

    async def _read(self, ws: Any) -> None:
        async for data in ws:
            self._frame(data)
        raise ClientError(f"closed by the gateway ({getattr(ws, 'close_code', None)})")

    def _welcome(self, data: Any) -> None:
        try:
            w = json.loads(data)["welcome"]
        except (ValueError, KeyError, TypeError):
            raise ClientError(f"expected the welcome, got {str(data)[:200]!r}") from None
        if w.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolMismatch(f"the gateway speaks backend protocol {w.get('protocol')!r}, this client {PROTOCOL_VERSION}")
        epoch = w.get("epoch")
        live = set(w.get("sessions") or [])
        if self._epoch is not None and epoch != self._epoch:
            log.info("new gateway epoch: dropping all %d sessions", len(self.sessions))
            self._close_all()
        else:
            for sid in [s for s in self.sessions if s not in live]:
                self._close_session(sid)
        self._epoch = epoch
        self._generation += 1
        limits = w.get("limits") or {}
        self._link.max_frame = int(limits.get("maxFrameBytes") or DEFAULT_MAX_FRAME)
        if w.get("mode") != self.mode:
            log.warning("the gateway runs in %s mode, this backend in %s mode", w.get("mode"), self.mode)
        log.info("connected to %s (%d live sessions)", self.config.url, len(live))

    def _frame(self, data: Any) -> None:
        try:
            f = json.loads(data)
        except ValueError:
            log.warning("unreadable frame from the gateway")
            return
        if not isinstance(f, dict):
            return
        sid = f.get("session")
        if not isinstance(sid, str):
            if "error" in f:
                log.warning("the gateway refused a frame: %s", f["error"])
            return
        if f.get("event") == "closed":
            self._close_session(sid)
            return
        messages = f.get("messages")
        if not isinstance(messages, list):
            return
        session = self.sessions.get(sid)
        first = session is None
        if session is None:
            session = Session(sid, self.mode, self._link.send, self.types, self._loop)
            try:
                session._set_app(self.factory(session))
            except Exception:
                log.exception("session %s: the app factory failed", sid)
                return
            self.sessions[sid] = session
        replay = not first and self._session_generation.get(sid) != self._generation
        self._session_generation[sid] = self._generation
        reply = session._apply_batch(messages, f.get("userEvent") is True, first, replay)
        if reply is not None:
            self._link.send(reply)

    def _close_session(self, sid: str) -> None:
        s = self.sessions.pop(sid, None)
        self._session_generation.pop(sid, None)
        if s is not None:
            s._close()

    def _close_all(self) -> None:
        for sid in list(self.sessions):
            self._close_session(sid)


class RunningClient:
    """A backend running on a thread of its own (:meth:`Backend.start`)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._main, name="ui-gateway-backend", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            asyncio.run(self.backend.serve())
        except BaseException as e:  # kept for wait()
            self.error = e

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Waits until the backend holds a gateway connection."""
        return self.backend.connected.wait(timeout)

    def disconnect(self) -> None:
        """:meth:`Backend.disconnect`."""
        self.backend.disconnect()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the backend and waits for its thread; re-raises a refusal."""
        deadline = threading.Event()
        while self.backend._loop is None and self._thread.is_alive() and not deadline.wait(0.01):
            pass
        self.backend.stop()
        self._thread.join(timeout)
        if self.error is not None and not isinstance(self.error, (KeyboardInterrupt, asyncio.CancelledError)):
            raise self.error

    def __enter__(self) -> "RunningClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Client:
    """Entry point: where to connect; pick the mode with :meth:`connected` or :meth:`hybrid`."""

    def __init__(self, config: Optional[ClientConfig] = None, types: Optional[Dict[str, Callable[..., Any]]] = None) -> None:
        self.config = config or ClientConfig()
        self.types = dict(types or {})

    @classmethod
    def from_env(cls) -> "Client":
        """Reads ``UI_BACKEND_URL`` (default ``ws://127.0.0.1:8000/backend``) and ``UI_BACKEND_TOKEN``."""
        return cls(ClientConfig.from_env())

    @classmethod
    def at(cls, url: str, token: Optional[str] = None) -> "Client":
        """A client for an explicit gateway URL."""
        return cls(ClientConfig(url=url, token=token))

    def register_type(self, name: str, factory: Callable[..., Any]) -> "Client":
        """Registers an ``itemWrapper`` presenter or ``create`` type for every session."""
        self.types[name] = factory
        return self

    def connected(self, factory: Factory) -> Backend:
        """A connected-mode backend: ``factory(session)`` builds each session's app; it is variable 1."""
        return Backend(self.config, CONNECTED, factory, self.types)

    def hybrid(self, factory: Factory) -> Backend:
        """A hybrid-mode backend: Lua owns the UI; ``factory(session)`` sets up client variables
        (:meth:`Session.client_var`) and returns the session's state (``None`` is fine)."""
        return Backend(self.config, HYBRID, factory, self.types)
