"""The todo example through the test client: the gallery's ViewList viewdef, object identity, writes."""

import todo
from conftest import site

from ui_gateway.testing import AppTest

SITE = site("todo_backend/site")


def open_list(tab):
    """Binds ``items`` as the TodoApp viewdef does (``ui-viewlist="items"``) and returns
    (list variable, its items variable)."""
    lst = tab.var("items", access="r", wrapper="lua.ViewList")
    tab.wait(lambda t: t.prop(lst, "type") == "lua.ViewList", what="the ViewList")
    assert tab.prop(lst, "fallbackNamespace") == "list-item"
    items = tab.var("items", parent=lst, access="r")
    return lst, items


def test_todo_list_with_viewlist():
    with AppTest(todo.app, site=SITE) as t:
        tab = t.open()
        assert "TodoApp.DEFAULT" in tab.viewdefs
        lst, items = open_list(tab)
        rows = tab.wait_for(items, lambda v: isinstance(v, list) and len(v) == 2)
        row0 = tab.var("0", parent=items)
        item0 = tab.var("item", parent=row0)
        text0 = tab.var("text", parent=item0)
        tab.wait(lambda tb: tb.prop(row0, "type") == "lua.ViewListItem" and tb.prop(item0, "type") == "TodoItem",
                 what="row types")
        assert tab.value(text0) == "milk"
        assert "lua.ViewListItem.list-item" in tab.viewdefs and "TodoItem.DEFAULT" in tab.viewdefs
        assert tab.value("remaining()") == 1
        # Add an item: the existing rows keep their identity, newText is cleared.
        tab.write("newText", "bread")
        tab.call("add()")
        grown = tab.wait_for(items, lambda v: len(v) == 3)
        assert grown[:2] == rows
        tab.wait_for("remaining()", 2)
        tab.wait_for("newText", "")
        # Tick milk through its row, then clear the done ones: milk and eggs go, bread stays first.
        done0 = tab.var("done", parent=item0, access="rw")
        tab.write(done0, True)
        tab.wait_for("remaining()", 1)
        tab.call("clearDone()")
        tab.wait_for(items, lambda v: v == [grown[2]])
        tab.wait_for(text0, "bread")


def test_wrong_kind_and_private_names_fail():
    with AppTest(todo.app, site=SITE) as t:
        tab = t.open()
        done = tab.write("items.0.done", "yes")
        tab.wait_error(done, "path-failure")
        tab.wait_error("newText.length", "path-failure")
        tab.wait_error("__class__", "path-failure")
        tab.wait_error("add", "path-failure")  # a method read as a field
        assert tab.value("items.1.done") is True


def test_the_readme_example():
    with AppTest(todo.app, site=SITE) as t:
        tab = t.open()
        assert tab.value("remaining()") == 1
        tab.write("newText", "bread")
        tab.call("add()")
        tab.wait_for("remaining()", 2)
        assert tab.value("items.2.text") == "bread"
