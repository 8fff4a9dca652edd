"""Worker pools against the real gateway (PROTOCOL.md B14): two Python workers share one gateway,
one drains (by call and by SIGTERM) and its sessions move, and one client serves two gateways."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import EXAMPLES, site

from ui_gateway import Client, ClientConfig
from ui_gateway.testing import Gateway

COUNTER_SITE = site("counter_backend/site")
SRC = Path(__file__).resolve().parents[1] / "src"


class Counter:
    """The counter fixture, plus the name of the worker that built it (readable as ``worker``), so a
    tab can tell which worker serves its session."""

    def __init__(self, worker):
        self.worker = worker
        self.count = 0

    def increment(self):
        self.count += 1


def worker(gateway, name, **kwargs):
    """A started Python worker named ``name`` on ``gateway``, connected."""
    backend = Client.at(gateway.backend_url, worker=name, **kwargs).connected(lambda s: Counter(name)).start()
    assert backend.wait_connected(15), "worker %s did not connect" % name
    return backend


def eventually(check, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_config_reads_several_urls_worker_capacity_and_drain_timeout(monkeypatch):
    monkeypatch.setenv("UI_BACKEND_URL", "ws://a:1/backend, ws://b:2/backend ws://c:3/backend?x=1")
    monkeypatch.setenv("UI_BACKEND_WORKER", "api-1")
    monkeypatch.setenv("UI_BACKEND_CAPACITY", "4")
    monkeypatch.setenv("UI_BACKEND_DRAIN_TIMEOUT", "5s")
    c = ClientConfig.from_env()
    assert c.urls == ["ws://a:1/backend", "ws://b:2/backend", "ws://c:3/backend?x=1"]
    assert c.endpoints() == [
        "ws://a:1/backend?worker=api-1&capacity=4",
        "ws://b:2/backend?worker=api-1&capacity=4",
        "ws://c:3/backend?x=1&worker=api-1&capacity=4",
    ]
    assert c.drain_timeout == 5.0
    monkeypatch.setenv("UI_BACKEND_CAPACITY", "many")
    with pytest.raises(ValueError):
        ClientConfig.from_env()
    plain = Client.at("ws://a:1/backend").config
    assert plain.endpoints() == ["ws://a:1/backend"] and plain.drain_timeout == 30.0


def test_two_workers_split_sessions_by_capacity():
    with Gateway(COUNTER_SITE) as gw:
        a = worker(gw, "a")
        b = worker(gw, "b", capacity=3)
        try:
            assert gw.healthz()["workers"] == 2
            # (sessions + 1) / capacity, ties to the older worker (a): b, b, a, b.
            tabs = [gw.open() for _ in range(4)]
            assert [t.value("worker") for t in tabs] == ["b", "b", "a", "b"]
            assert gw.metric("ui_backend_worker_sessions", worker="a") == 1
            assert gw.metric("ui_backend_worker_sessions", worker="b") == 3
            # Each worker serves its own sessions.
            for t in tabs:
                t.call("increment()")
            for t in tabs:
                t.wait_for("count", 1)
            assert len(a.backend.sessions) == 1 and len(b.backend.sessions) == 3
        finally:
            a.stop()
            b.stop()


def test_a_draining_worker_gets_no_new_sessions_then_leaves_and_its_session_moves():
    with Gateway(COUNTER_SITE) as gw:
        a = worker(gw, "a", drain_timeout=1.5)
        b = worker(gw, "b")
        try:
            held = gw.open()
            assert held.value("worker") == "a"
            held.call("increment()")
            held.wait_for("count", 1)

            a.drain()
            eventually(lambda: gw.metric("ui_backend_draining_workers") == 1, "the drain to reach the gateway")
            # a holds 1 session and b none: without the drain the second new session would go to a.
            fresh = [gw.open(), gw.open()]
            assert [t.value("worker") for t in fresh] == ["b", "b"]
            # a keeps serving the session it holds while it drains.
            held.call("increment()")
            held.wait_for("count", 2)

            # It still holds that session, so it leaves at its drain timeout, and does not come back.
            assert a.wait(20), "the draining worker did not leave"
            assert not a.running
            eventually(lambda: gw.healthz()["workers"] == 1, "the gateway to see one worker")
            # The session moved to b, which rebuilt it from the replay; it keeps working.
            held.wait_for("worker", "b")
            held.wait_for("count", 0)
            held.call("increment()")
            held.wait_for("count", 1)
            assert gw.metric("ui_backend_worker_sessions", worker="b") == 3
            assert not [e for e in held.error_log if e[1] == "backend-unavailable"], held.error_log
        finally:
            a.stop()
            b.stop()


def test_a_draining_worker_without_sessions_leaves_at_once():
    with Gateway(COUNTER_SITE) as gw:
        a = worker(gw, "a")
        tab = gw.open()
        assert tab.value("worker") == "a"
        c = worker(gw, "c", drain_timeout=600)
        try:
            c.drain()
            # c holds no session: it leaves without waiting for its (long) drain timeout.
            assert c.wait(20), "a drained worker holding no session did not leave"
            eventually(lambda: gw.healthz()["workers"] == 1, "the gateway to see one worker")
            assert a.running
            tab.call("increment()")
            tab.wait_for("count", 1)
        finally:
            a.stop()
            c.stop()


def test_sigterm_drains_a_running_worker_which_keeps_serving_then_exits():
    with Gateway(COUNTER_SITE) as gw:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UI_")}
        env.update(PYTHONPATH=str(SRC), UI_BACKEND_URL=gw.backend_url, UI_BACKEND_WORKER="sig",
                   UI_BACKEND_DRAIN_TIMEOUT="2")
        proc = subprocess.Popen([sys.executable, str(EXAMPLES / "python" / "counter.py")], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            eventually(lambda: gw.healthz()["workers"] == 1, "the worker process to connect", 20)
            tab = gw.open()
            assert tab.value("count") == 0
            proc.send_signal(signal.SIGTERM)
            eventually(lambda: gw.metric("ui_backend_draining_workers") == 1, "the drain to reach the gateway")
            assert proc.poll() is None, "the worker exited while it still held a session"
            tab.call("increment()")
            tab.wait_for("count", 1)
            assert proc.wait(20) == 0, proc.stderr.read() if proc.stderr else ""
            # No worker left: now the session is away, and its browser is told.
            tab.wait_error(1, "backend-unavailable", timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_one_client_serves_two_gateways_with_sessions_kept_apart():
    with Gateway(COUNTER_SITE) as gw1, Gateway(COUNTER_SITE) as gw2:
        client = Client.at([gw1.backend_url, gw2.backend_url], worker="both")
        running = client.connected(lambda s: Counter("both")).start()
        try:
            assert running.wait_connected(15)
            assert gw1.healthz()["workers"] == 1 and gw2.healthz()["workers"] == 1
            t1, t2 = gw1.open(), gw2.open()
            t1.call("increment()")
            t1.call("increment()")
            t2.call("increment()")
            t1.wait_for("count", 2)
            t2.wait_for("count", 1)
            links = running.backend.links
            # Both gateways vend their own ids: the same id names two different sessions.
            assert list(links[0].sessions) == list(links[1].sessions) and len(links[0].sessions) == 1
            # One gateway going away leaves the other's link alone.
            gw2.stop()
            t1.call("increment()")
            t1.wait_for("count", 3)
        finally:
            running.stop()


def test_wire_query_hello_drain_flush_and_normal_close():
    """Against a scripted gateway: the upgrade query, the hello after the welcome, the drain frame,
    a batch served while draining, leaving once the last session ends (reply first, then a normal
    close), and no reconnect."""
    import asyncio
    import json

    from websockets.asyncio.server import serve

    async def scenario():
        conns = asyncio.Queue()

        async def handler(ws):
            await conns.put(ws)
            await ws.wait_closed()

        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            port = server.sockets[0].getsockname()[1]
            backend = Client.at(f"ws://127.0.0.1:{port}/backend", worker="w-1", capacity=2).connected(lambda s: Counter("w-1"))
            task = asyncio.ensure_future(backend.serve())
            try:
                ws = await asyncio.wait_for(conns.get(), 10)
                assert ws.request.path == "/backend?worker=w-1&capacity=2"
                welcome = {"protocol": 1, "epoch": "0" * 32, "mode": "connected", "sessions": [],
                           "limits": {"maxFrameBytes": 1 << 20, "sessionBuffer": 1000, "maxVariables": 1000}}
                await ws.send(json.dumps({"welcome": welcome}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"hello": {"capacity": 2}}
                await ws.send(json.dumps({"session": "1", "messages": [{"type": "watch", "data": {"varId": 1}}]}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert reply["session"] == "1" and reply["messages"][0]["type"] == "create"

                backend.drain()
                assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"drain": True}
                # Still served while draining; the session's end right behind the batch makes the
                # client leave, and the batch's reply arrives before the close.
                await ws.send(json.dumps({"session": "1", "messages": [
                    {"type": "create", "data": {"id": 2, "parentId": 1, "properties": {"path": "count"}, "nowatch": True}},
                    {"type": "watch", "data": {"varId": 2}}]}))
                await ws.send(json.dumps({"session": "1", "event": "closed"}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert reply == {"session": "1", "messages": [{"type": "update", "data": {"varId": 2, "value": 0}}]}
                # Then a normal close, and the client does not come back.
                await asyncio.wait_for(ws.wait_closed(), 5)
                assert ws.close_code == 1000
                await asyncio.wait_for(task, 5)
                assert conns.empty()
            finally:
                backend.stop()
                if not task.done():
                    await asyncio.wait_for(task, 10)

    asyncio.run(scenario())
