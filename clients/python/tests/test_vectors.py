"""The backend-*.json conformance vectors (protocol/vectors/README.md §3): this harness plays the
gateway on a loopback port, the library under test connects to it with the fixture app."""

import asyncio
import json
import math

import counter
import pytest
import todo
from conftest import VECTORS

from ui_gateway import Client, ClientConfig
from websockets.asyncio.server import serve

FIXTURES = {"counter": counter.app, "todo": todo.app}
FILES = sorted(p.name for p in VECTORS.glob("backend-*.json"))


class Mismatch(AssertionError):
    pass


class Bindings:
    def __init__(self):
        self.names = {}

    def bind(self, name, value, kind):
        if name in self.names:
            return self.names[name] == value
        if value in [v for k, v in self.names.items() if k[0] == kind]:
            return False  # different names, different values
        self.names[name] = value
        return True


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def match(pattern, value, b, order_any=False):
    """Patterns and placeholders (protocol/vectors/README.md)."""
    if isinstance(pattern, str):
        if pattern == "$any":
            return True
        if pattern == "$string":
            return isinstance(value, str)
        if pattern.startswith("$hex32"):
            ok = isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdef" for c in value)
            return ok and (pattern == "$hex32" or b.bind(("h", pattern[7:]), value, "h"))
        if pattern.startswith("$obj:"):
            return is_int(value) and value >= 1 and b.bind(("o", pattern[5:]), value, "o")
        if pattern.startswith("$$"):
            return value == pattern[1:]
        if pattern.startswith("$"):
            raise ValueError(f"bad placeholder {pattern}")
        return value == pattern
    if isinstance(pattern, bool) or pattern is None:
        return value is pattern
    if is_int(pattern):
        return is_int(value) and value == pattern
    if isinstance(pattern, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isclose(value, pattern)
    if isinstance(pattern, list):
        return isinstance(value, list) and len(value) == len(pattern) and all(match(p, v, b) for p, v in zip(pattern, value))
    if isinstance(pattern, dict):
        if set(pattern) == {"$json"}:
            try:
                return isinstance(value, str) and match(pattern["$json"], json.loads(value), b)
            except ValueError:
                return False
        if not isinstance(value, dict) or set(pattern) != set(value):
            return False
        for k, p in pattern.items():
            if k == "messages" and order_any:
                if not match_multiset(p, value[k], b):
                    return False
            elif not match(p, value[k], b):
                return False
        return True
    raise ValueError(f"bad pattern {pattern!r}")


def match_multiset(patterns, values, b):
    if not isinstance(values, list) or len(values) != len(patterns):
        return False
    first = [i for i, p in enumerate(patterns) if p.get("type") == "create" and p.get("data", {}).get("id") == 1]
    if first and not match(patterns[first[0]], values[0], b):
        return False

    def solve(pi, used):
        if pi == len(patterns):
            return True
        for vi in range(len(values)):
            if vi in used:
                continue
            saved = dict(b.names)
            if match(patterns[pi], values[vi], b) and solve(pi + 1, used | {vi}):
                return True
            b.names = saved
        return False

    return solve(0, set())


def substitute(frame, b):
    if isinstance(frame, str):
        if frame.startswith("$obj:"):
            return b.names[("o", frame[5:])]
        if frame.startswith("$$"):
            return frame[1:]
        return frame
    if isinstance(frame, list):
        return [substitute(x, b) for x in frame]
    if isinstance(frame, dict):
        return {k: substitute(v, b) for k, v in frame.items()}
    return frame


async def run_vector(vector):
    conns: asyncio.Queue = asyncio.Queue()
    origins = []

    async def handler(ws):
        origins.append(ws.request.headers.get("Origin"))
        await conns.put(ws)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        client = Client(ClientConfig(url=f"ws://127.0.0.1:{port}/backend"))
        factory = FIXTURES[vector["fixture"]]
        backend = client.hybrid(factory) if vector["mode"] == "hybrid" else client.connected(factory)
        task = asyncio.ensure_future(backend.serve())
        b, ws = Bindings(), None
        try:
            for n, step in enumerate(vector["steps"]):
                where = f"step {n}: {json.dumps(step)[:200]}"
                if step.get("do") == "connect-backend":
                    ws = await asyncio.wait_for(conns.get(), 10)
                    assert origins[-1] is None, "the backend sent an Origin header"
                elif step.get("do") == "drop-backend":
                    ws.transport.abort()
                elif "send" in step:
                    await ws.send(json.dumps(substitute(step["frame"], b)))
                elif "recv" in step:
                    try:
                        got = json.loads(await asyncio.wait_for(ws.recv(), step.get("timeout", 2000) / 1000))
                    except asyncio.TimeoutError:
                        raise Mismatch(f"{where}: nothing received") from None
                    if not match(step["frame"], got, b, step.get("order") == "any"):
                        raise Mismatch(f"{where}: received {json.dumps(got)}")
                elif "quiet" in step:
                    try:
                        got = await asyncio.wait_for(ws.recv(), step.get("ms", 200) / 1000)
                        raise Mismatch(f"{where}: expected quiet, received {got}")
                    except asyncio.TimeoutError:
                        pass
                else:
                    raise ValueError(f"unsupported step {step}")
        finally:
            backend.stop()
            await asyncio.wait_for(task, 10)


@pytest.mark.parametrize("name", FILES)
def test_backend_vector(name):
    vector = json.loads((VECTORS / name).read_text())
    try:
        asyncio.run(run_vector(vector))
    except Mismatch:
        if vector.get("skip"):
            pytest.xfail(vector["skip"])
        raise


def test_every_backend_vector_is_run():
    assert len(FILES) >= 12
