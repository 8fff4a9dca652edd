#!/usr/bin/env python3
"""A counter in connected mode, the Python twin of examples/counter_backend/main.rs.

    ui-gateway --mode connected --site examples/counter_backend/site
    pip install ./clients/python
    python3 examples/python/counter.py

UI_BACKEND_URL (default ws://127.0.0.1:8000/backend) and UI_BACKEND_TOKEN say where to connect. This
is the `counter` fixture of protocol/vectors/fixtures/apps.md: Counter{count=0, increment()}.
"""

import logging

from ui_gateway import Client


class Counter:
    def __init__(self):
        self.count = 0

    def increment(self):
        self.count += 1


def app(session):
    """Each browser session gets its own counter."""
    return Counter()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    Client.from_env().connected(app).run()
