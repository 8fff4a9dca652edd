"""Reaching a session from other threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger("ui_gateway")


class SessionHandle:
    """A thread-safe reference to one session. The session's state lives on the client's event
    loop; :meth:`update` carries a function there, runs it, then detects and sends what changed."""

    def __init__(self, session: "Session", loop: "asyncio.AbstractEventLoop | None") -> None:
        self._session = session
        self._loop = loop

    @property
    def closed(self) -> bool:
        """Whether the session has ended; updates are then refused."""
        return self._session.closed

    def update(self, fn: Callable[[Any], Any]) -> bool:
        """Runs ``fn(app)`` on the client's loop, then sends the changes it made. Returns ``False``
        (and does nothing) when the session is gone, so a feed can stop."""
        if self._session.closed or self._loop is None or self._loop.is_closed():
            return False
        try:
            self._loop.call_soon_threadsafe(self._run, fn)
        except RuntimeError:  # the loop stopped meanwhile
            return False
        return True

    def _run(self, fn: Callable[[Any], Any]) -> None:
        s = self._session
        if s.closed:
            return
        try:
            fn(s.app)
        except Exception:
            log.exception("session %s: handle update failed", s.id)
        s.flush()
