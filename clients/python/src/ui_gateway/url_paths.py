"""URL paths (PROTOCOL.md B9.2): a session's map of addresses to presenters, and the ``lua.UrlPage``
wrapper the page asks for. In connected mode the gateway adds nothing for this; the backend does
what ``lua/url_paths.lua`` does for Lua apps, as the Rust client's ``url_paths`` module does.

Once the app registered a path, variable 1 carries ``urlPaths=on``. The page then creates one
variable under variable 1 with the path ``uiUrl..`` (the app itself: ``uiUrl`` is a name no app
defines, read as ``None``), ``wrapper=lua.UrlPage`` and its address as ``urlPath``. That variable
shows a :class:`UrlPage`, one per variable so its ``{"obj":N}`` stays the same, whose ``presenter``
the page renders and whose ``path`` the page writes on Back and Forward; :meth:`UrlPaths.navigate`
moves every page.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Set

#: The wrapper type the page puts on its URL variable.
WRAPPER = "lua.UrlPage"
#: The property of variable 1 that tells the page to route by address.
PROPERTY = "urlPaths"
#: The property of the page variable that carries the page's address.
URL_PATH = "urlPath"
#: The first segment of the page variable's path (``uiUrl..``): read as ``None`` when the app has no
#: such field, so that ``..`` lands on the app itself.
ANCHOR = "uiUrl"

log = logging.getLogger("ui_gateway")


def normalize(path: str) -> str:
    """Normalises an address as the Lua side does: ``""`` is ``/``, a missing leading ``/`` is added
    and a trailing one dropped (``about/`` is ``/about``)."""
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    return path


class UrlPage:
    """What one page variable shows: ``path``, its address (the page writes it on Back and
    Forward), and ``presenter``, the object registered for that address (what the page renders)."""

    type = WRAPPER

    def __init__(self, path: str, version: int) -> None:
        self.path = normalize(path)
        self.presenter: Any = None
        # The navigation this page has seen: a navigate moves pages that existed before it, not a
        # later deep link.
        self._version = version


class UrlPaths:
    """One session's URL paths and the pages showing them."""

    def __init__(self, session_id: str = "") -> None:
        self._session_id = session_id
        self._paths: Dict[str, Any] = {}
        self._pages: Dict[int, UrlPage] = {}
        # The address of the last navigation, and how many there were.
        self._current = "/"
        self._version = 0
        # Unknown addresses already logged (once each, as the Lua side does).
        self._warned: Set[str] = set()

    def any(self) -> bool:
        """Whether the app registered a path (then variable 1 carries ``urlPaths=on``)."""
        return bool(self._paths)

    def register(self, path: str, presenter: Any) -> bool:
        """Registers ``presenter`` for ``path``; returns ``True`` for the first path (the caller then
        marks variable 1)."""
        if not isinstance(path, str):
            raise TypeError(f"a URL path is a str, not {type(path).__name__}")
        if presenter is None:
            raise ValueError("register_url_path needs a presenter")
        first = not self._paths
        self._paths[normalize(path)] = presenter
        return first

    def presenter_of(self, path: str) -> Any:
        """The presenter registered for ``path`` itself (``None`` when it shows the default view)."""
        return self._paths.get(normalize(path))

    def navigate(self, path: str) -> None:
        """Moves every existing page to ``path`` at its next computation."""
        if not isinstance(path, str):
            raise TypeError(f"a URL path is a str, not {type(path).__name__}")
        self._current = normalize(path)
        self._version += 1

    def page_created(self, var_id: int, url_path: Optional[str]) -> None:
        """A browser created page variable ``var_id`` for its address: its page starts there."""
        self._pages[var_id] = UrlPage(url_path if isinstance(url_path, str) else "/", self._version)

    def forget(self, var_id: int) -> None:
        """Variable ``var_id`` is gone: its page goes too."""
        self._pages.pop(var_id, None)

    def page(self, var_id: int, root: Any) -> UrlPage:
        """The wrapper's computation (every detection pass): the page of variable ``var_id``, its
        path moved by a navigation it has not seen and normalised (a browser may write anything),
        its presenter looked up again. ``root`` is the variable's raw value, the app."""
        page = self._pages.get(var_id)
        if page is None:
            page = self._pages[var_id] = UrlPage("/", self._version)
        if page._version != self._version:
            page._version = self._version
            page.path = self._current
        page.path = normalize(page.path if isinstance(page.path, str) else "/")
        page.presenter = self._presenter_for(page.path, root)
        return page

    def _presenter_for(self, path: str, root: Any) -> Any:
        """The presenter of ``path``, else the one of ``/``, else the app."""
        presenter = self._paths.get(path)
        if presenter is not None:
            return presenter
        if path != "/" and path not in self._warned:
            self._warned.add(path)
            log.warning("session %s: unknown URL path %s: showing the default view", self._session_id, path)
        return self._paths.get("/", root)
