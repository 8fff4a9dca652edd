"""The object model: how plain Python values are read, written and called through variable paths,
and how objects become ``{"obj":N}`` references.

Rules (the issue's object model):

- ``None``, ``bool``, ``int``, ``float``, ``str`` travel as themselves; lists and tuples as arrays;
  any other value is an object, sent as ``{"obj":N}`` with one N per identity.
- An object's type is its string ``type`` attribute if it has one, else its class name. A dict is
  navigable like an object (string keys) and is typed only by a string ``"type"`` key.
- Names starting with ``_`` are never reachable. Reading a method as a field, writing a method, a
  missing attribute, or a value of the wrong kind all fail with ``path-failure``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

from .errors import VarError, path_failure

SCALARS = (bool, int, float, str)
MAX_SAFE = 2**53


# ----- paths -----


@dataclass(frozen=True)
class Seg:
    """One path element: ``name`` (a field), ``index``, ``call`` (``m()``), ``callarg`` (``m(_)``), ``up`` (``..``)."""

    kind: str
    key: Any = None


_TOKEN = re.compile(r"\.\.|[^.]+")


def parse_path(text: str) -> List[Seg]:
    """Splits a path (``a.b``, ``0``, ``m()``, ``m(_)``, ``..``) into segments."""
    if not text:
        raise VarError("bad-message", "empty path")
    segs: List[Seg] = []
    for tok in _TOKEN.findall(text):
        if tok == "..":
            segs.append(Seg("up"))
        elif tok.endswith("(_)"):
            segs.append(Seg("callarg", tok[:-3]))
        elif tok.endswith("()"):
            segs.append(Seg("call", tok[:-2]))
        elif tok.isdigit():
            segs.append(Seg("index", int(tok)))
        else:
            segs.append(Seg("name", tok))
    for s in segs[:-1]:
        if s.kind == "callarg":
            raise VarError("bad-message", "m(_) must be the last path element")
    return segs


# ----- classification -----


def is_object(v: Any) -> bool:
    """Whether ``v`` is sent as an object reference (not a scalar, not an array)."""
    return not (v is None or isinstance(v, SCALARS) or isinstance(v, (list, tuple)))


def type_name(v: Any) -> str:
    """The ``type`` property of a value: ``""`` unless it is an object."""
    if not is_object(v):
        return ""
    if isinstance(v, dict):
        t = v.get("type")
        return t if isinstance(t, str) else ""
    t = getattr(v, "type", None)
    if isinstance(t, str):
        return t
    return type(v).__name__


def _check_name(name: str) -> None:
    if name.startswith("_"):
        raise path_failure(f"{name!r} is private (names starting with '_' are not reachable)")


def _describe(v: Any) -> str:
    return type_name(v) or type(v).__name__


def get_member(base: Any, name: str) -> Any:
    """Reads field ``name`` of ``base`` (an attribute, a property or a dict key)."""
    _check_name(name)
    if base is None:
        raise path_failure(f"nil at {name!r}")
    if isinstance(base, dict):
        if name not in base:
            raise path_failure(f"no field {name!r}")
        v = base[name]
    elif not is_object(base):
        raise path_failure(f"cannot read {name!r} of a {_describe(base)}")
    else:
        try:
            v = getattr(base, name)
        except AttributeError:
            raise path_failure(f"{_describe(base)} has no field {name!r}") from None
        except VarError:
            raise
        except Exception as e:  # a property raised
            raise path_failure(f"{name}: {type(e).__name__}: {e}") from None
    if callable(v):
        raise path_failure(f"{name!r} is a method (use {name}())")
    return v


def get_index(base: Any, index: int) -> Any:
    if base is None:
        raise path_failure(f"nil at index {index}")
    if not isinstance(base, (list, tuple)):
        raise path_failure(f"cannot index a {_describe(base)}")
    return base[index] if index < len(base) else None


def _method(base: Any, name: str) -> Any:
    _check_name(name)
    if base is None:
        raise path_failure(f"nil at {name}()")
    m = base.get(name) if isinstance(base, dict) else getattr(base, name, None)
    if not callable(m) or not is_object(base):
        raise path_failure(f"{_describe(base)} has no method {name!r}")
    return m


def call_method(base: Any, name: str, *args: Any) -> Any:
    """Calls method ``name`` of ``base``; an exception becomes ``path-failure`` (a ``VarError`` keeps its code)."""
    m = _method(base, name)
    try:
        return m(*args)
    except VarError:
        raise
    except Exception as e:
        raise path_failure(f"{name}(): {type(e).__name__}: {e}") from None


def _kind(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (list, tuple)):
        return "array"
    return "object"


def _check_kind(name: str, current: Any, new: Any) -> None:
    """A written value must be of the current value's kind (any kind replaces ``None``; ``None`` may
    replace an object)."""
    ck, nk = _kind(current), _kind(new)
    if ck == "nil" or ck == nk or (ck == "object" and nk == "nil"):
        return
    raise path_failure(f"{name} holds a {ck}; cannot write a {nk}")


def set_member(base: Any, name: str, value: Any) -> None:
    """Writes an existing, non-callable field of ``base``."""
    _check_name(name)
    if base is None:
        raise path_failure(f"nil at {name!r}")
    if isinstance(base, dict):
        if name not in base or callable(base[name]):
            raise path_failure(f"no field {name!r}")
        _check_kind(name, base[name], value)
        base[name] = value
        return
    if not is_object(base):
        raise path_failure(f"cannot write {name!r} of a {_describe(base)}")
    try:
        current = getattr(base, name)
    except AttributeError:
        raise path_failure(f"{_describe(base)} has no field {name!r}") from None
    except Exception as e:
        raise path_failure(f"{name}: {type(e).__name__}: {e}") from None
    if callable(current):
        raise path_failure(f"{name!r} is a method")
    _check_kind(name, current, value)
    try:
        setattr(base, name, value)
    except AttributeError as e:  # a property without a setter
        raise path_failure(f"{name!r} cannot be written: {e}") from None
    except VarError:
        raise
    except Exception as e:
        raise path_failure(f"{name}: {type(e).__name__}: {e}") from None


def set_index(base: Any, index: int, value: Any) -> None:
    if not isinstance(base, list):
        raise path_failure(f"cannot assign an index of a {_describe(base)}")
    if index < len(base):
        base[index] = value
    elif index == len(base):
        base.append(value)
    else:
        raise path_failure(f"index {index} is past the end")


# ----- object references -----


class Registry:
    """One session's ``{"obj":N}`` table: a stable N per object identity, never reused.

    Objects are held while a variable's last reported value references them; :meth:`retain` drops the
    rest after each detection pass, so an object nobody shows is released (and a later reference to
    the same object gets a new N)."""

    def __init__(self) -> None:
        self._by_identity: Dict[int, Tuple[int, Any]] = {}
        self._by_number: Dict[int, Any] = {}
        self._next = 1

    def ref(self, obj: Any) -> Dict[str, int]:
        entry = self._by_identity.get(id(obj))
        if entry is None or entry[1] is not obj:
            entry = (self._next, obj)
            self._next += 1
            self._by_identity[id(obj)] = entry
            self._by_number[entry[0]] = obj
        return {"obj": entry[0]}

    def lookup(self, n: Any) -> Any:
        if isinstance(n, bool) or not isinstance(n, int) or n not in self._by_number:
            raise VarError("not-found", f"unknown object {n!r}")
        return self._by_number[n]

    def retain(self, numbers: set) -> None:
        """Keeps only the objects whose numbers are in ``numbers``."""
        for n in [n for n in self._by_number if n not in numbers]:
            obj = self._by_number.pop(n)
            self._by_identity.pop(id(obj), None)

    def __len__(self) -> int:
        return len(self._by_number)

    def to_json(self, v: Any) -> Any:
        """The value JSON of ``v``."""
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int):
            return v
        if isinstance(v, float):
            if math.isnan(v) or math.isinf(v):
                return None
            if v.is_integer() and abs(v) < MAX_SAFE:
                return int(v)
            return v
        if isinstance(v, (list, tuple)):
            return [self.to_json(x) for x in v]
        return self.ref(v)

    def from_json(self, v: Any) -> Any:
        """A Python value for value JSON written by the gateway: ``{"obj":N}`` is the known object,
        any other JSON object a new dict record."""
        if isinstance(v, dict):
            if set(v) == {"obj"}:
                return self.lookup(v["obj"])
            return {k: self.from_json(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.from_json(x) for x in v]
        return v


def collect_refs(value_json: Any, into: set) -> None:
    """Adds every object number inside ``value_json`` to ``into``."""
    if isinstance(value_json, dict):
        n = value_json.get("obj")
        if isinstance(n, int):
            into.add(n)
    elif isinstance(value_json, list):
        for x in value_json:
            collect_refs(x, into)
