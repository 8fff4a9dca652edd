"""The counter example driven through ui_gateway.testing: one tab, two tabs, two sessions."""

import counter
from conftest import site

from ui_gateway.testing import AppTest

SITE = site("counter_backend/site")


def test_counter_reads_and_increments():
    with AppTest(counter.app, site=SITE) as t:
        tab = t.open()
        tab.wait(lambda tb: tb.prop(1, "type") == "Counter", what="variable 1's type")
        assert "Counter.DEFAULT" in tab.viewdefs
        assert tab.value("count") == 0
        tab.call("increment()")
        tab.wait_for("count", 1)
        tab.call("increment()")
        tab.call("increment()")
        tab.wait_for("count", 3)


def test_two_tabs_share_a_session_and_sessions_are_separate():
    with AppTest(counter.app, site=SITE) as t:
        a = t.open()
        b = t.open(session=a.session)
        other = t.open()
        assert a.value("count") == 0 and b.value("count") == 0
        a.call("increment()")
        b.wait_for("count", 1)
        a.wait_for("count", 1)
        b.call("increment()")
        a.wait_for("count", 2)
        # Another session has its own counter.
        assert other.value("count") == 0
        other.call("increment()")
        other.wait_for("count", 1)
        a.close()
        b.call("increment()")
        b.wait_for("count", 3)


def test_a_watch_of_the_action_never_calls_it():
    with AppTest(counter.app, site=SITE) as t:
        tab = t.open()
        assert tab.value("count") == 0
        act = tab.var("increment()", access="action")
        for _ in range(3):
            tab.send([{"type": "watch", "data": {"varId": act}}])
            tab.send([{"type": "unwatch", "data": {"varId": act}}])
        # A variable created after the watches reads the state they left: untouched.
        assert tab.value(tab.var("count")) == 0
        tab.call("increment()")
        tab.wait_for("count", 1)
