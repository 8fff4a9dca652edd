"""Browser-protocol messages as a gateway forwards them to a backend, for tests that feed a Session
batches directly."""


def c(i, p, path, access="r", **props):
    return {"type": "create", "data": {"id": i, "parentId": p, "properties": {"path": path, "access": access, **props}, "nowatch": True}}


def w(i):
    return {"type": "watch", "data": {"varId": i}}


def u(i, v):
    return {"type": "update", "data": {"varId": i, "value": v}}
