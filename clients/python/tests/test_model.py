"""The object model, tracker and wrappers without a gateway: a Session fed batches directly."""

import math

import pytest

from ui_gateway import ViewList, backoff_delay
from ui_gateway.session import Session
from messages import c, u, w


class Item:
    def __init__(self, text):
        self.text = text
        self._secret = "x"
        self.calls = 0

    def poke(self):
        self.calls += 1

    @property
    def shout(self):
        return self.text.upper()


class App:
    def __init__(self):
        self.items = [Item("a"), Item("b")]
        self.sel = None
        self.data = {"type": "Rec", "n": 1}
        self.ratio = 1.0
        self.count = 0
        self.clicks = 0

    def click(self):
        self.clicks += 1

    def total(self):
        return len(self.items)


def session(app=None):
    s = Session("1", "connected", lambda f: None)
    s._set_app(app or App())
    s._apply_batch([], False, True, False)
    return s


def send(s, *msgs):
    frame = s._apply_batch(list(msgs), False, False, False)
    return frame["messages"] if frame else []


def test_values_types_and_properties():
    s = session()
    out = send(s, c(2, 1, "items"), w(2), c(3, 1, "items.0"), w(3), c(4, 1, "items.1.shout"), w(4),
               c(5, 1, "data"), w(5), c(6, 1, "data.n"), w(6), c(7, 1, "ratio"), w(7), c(8, 1, "sel"), w(8))
    by = {m["data"]["varId"]: m["data"] for m in out}
    assert by[2]["value"] == [{"obj": by[3]["value"]["obj"]}, {"obj": by[2]["value"][1]["obj"]}]
    assert by[3]["properties"] == {"type": "Item"}
    assert by[4] == {"varId": 4, "value": "B"}
    assert by[5]["properties"] == {"type": "Rec"} and by[6]["value"] == 1
    assert by[7]["value"] == 1 and isinstance(by[7]["value"], int)
    assert by[8] == {"varId": 8, "value": None}


def test_private_names_methods_and_missing_fields_fail():
    s = session()
    out = send(s, c(2, 1, "items.0._secret"), w(2), c(3, 1, "click"), w(3), c(4, 1, "nope"), w(4),
               c(5, 1, "items.0.__class__"), w(5), c(6, 1, "_App__x()"), w(6))
    assert [(m["type"], m["data"]["code"]) for m in out] == [("error", "path-failure")] * 5
    out = send(s, c(7, 1, "items.0._secret", "rw"), u(7, "y"), c(8, 1, "total()", "rw"), u(8, 3),
               c(9, 1, "click", "rw"), u(9, 1))
    assert [m["data"]["code"] for m in out] == ["path-failure"] * 3
    assert s.app.items[0]._secret == "x" and s.app.clicks == 0


def test_writes_need_an_existing_attribute_of_the_same_kind():
    s = session()
    out = send(s, c(2, 1, "count", "rw"), u(2, "five"), c(3, 1, "newField", "rw"), u(3, 1), c(4, 1, "count", "rw"), u(4, 5))
    assert [m["data"]["code"] for m in out] == ["path-failure", "path-failure"]
    assert s.app.count == 5 and not hasattr(s.app, "newField")
    out = send(s, c(5, 1, "items.0.shout", "rw"), u(5, "Z"))  # a property without setter
    assert out[0]["data"]["code"] == "path-failure"


def test_watching_an_action_never_calls_it_and_writes_are_not_echoed():
    s = session()
    assert send(s, c(2, 1, "click()", "action"), w(2), w(2)) == []
    assert s.app.clicks == 0
    out = send(s, c(3, 1, "count", "rw"), w(3), c(4, 1, "clicks"), w(4))
    assert len(out) == 2
    assert send(s, u(3, 9)) == []  # the writer's value is the baseline: no echo
    assert send(s, u(2, None)) == [{"type": "update", "data": {"varId": 4, "value": 1}}]
    s.app.count = 9
    assert send(s) == []
    s.app.count = 10
    assert send(s) == [{"type": "update", "data": {"varId": 3, "value": 10}}]


def test_object_numbers_are_stable_and_released_when_unreferenced():
    app = App()
    s = session(app)
    out = send(s, c(2, 1, "sel"), w(2))
    app.sel = app.items[0]
    n = send(s)[0]["data"]["value"]["obj"]
    app.sel = app.items[0]
    assert send(s) == []
    app.sel = None
    assert send(s)[0]["data"] == {"varId": 2, "value": None, "properties": {"type": ""}}
    assert all(o is not app.items[0] for o in s._registry._by_number.values())
    app.sel = app.items[0]
    assert send(s)[0]["data"]["value"]["obj"] != n  # released, so a new number
    assert out == [{"type": "update", "data": {"varId": 2, "value": None}}]


def test_object_references_written_by_the_gateway():
    app = App()
    s = session(app)
    items = send(s, c(2, 1, "items"), w(2), c(3, 1, "sel", "rw"))[0]["data"]["value"]
    assert send(s, u(3, items[1])) == []
    assert app.sel is app.items[1]
    assert send(s, u(3, {"obj": 999}))[0]["data"]["code"] == "not-found"


def test_errors_are_sent_once_and_recovery_resends_the_value():
    app = App()
    s = session(app)
    send(s, c(2, 1, "sel.text"), w(2))
    app.sel = app.items[0]
    assert send(s)[0]["data"] == {"varId": 2, "value": "a"}
    app.sel = None
    assert send(s)[0]["data"]["code"] == "path-failure"
    assert send(s) == []
    app.sel = app.items[0]
    assert send(s)[0]["data"] == {"varId": 2, "value": "a"}


def test_priorities_then_creation_order():
    app = App()
    s = session(app)
    send(s, c(2, 1, "count"), w(2), c(3, 1, "clicks", priority="low"), w(3), c(4, 1, "ratio", priority="high"), w(4))
    app.count, app.clicks, app.ratio = 1, 1, 2.5
    assert [m["data"]["varId"] for m in send(s)] == [4, 2, 3]


def test_viewlist_keeps_rows_per_element_and_presenters():
    class Presenter:
        destroyed = 0

        def __init__(self, li):
            self.li = li

        def destroy(self):
            Presenter.destroyed += 1

    a, b, c_ = object(), object(), object()
    src = [a, b]
    vl = ViewList(lambda name: Presenter if name == "P" else None)
    vl._rewrap(src, "P")
    ra, rb = vl.items
    assert isinstance(ra.item, Presenter) and ra.baseItem is a and rb.index == 1
    vl._rewrap([c_, b], "P")
    assert vl.items[1] is rb and rb.index == 1 and vl.items[0] is not ra
    assert Presenter.destroyed == 1
    vl._rewrap(["x", "x"], "")
    assert [li.item for li in vl.items] == ["x", "x"] and Presenter.destroyed == 3
    src = ["p", "q"]
    vl._rewrap(src, "")
    vl.items[0].remove()
    assert src == ["q"] and [li.index for li in vl.items] == [0]
    with pytest.raises(Exception):
        vl._rewrap(42, "")


def test_backoff_formula():
    assert backoff_delay(0, 1.0) == 0.5
    assert backoff_delay(0, 0.5) == 0.25
    assert backoff_delay(3, 1.0) == 4.0
    assert backoff_delay(5, 1.0) == 15.0
    assert math.isclose(backoff_delay(40, 0.5), 7.5)
