"""URL paths (PROTOCOL.md B9.2): the page's router variables answered by the backend, through the
real gateway (deep link, Back/Forward by writing ``path``, ``navigate``, unknown addresses) and on a
Session fed batches directly (normalisation, the ``urlPaths`` property, which pages a navigation moves)."""

import logging
import threading

import counter
import pytest
from conftest import site
from messages import c, u, w

from ui_gateway.session import Session
from ui_gateway.testing import AppTest
from ui_gateway.url_paths import normalize

SITE = site("counter_backend/site")


class About:
    def __init__(self, title="About"):
        self.title = title


class Home:
    pass


def router(tab, url_path):
    """The variables the page's router creates for a tab opened at ``/<session><url_path>``
    (src/web/router.js): the page object, its presenter (rendered) and its path (written on Back)."""
    page = tab.var("uiUrl..", access="r", wrapper="lua.UrlPage", urlPath=url_path)
    presenter = tab.var("presenter", parent=page, access="r")
    path = tab.var("path", parent=page, access="rw")
    return page, presenter, path


def go(tab, path, value):
    """Writes ``path`` as the router does on Back and Forward. The gateway does not echo a tab's own
    write, so the tab keeps the written value, as the browser's store does; a reply changes it only
    when the backend reads back something else (a normalised address)."""
    tab.write(path, value)
    tab.values[path] = value


def shows(presenter_type, path_value, presenter, path):
    return lambda t: t.prop(presenter, "type") == presenter_type and t.values.get(path) == path_value


class Sessions:
    """An app factory that registers ``/about`` and remembers each session (to navigate from a test)."""

    def __init__(self):
        self.sessions = []
        self.lock = threading.Lock()

    def __call__(self, session):
        session.register_url_path("/about", About())
        with self.lock:
            self.sessions.append(session)
        return counter.app(session)


def unknown_path_warnings(caplog, path):
    return [r for r in caplog.records if r.name == "ui_gateway" and r.levelno == logging.WARNING and path in r.getMessage()]


# ----- through the gateway -----


def test_deep_link_opens_the_registered_presenter():
    with AppTest(Sessions(), site=SITE) as t:
        tab = t.open()
        tab.wait(lambda tb: tb.prop(1, "urlPaths") == "on", what="urlPaths on variable 1")
        page, presenter, path = router(tab, "/about/")
        tab.wait(shows("About", "/about", presenter, path), what="the About page at /about")
        assert tab.prop(page, "type") == "lua.UrlPage"
        assert tab.value(tab.var("title", parent=presenter)) == "About"


def test_writing_path_switches_presenter_like_back_and_forward():
    with AppTest(Sessions(), site=SITE) as t:
        tab = t.open()
        page, presenter, path = router(tab, "/about")
        tab.wait(shows("About", "/about", presenter, path), what="the About page")
        page_obj = tab.values[page]
        # Back to the app's own address: the root (no "/" registered) shows.
        go(tab, path, "/")
        tab.wait(shows("Counter", "/", presenter, path), what="the counter at /")
        assert tab.value(tab.var("count", parent=presenter)) == 0
        # Forward, written without the leading slash and with a trailing one: normalised.
        go(tab, path, "about/")
        tab.wait(shows("About", "/about", presenter, path), what="the About page again, at /about")
        # The page object stays the same object throughout.
        assert tab.values[page] == page_obj


def test_navigate_moves_path_of_every_page_of_the_session():
    app = Sessions()
    with AppTest(app, site=SITE) as t:
        a = t.open()
        b = t.open(session=a.session)
        _, pa, ta = router(a, "/")
        _, pb, tb = router(b, "/")
        a.wait(shows("Counter", "/", pa, ta), what="tab a at /")
        b.wait(shows("Counter", "/", pb, tb), what="tab b at /")
        [session] = app.sessions
        assert session.resolve_url_path("about/") is not None and session.resolve_url_path("/") is None
        # From another thread, through the session's handle.
        assert session.handle().update(lambda _: session.navigate("about"))
        a.wait(shows("About", "/about", pa, ta), what="tab a moved to /about")
        b.wait(shows("About", "/about", pb, tb), what="tab b moved to /about")
        # A later deep link is not moved by the earlier navigation.
        c = t.open(session=a.session)
        _, pc, tc = router(c, "/")
        c.wait(shows("Counter", "/", pc, tc), what="tab c at /")
        # Back in tab a does not move tab b.
        go(a, ta, "/")
        a.wait(shows("Counter", "/", pa, ta), what="tab a back at /")
        go(b, tb, "/about")  # a no-op write: b is already there; then check it stayed
        b.wait(shows("About", "/about", pb, tb), what="tab b still at /about")


class Site:
    """An app whose button navigates, as a menu link would."""

    def __init__(self, session):
        self._session = session
        session.register_url_path("/about", About())

    def showAbout(self):
        self._session.navigate("/about")


def test_a_method_called_by_the_browser_navigates():
    with AppTest(Site, site=SITE) as t:
        tab = t.open()
        _, presenter, path = router(tab, "/")
        tab.wait(shows("Site", "/", presenter, path), what="the app at /")
        tab.call("showAbout()")
        tab.wait(shows("About", "/about", presenter, path), what="the About page after the click")


