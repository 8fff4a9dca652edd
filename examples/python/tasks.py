#!/usr/bin/env python3
"""The Tasks app (examples/tasks/viewdefs) served by a Python backend in connected mode, with the
behaviour of examples/tasks/lua/main.lua.

    ui-gateway --mode connected --site examples/tasks
    pip install ./clients/python      # or PYTHONPATH=clients/python/src
    python3 examples/python/tasks.py
"""

import logging

from ui_gateway import Client


class Task:
    def __init__(self, app, name, completed=False):
        self._app = app
        self.name = name
        self.completed = completed

    def remove(self):
        self._app.removeTask(self)


class TasksApp:
    def __init__(self):
        self.tasks = []
        self.newName = ""
        self.filter = "all"
        self._add("Buy milk")
        self._add("Write spec").completed = True
        self._add("Walk dog")

    def _add(self, name):
        task = Task(self, name)
        self.tasks.append(task)
        return task

    def addTask(self):
        name = (self.newName or "").strip()
        if name:
            self._add(name)
            self.newName = ""

    def clearNew(self):
        self.newName = ""

    def removeTask(self, task):
        self.tasks = [t for t in self.tasks if t is not task]

    def remaining(self):
        return sum(1 for t in self.tasks if not t.completed)

    def filteredTasks(self):
        if self.filter not in ("active", "done"):
            return self.tasks
        want = self.filter == "done"
        return [t for t in self.tasks if bool(t.completed) == want]


def app(session):
    return TasksApp()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    Client.from_env().connected(app).run()
