#!/usr/bin/env python3
"""A to-do list in connected mode, the Python twin of examples/todo_backend/main.rs.

    ui-gateway --mode connected --site examples/todo_backend/site
    pip install ./clients/python
    python3 examples/python/todo.py

The `todo` fixture of protocol/vectors/fixtures/apps.md. The viewdef shows `items` with
`ui-viewlist`, so each item is wrapped in a lua.ViewListItem by the library, as Lua would.
"""

import logging

from ui_gateway import Client


class TodoItem:
    def __init__(self, text, done=False):
        self.text = text
        self.done = done

    def toggle(self):
        self.done = not self.done


class TodoApp:
    def __init__(self):
        self.items = [TodoItem("milk"), TodoItem("eggs", done=True)]
        self.newText = ""

    def add(self):
        """Appends a not-done item if newText is not empty, and clears newText."""
        text, self.newText = self.newText, ""
        if text:
            self.items.append(TodoItem(text))

    def clearDone(self):
        self.items = [item for item in self.items if not item.done]

    def remaining(self):
        return sum(1 for item in self.items if not item.done)


def app(session):
    """Each browser session starts with the same two items."""
    return TodoApp()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    Client.from_env().connected(app).run()
