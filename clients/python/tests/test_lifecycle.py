"""Reconnect and replay against the real gateway, handles from other threads, on_close, hybrid mode."""

import threading
import time

import counter
from conftest import site

from ui_gateway.testing import AppTest

COUNTER_SITE = site("counter_backend/site")


def test_replay_after_the_link_drops_keeps_state_and_buffered_clicks():
    with AppTest(counter.app, site=COUNTER_SITE) as t:
        tab = t.open()
        tab.call("increment()")
        tab.wait_for("count", 1)
        t.backend.backend.connected.clear()
        t.backend.disconnect()
        tab.wait_error(1, "backend-unavailable")
        # Clicked during the outage: buffered by the gateway, replayed to the same (same epoch) state.
        tab.call("increment()")
        assert t.backend.wait_connected(15)
        tab.wait_for("count", 2, timeout=10)
        tab.call("increment()")
        tab.wait_for("count", 3)


def test_gateway_restart_is_a_new_epoch():
    closed = []

    def app(session):
        session.on_close(lambda: closed.append(session.id))
        return counter.Counter()

    with AppTest(app, site=COUNTER_SITE) as t:
        tab = t.open()
        tab.call("increment()")
        tab.wait_for("count", 1)
        t.backend.backend.connected.clear()
        t.gateway.restart()
        assert tab.wait_closed() == 1001
        assert t.backend.wait_connected(20), "the backend reconnected to the new gateway"
        fresh = t.open()
        assert fresh.value("count") == 0
        # The old epoch's session was dropped (its id "1" is reused by the new gateway).
        deadline = time.monotonic() + 5
        while closed != ["1"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert closed == ["1"]


def test_handle_updates_from_another_thread_and_after_close():
    handles = []

    def app(session):
        handles.append(session.handle())
        return counter.Counter()

    with AppTest(app, site=COUNTER_SITE) as t:
        tab = t.open()
        assert tab.value("count") == 0

        def feed():
            for _ in range(5):
                handles[0].update(lambda c: setattr(c, "count", c.count + 10))

        th = threading.Thread(target=feed)
        th.start()
        th.join()
        tab.wait_for("count", 50)
    # The client stopped: its sessions are closed and the handle refuses.
    assert handles[0].closed
    assert handles[0].update(lambda c: None) is False


def test_hybrid_client_variables_under_lua():
    seen = []

    class Feed:
        def __init__(self, session):
            self.samples = session.client_var(1, "samples", "rw")
            self.paused = session.client_var(1, "paused", "r", watch=True)
            session.on_value(self.paused, lambda v, s: seen.append(v))
            session.write(self.samples, 7)

    with AppTest(Feed, site=site("dashboard_backend/site"), mode="hybrid") as t:
        tab = t.open()
        assert tab.prop(1, "type") == "Dashboard"
        tab.wait_for("samples", 7)
        tab.call("toggle()")
        tab.wait_for("paused", True)
        deadline = time.monotonic() + 5
        while True not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen[0] is False and seen[-1] is True


def test_handle_from_an_asyncio_task_on_the_clients_loop():
    import asyncio

    def app(session):
        handle = session.handle()

        async def feed():
            for _ in range(3):
                await asyncio.sleep(0.01)
                handle.update(lambda c: setattr(c, "count", c.count + 1))

        # The factory runs on the client's event loop: it may start tasks there.
        asyncio.get_running_loop().create_task(feed())
        return counter.Counter()

    with AppTest(app, site=COUNTER_SITE) as t:
        tab = t.open()
        tab.wait_for("count", 3)
