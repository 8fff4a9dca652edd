"""The ``/backend`` connection: connect, welcome, route frames to sessions, reconnect with backoff,
and the epoch and replay rules of PROTOCOL.md B6 and B10."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import signal
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from .config import Backoff, ClientConfig, split_urls
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
    """One gateway link's outbound queue for its current connection; frames produced while disconnected are dropped (the
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


class _GatewayLink:
    """One gateway: its connection, the sessions that came from it (session ids are vended per
    gateway, PROTOCOL.md B14) and what its last welcome said."""

    def __init__(self, backend: "Backend", url: str, endpoint: str) -> None:
        self.backend = backend
        self.url = url
        #: ``url`` with the worker's query (``?worker=…&capacity=…``).
        self.endpoint = endpoint
        self.sessions: Dict[str, Session] = {}
        self.epoch: Optional[str] = None
        self.generation = 0
        self.session_generation: Dict[str, int] = {}
        self.out = _Link()
        self.ws: Any = None
        #: Set while this link holds a connection that sent its welcome.
        self.connected = threading.Event()
        #: Set when a session ends, so a draining connection re-checks whether it may leave.
        self.sessions_changed: Optional[asyncio.Event] = None

    # ----- the link's life: reconnect until stopped, drained or refused -----

    async def run(self) -> None:
        b = self.backend
        assert b._loop is not None and b._stop is not None and b._drain is not None
        self.sessions_changed = asyncio.Event()
        backoff = Backoff()
        try:
            while not b._stop.is_set():
                started = b._loop.time()
                try:
                    await self._connection()
                except (Refused, ProtocolMismatch):
                    raise
                except Exception as e:  # every other failure means: reconnect
                    log.warning("gateway %s: connection lost: %s", self.url, e or type(e).__name__)
                finally:
                    self.out.queue = None
                    self.ws = None
                    self.connected.clear()
                    b.connected.clear()
                # A draining client does not come back: its sessions move to other workers.
                if b._stop.is_set() or b._drain.is_set():
                    break
                backoff.connection_ended(b._loop.time() - started)
                delay = backoff.next_delay()
                log.info("gateway %s: reconnecting in %.2f s (attempt %d)", self.url, delay, backoff.attempt)
                if await _first(b._stop.wait(), b._drain.wait(), timeout=delay):
                    break
        finally:
            self.close_all()

    async def _connection(self) -> None:
        b = self.backend
        cfg = b.config
        assert b._stop is not None and b._drain is not None
        headers = {"Authorization": f"Bearer {cfg.token}"} if cfg.token else {}
        kwargs: Dict[str, Any] = {_HEADERS_ARG: headers, "compression": None, "max_size": None,
                                  "ping_interval": 20, "ping_timeout": cfg.silence_timeout, "open_timeout": cfg.connect_timeout}
        if _HAS_PROXY_ARG:
            kwargs["proxy"] = None  # like the Rust client: a direct connection
        try:
            ws = await _ws_connect(self.endpoint, **kwargs)
        except Exception as e:
            status = _refused_status(e)
            if status is not None:
                raise Refused(status) from None
            raise
        self.ws = ws
        left = False
        tasks: List[asyncio.Future] = []
        try:
            stopper = asyncio.ensure_future(b._stop.wait())
            drainer = asyncio.ensure_future(b._drain.wait())
            tasks += [stopper, drainer]
            first = asyncio.ensure_future(ws.recv())
            tasks.append(first)
            done, _ = await asyncio.wait({stopper, drainer, first}, timeout=cfg.silence_timeout, return_when=asyncio.FIRST_COMPLETED)
            if first not in done:
                if not done:
                    raise ClientError("no welcome from the gateway")
                # Stopped or draining before the welcome: nothing is held here yet.
                await ws.close(1000, "backend stopping")
                left = True
                return
            self._welcome(first.result())
            queue: asyncio.Queue = asyncio.Queue()
            self.out.queue = queue
            if cfg.capacity is not None:
                # Also in the URL; the hello keeps a gateway that ignores the query informed.
                queue.put_nowait(json.dumps({"hello": {"capacity": cfg.capacity}}, separators=(",", ":")))
            self.connected.set()
            b._link_connected()
            writer = asyncio.ensure_future(self._write(ws, queue))
            reader = asyncio.ensure_future(self._read(ws))
            tasks += [writer, reader]
            draining = False
            while True:
                if drainer.done() and not draining:
                    log.info("gateway %s: draining (%d sessions): no new sessions", self.url, len(self.sessions))
                    queue.put_nowait('{"drain":true}')
                    draining = True
                if draining and (not self.sessions or b._drain_deadline_passed()):
                    log.info("gateway %s: drained (%d sessions left): leaving", self.url, len(self.sessions))
                    await self._leave(ws, queue, writer, "backend drained")
                    left = True
                    return
                assert self.sessions_changed is not None
                self.sessions_changed.clear()
                changed = asyncio.ensure_future(self.sessions_changed.wait())
                waits = {stopper, writer, reader, changed}
                if not draining:
                    waits.add(drainer)
                done, _ = await asyncio.wait(waits, timeout=b._drain_remaining() if draining else None,
                                             return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                for t in (writer, reader):
                    if t in done:
                        exc = t.exception()
                        raise exc if exc is not None else ClientError("connection ended")
                if stopper in done:
                    await self._leave(ws, queue, writer, "backend stopping")
                    left = True
                    return
        finally:
            for t in tasks:
                t.cancel()
            if not left and getattr(ws, "transport", None) is not None:
                ws.transport.abort()

    async def _leave(self, ws: Any, queue: asyncio.Queue, writer: asyncio.Future, reason: str) -> None:
        """Sends the replies already queued, then closes normally (1000)."""
        self.out.queue = None  # nothing new after this point
        queue.put_nowait(None)
        try:
            await writer
        except Exception as e:
            log.info("gateway %s: could not send the last replies: %s", self.url, e)
            return
        await ws.close(1000, reason)

    async def _write(self, ws: Any, queue: asyncio.Queue) -> None:
        while True:
            text = await queue.get()
            if text is None:  # _leave: everything before it is sent
                return
            await ws.send(text)

    async def _read(self, ws: Any) -> None:
        async for data in ws:
            self._frame(data)
        raise ClientError(f"closed by the gateway ({getattr(ws, 'close_code', None)})")

    # ----- frames -----

    def _welcome(self, data: Any) -> None:
        b = self.backend
        try:
            w = json.loads(data)["welcome"]
        except (ValueError, KeyError, TypeError):
            raise ClientError(f"expected the welcome, got {str(data)[:200]!r}") from None
        if w.get("protocol") != PROTOCOL_VERSION:
            raise ProtocolMismatch(f"the gateway speaks backend protocol {w.get('protocol')!r}, this client {PROTOCOL_VERSION}")
        epoch = w.get("epoch")
        live = set(w.get("sessions") or [])
        if self.epoch is not None and epoch != self.epoch:
            log.info("gateway %s: new epoch: dropping all %d sessions", self.url, len(self.sessions))
            self.close_all()
        else:
            for sid in [s for s in self.sessions if s not in live]:
                self.close_session(sid)
        self.epoch = epoch
        self.generation += 1
        limits = w.get("limits") or {}
        self.out.max_frame = int(limits.get("maxFrameBytes") or DEFAULT_MAX_FRAME)
        if w.get("mode") != b.mode:
            log.warning("the gateway runs in %s mode, this backend in %s mode", w.get("mode"), b.mode)
        log.info("connected to %s (%d live sessions)", self.url, len(live))

    def _frame(self, data: Any) -> None:
        b = self.backend
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
            self.close_session(sid)
            return
        messages = f.get("messages")
        if not isinstance(messages, list):
            return
        session = self.sessions.get(sid)
        first = session is None
        if session is None:
            session = Session(sid, b.mode, self.out.send, b.types, b._loop)
            try:
                session._set_app(b.factory(session))
            except Exception:
                log.exception("session %s: the app factory failed", sid)
                return
            self.sessions[sid] = session
        replay = not first and self.session_generation.get(sid) != self.generation
        self.session_generation[sid] = self.generation
        reply = session._apply_batch(messages, f.get("userEvent") is True, first, replay)
        if reply is not None:
            self.out.send(reply)

    def close_session(self, sid: str) -> None:
        s = self.sessions.pop(sid, None)
        self.session_generation.pop(sid, None)
        if s is not None:
            s._close()
            if self.sessions_changed is not None:
                self.sessions_changed.set()

    def close_all(self) -> None:
        for sid in list(self.sessions):
            self.close_session(sid)


async def _first(*aws: Any, timeout: Optional[float] = None) -> bool:
    """Waits for the first of ``aws`` (cancelling the rest); ``False`` when ``timeout`` came first."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for t in tasks:
            t.cancel()


class Backend:
    """A configured backend (from :meth:`Client.connected` or :meth:`Client.hybrid`). Run it with
    :meth:`run` (blocking), ``await`` :meth:`serve` inside an asyncio program, or :meth:`start` it on
    a thread of its own. It keeps one link to each configured gateway."""

    def __init__(self, config: ClientConfig, mode: str, factory: Factory, types: Optional[Dict[str, Callable[..., Any]]] = None) -> None:
        self.config = config
        self.mode = mode
        self.factory = factory
        self.types = dict(types or {})
        #: One per gateway URL, in configuration order.
        self.links = [_GatewayLink(self, url, ep) for url, ep in zip(config.urls, config.endpoints())]
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stop: Optional[asyncio.Event] = None
        self._drain: Optional[asyncio.Event] = None
        self._drain_since: Optional[float] = None
        self._drain_requested = False
        #: Set while every link holds a connection that sent its welcome (tests wait on it).
        self.connected = threading.Event()

    @property
    def sessions(self) -> Dict[str, Session]:
        """The first gateway's sessions (with several gateways see ``links[i].sessions``: session
        ids are per gateway)."""
        return self.links[0].sessions

    # ----- running -----

    def run(self) -> None:
        """Runs until stopped (Ctrl-C), drained (SIGTERM, see :meth:`drain`) or refused: blocks the
        calling thread."""
        try:
            asyncio.run(self._serve_with_sigterm())
        except KeyboardInterrupt:
            pass

    async def _serve_with_sigterm(self) -> None:
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self._sigterm)
        except (NotImplementedError, RuntimeError, ValueError):  # not Unix, or not the main thread
            pass
        await self.serve()

    def _sigterm(self) -> None:
        log.info("SIGTERM: draining")
        self.drain()

    async def serve(self) -> None:
        """Serves every gateway in the running asyncio loop until :meth:`stop`, until drained
        (:meth:`drain`), or until a gateway refuses (raises :class:`Refused`)."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._drain = asyncio.Event()
        if self._drain_requested:
            self._start_drain()
        results = await asyncio.gather(*(link.run() for link in self.links), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    def stop(self) -> None:
        """Asks :meth:`serve` to close the connections and return (thread-safe)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)

    def drain(self) -> None:
        """Starts draining (thread-safe): every gateway is told (``{"drain":true}``) and gives this
        client no new sessions; the client keeps serving the sessions it holds and leaves each
        gateway, after sending the replies it already has, once it holds none there or after
        :attr:`ClientConfig.drain_timeout`. A draining link does not reconnect; :meth:`serve`
        returns when every link has left. :meth:`run` calls this on SIGTERM."""
        self._drain_requested = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain is not None and not self._drain.is_set():
            assert self._loop is not None
            self._drain_since = self._loop.time()
            self._drain.set()

    def _drain_remaining(self) -> float:
        """Seconds until the drain timeout (the deadline counts from when the drain began)."""
        assert self._loop is not None and self._drain_since is not None
        return max(0.0, self._drain_since + self.config.drain_timeout - self._loop.time())

    def _drain_deadline_passed(self) -> bool:
        return self._drain_remaining() <= 0.0

    def _link_connected(self) -> None:
        if all(link.connected.is_set() for link in self.links):
            self.connected.set()

    def start(self) -> "RunningClient":
        """Starts the client on its own thread and returns at once."""
        return RunningClient(self)

    def disconnect(self) -> None:
        """Drops the current connections without a close frame (thread-safe), as a network failure
        would; the client reconnects by itself. For tests of replay and reconnect."""
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._abort)

    def _abort(self) -> None:
        for link in self.links:
            ws = link.ws
            if ws is not None and getattr(ws, "transport", None) is not None:
                ws.transport.abort()


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

    def _wait_started(self) -> None:
        pause = threading.Event()
        while self.backend._loop is None and self._thread.is_alive() and not pause.wait(0.01):
            pass

    def drain(self) -> None:
        """:meth:`Backend.drain`; :meth:`wait` then returns once every gateway is left."""
        self._wait_started()
        self.backend.drain()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits for the client to end (after :meth:`drain` or a refusal); ``False`` if it still runs
        after ``timeout``. Re-raises a refusal."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        self._raise()
        return True

    @property
    def running(self) -> bool:
        """Whether the client's thread still runs."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the backend and waits for its thread; re-raises a refusal."""
        self._wait_started()
        self.backend.stop()
        self._thread.join(timeout)
        self._raise()

    def _raise(self) -> None:
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
        """Reads ``UI_BACKEND_URL`` (default ``ws://127.0.0.1:8000/backend``; several gateways
        separated by commas or spaces), ``UI_BACKEND_TOKEN``, ``UI_BACKEND_WORKER``,
        ``UI_BACKEND_CAPACITY`` and ``UI_BACKEND_DRAIN_TIMEOUT``."""
        return cls(ClientConfig.from_env())

    @classmethod
    def at(cls, url: Union[str, Sequence[str]], token: Optional[str] = None, worker: Optional[str] = None,
           capacity: Optional[int] = None, drain_timeout: Optional[float] = None) -> "Client":
        """A client for explicit gateway URLs: one URL, or a list of them (one link each), with this
        worker's name and capacity in each gateway's pool."""
        urls = split_urls(url) if isinstance(url, str) else [u for u in url if u]
        if not urls:
            raise ValueError("no gateway URL")
        config = ClientConfig(url=urls[0], also=urls[1:], token=token, worker=worker, capacity=capacity)
        if drain_timeout is not None:
            config.drain_timeout = drain_timeout
        return cls(config)

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
