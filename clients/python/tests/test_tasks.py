"""The Tasks example (examples/python/tasks.py) with the Tasks site's viewdefs."""

import tasks
from conftest import site

from ui_gateway.testing import AppTest

SITE = site("tasks")


def test_tasks_app():
    with AppTest(tasks.app, site=SITE) as t:
        tab = t.open()
        assert "TasksApp.DEFAULT" in tab.viewdefs
        lst = tab.var("filteredTasks()?wrapper=lua.ViewList&scrollOnOutput")
        tab.wait(lambda tb: tb.prop(lst, "type") == "lua.ViewList", what="the list")
        items = tab.var("items", parent=lst, fallbackNamespace="list-item")
        tab.wait_for(items, lambda v: len(v) == 3)
        row = tab.var("0", parent=items)
        task = tab.var("item", parent=row)
        name = tab.var("name", parent=task)
        assert tab.value(name) == "Buy milk"
        assert tab.prop(task, "type") == "Task" and "Task.list-item" in tab.viewdefs
        assert tab.value("remaining()") == 2
        # Add, complete, filter, delete through a row's own remove().
        tab.write("newName", "  Read book ")
        tab.call("addTask()")
        tab.wait_for(items, lambda v: len(v) == 4)
        tab.wait_for("remaining()", 3)
        tab.wait_for("newName", "")
        tab.write(tab.var("completed", parent=task, access="rw"), True)
        tab.wait_for("remaining()", 2)
        tab.write("filter", "done")
        tab.wait_for(items, lambda v: len(v) == 2)
        # The Task.list-item viewdef's delete button: remove() on the task, not on its row.
        tab.call("remove()", parent=task)
        tab.wait_for(items, lambda v: len(v) == 1)
        tab.wait_for(name, "Write spec")
        tab.write("filter", "all")
        tab.wait_for(items, lambda v: len(v) == 3)
        tab.wait_for("remaining()", 2)
