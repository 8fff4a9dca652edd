"""Where and how to connect, and the reconnect delays."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Optional

DEFAULT_URL = "ws://127.0.0.1:8000/backend"

#: Connected this long (seconds), the reconnect attempt counter starts over.
RESET_AFTER = 30.0


@dataclass
class ClientConfig:
    """Connection settings. :meth:`from_env` reads ``UI_BACKEND_URL`` and ``UI_BACKEND_TOKEN``."""

    url: str = DEFAULT_URL
    #: Sent as ``Authorization: Bearer <token>``; never logged.
    token: Optional[str] = field(default=None, repr=False)
    #: A gateway silent this long (seconds; no frame, no ping) counts as gone. It pings every 25 s.
    silence_timeout: float = 60.0
    #: Seconds allowed for the TCP + WebSocket handshake.
    connect_timeout: float = 30.0

    @classmethod
    def from_env(cls) -> "ClientConfig":
        """``UI_BACKEND_URL`` (default :data:`DEFAULT_URL`) and ``UI_BACKEND_TOKEN`` (empty = none)."""
        return cls(url=os.environ.get("UI_BACKEND_URL") or DEFAULT_URL, token=os.environ.get("UI_BACKEND_TOKEN") or None)


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