def test_unknown_path_shows_the_default_view_and_warns_once(caplog):
    caplog.set_level(logging.WARNING, logger="ui_gateway")
    app = Sessions()
    with AppTest(app, site=SITE) as t:
        a = t.open()
        _, presenter, path = router(a, "/no/such/page/")
        a.wait(shows("Counter", "/no/such/page", presenter, path), what="the default view at the unknown path")
        # A second tab of the session at the same address: still shown, not logged again.
        b = t.open(session=a.session)
        _, pb, tb = router(b, "/no/such/page")
        b.wait(shows("Counter", "/no/such/page", pb, tb), what="the default view in tab b")
        # Back and forth through the unknown address in tab a: no further warning.
        go(a, path, "/about")
        a.wait(shows("About", "/about", presenter, path), what="the About page")
        go(a, path, "/no/such/page")
        a.wait(shows("Counter", "/no/such/page", presenter, path), what="the default view again")
    assert len(unknown_path_warnings(caplog, "/no/such/page")) == 1, caplog.text


# ----- a Session fed batches directly -----


def page_msgs(first, url_path):
    """Router creates and watches for page variable ``first`` (presenter ``first+1``, path ``first+2``)."""
    return [c(first, 1, "uiUrl..", wrapper="lua.UrlPage", urlPath=url_path), w(first),
            c(first + 1, first, "presenter"), w(first + 1), c(first + 2, first, "path", "rw"), w(first + 2)]


def start(register=None):
    frames = []
    s = Session("1", "connected", frames.append)
    if register:
        register(s)
    s._set_app(Home())
    first = s._apply_batch([w(1)], False, True, False)
    return s, first["messages"]


def send(s, *msgs):
    frame = s._apply_batch(list(msgs), False, False, False)
    return frame["messages"] if frame else []


def by_var(out):
    return {m["data"]["varId"]: m["data"] for m in out if m["type"] == "update"}


@pytest.mark.parametrize("raw,expected", [
    ("", "/"), ("/", "/"), ("about", "/about"), ("/about/", "/about"), ("a/b/", "/a/b"), ("/a/b", "/a/b"),
])
def test_paths_are_normalised_like_the_lua_side(raw, expected):
    assert normalize(raw) == expected


def test_root_create_carries_url_paths_only_once_a_path_is_registered():
    _, out = start()
    assert out[0]["type"] == "create" and "urlPaths" not in out[0]["data"]["properties"]
    _, out = start(lambda s: s.register_url_path("about", About()))
    assert out[0]["data"]["properties"] == {"type": "Home", "urlPaths": "on"}


def test_registering_after_the_root_exists_sets_the_property():
    s, _ = start()
    out = send(s)
    s.register_url_path("/about", About())
    assert s._flush()["messages"] == [{"type": "update", "data": {"varId": 1, "properties": {"urlPaths": "on"}}}]
    # Only the first registration says so.
    s.register_url_path("/help", About("Help"))
    assert s._flush() is None and out == []


def test_unknown_paths_show_the_slash_presenter_when_there_is_one(caplog):
    caplog.set_level(logging.WARNING, logger="ui_gateway")
    home = Home()
    s, _ = start(lambda s: (s.register_url_path("/about", About()), s.register_url_path("", home)))
    by = by_var(send(s, *page_msgs(2, "/nowhere")))
    assert by[3]["properties"]["type"] == "Home" and by[4]["value"] == "/nowhere"
    assert s._tracker.vars[3].nav is home
    by = by_var(send(s, *page_msgs(5, "/")))
    assert by[6]["properties"]["type"] == "Home"
    # "/" itself is never an unknown address; /nowhere is logged once.
    send(s, u(4, "/about"), u(4, "/nowhere"))
    assert len(unknown_path_warnings(caplog, "unknown URL path")) == 1


def test_navigate_moves_existing_pages_not_later_ones_and_destroy_forgets_them():
    s, _ = start(lambda s: s.register_url_path("/about", About()))
    send(s, *page_msgs(2, "/"))
    s.navigate("/about/")
    by = by_var(send(s))
    assert by[3]["properties"]["type"] == "About" and by[4]["value"] == "/about"
    # A page opened after the navigation stays at its own address.
    by = by_var(send(s, *page_msgs(5, "/")))
    assert by[6]["properties"]["type"] == "Home" and by[7]["value"] == "/"
    # Page variable 2 goes with its subtree; its page with it.
    send(s, {"type": "destroy", "data": {"varId": 2}})
    assert 2 not in s._url_paths._pages and 5 in s._url_paths._pages


def test_the_page_object_keeps_its_identity_and_rejects_non_string_paths():
    s, _ = start(lambda s: s.register_url_path("/about", About()))
    first = by_var(send(s, *page_msgs(2, "/about")))[2]["value"]
    send(s, u(4, "/"))
    assert by_var(send(s, w(2)))[2]["value"] == first
    out = send(s, u(4, 7))
    assert out[0]["type"] == "error" and out[0]["data"]["code"] == "path-failure"
    assert s._tracker.vars[4].value == "/"
