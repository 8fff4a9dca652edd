"""Shared fixtures: the repository layout (example apps, sites, protocol vectors)."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
VECTORS = ROOT / "protocol" / "vectors"

# The example apps are the fixtures (counter, todo, tasks).
sys.path.insert(0, str(EXAMPLES / "python"))


def site(name: str) -> str:
    return str(EXAMPLES / name)


@pytest.fixture(autouse=True)
def _no_backend_env(monkeypatch):
    """The library reads UI_BACKEND_*; tests set their URLs explicitly."""
    for k in list(os.environ):
        if k.startswith("UI_BACKEND_"):
            monkeypatch.delenv(k)
