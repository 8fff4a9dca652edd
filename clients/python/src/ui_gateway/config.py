"""Where and how to connect, and the reconnect delays."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import List, Optional
from urllib.parse import quote

DEFAULT_URL = "ws://127.0.0.1:8000/backend"

#: Connected this long (seconds), the reconnect attempt counter starts over.
RESET_AFTER = 30.0


#: Seconds a draining client keeps its sessions before it leaves anyway.
DEFAULT_DRAIN_TIMEOUT = 30.0


def split_urls(value: str) -> List[str]:
    """A comma- and/or space-separated list of gateway URLs, empty entries skipped."""
    return [u for u in value.replace(",", " ").split() if u]


@dataclass
class ClientConfig:
    """Connection settings. :meth:`from_env` reads ``UI_BACKEND_URL`` (one URL, or several separated
    by commas or spaces), ``UI_BACKEND_TOKEN``, ``UI_BACKEND_WORKER``, ``UI_BACKEND_CAPACITY`` and
    ``UI_BACKEND_DRAIN_TIMEOUT`` (seconds)."""

    url: str = DEFAULT_URL
    #: Sent as ``Authorization: Bearer <token>``; never logged.
    token: Optional[str] = field(default=None, repr=False)
    #: A gateway silent this long (seconds; no frame, no ping) counts as gone. It pings every 25 s.
    silence_timeout: float = 60.0
    #: Seconds allowed for the TCP + WebSocket handshake.
    connect_timeout: float = 30.0
    #: More gateways to serve (a cluster): one link to each, and a session belongs to the link it
    #: came from, because session ids are vended per gateway (PROTOCOL.md B14).
    also: List[str] = field(default_factory=list)
    #: This worker's name in each gateway's pool (``?worker=NAME``): a worker that comes back under
    #: the same name within the gateway's grace gets its sessions back.
    worker: Optional[str] = None
    #: Relative capacity announced to each gateway (sessions are spread by it); ``None`` = 1.
    capacity: Optional[int] = None
    #: Seconds a draining client (:meth:`Backend.drain`, or SIGTERM under :meth:`Backend.run`) keeps
    #: serving its sessions before it leaves anyway.
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT

    def __post_init__(self) -> None:
        if self.capacity is not None:
            self.capacity = max(1, int(self.capacity))

    @classmethod
    def from_env(cls) -> "ClientConfig":
        """``UI_BACKEND_URL`` (default :data:`DEFAULT_URL`; several separated by commas or spaces),
        ``UI_BACKEND_TOKEN``, ``UI_BACKEND_WORKER``, ``UI_BACKEND_CAPACITY`` and
        ``UI_BACKEND_DRAIN_TIMEOUT`` (seconds, an ``s`` suffix allowed); empty = unset. An unreadable
        capacity or drain timeout raises ``ValueError`` rather than running with a surprise."""

        def var(name: str) -> Optional[str]:
            v = os.environ.get(name)
            return v.strip() if v and v.strip() else None

        urls = split_urls(var("UI_BACKEND_URL") or "") or [DEFAULT_URL]
        capacity = var("UI_BACKEND_CAPACITY")
        drain = var("UI_BACKEND_DRAIN_TIMEOUT")
        return cls(
            url=urls[0],
            also=urls[1:],
            token=var("UI_BACKEND_TOKEN"),
            worker=var("UI_BACKEND_WORKER"),
            capacity=int(capacity) if capacity is not None else None,
            drain_timeout=float(drain.rstrip("s")) if drain is not None else DEFAULT_DRAIN_TIMEOUT,
        )

    @property
    def urls(self) -> List[str]:
        """Every gateway URL, as configured."""
        return [self.url, *self.also]

    def endpoints(self) -> List[str]:
        """Every gateway URL with this worker's name and capacity as its query
        (``?worker=NAME&capacity=N``, PROTOCOL.md B3)."""
        query = []
        if self.worker:
            query.append("worker=" + quote(self.worker, safe=""))
        if self.capacity is not None:
            query.append(f"capacity={self.capacity}")
        if not query:
            return self.urls
        q = "&".join(query)
        return [f"{u}&{q}" if "?" in u else f"{u}?{q}" for u in self.urls]


def backoff_delay(attempt: int, u: float) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0-based) for a jitter ``u`` in [0.5, 1):
    ``min(15, 0.5 * 2**attempt) * u``, the same rule as the Rust client."""
    base = min(15.0, 0.5 * 2 ** min(attempt, 16))
    return base * min(max(u, 0.5), 1.0)


class Backoff:
    """The reconnect attempt counter and its reset rule."""

    def __init__(self) -> None:
        self.attempt = 0

    def next_delay(self) -> float:
        d = backoff_delay(self.attempt, random.uniform(0.5, 1.0))
        self.attempt += 1
        return d

    def connection_ended(self, connected_for: float) -> None:
        if connected_for >= RESET_AFTER:
            self.attempt = 0
