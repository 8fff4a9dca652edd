"""The built-in wrappers the gallery's viewdefs use, with the behaviour of ``lua/viewlist.lua``.

A variable with ``wrapper=lua.ViewList`` shows a :class:`ViewList` instead of its raw value (a list):
one :class:`ViewListItem` per element, kept attached to the same element while the list changes, so
per-row browser state survives inserts and removals. ``itemWrapper=T`` gives each item a presenter
built by the type registered as ``T`` (``presenter = T(view_list_item)``), shown as the item's
``item``. The variable also gets ``fallbackNamespace=list-item``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from .errors import path_failure

VIEW_LIST = "lua.ViewList"
VIEW_LIST_ITEM = "lua.ViewListItem"


class ViewListItem:
    """One row of a :class:`ViewList`: ``item`` (the element or its presenter), ``baseItem`` (the
    element), ``index`` (0-based position) and ``list`` (the owning ViewList)."""

    type = VIEW_LIST_ITEM

    def __init__(self, lst: "ViewList", element: Any, index: int) -> None:
        self.list = lst
        self.baseItem = element
        self.item = element
        self.index = index

    def remove(self) -> None:
        """Removes this row's element from the source list."""
        self.list.removeAt(self.index)


def _destroy_presenter(li: ViewListItem) -> None:
    presenter = li.item
    if presenter is not li.baseItem and presenter is not None:
        destroy = getattr(presenter, "destroy", None)
        if callable(destroy):
            try:
                destroy()
            except Exception:  # a presenter failing to clean up must not break the list
                pass


class ViewList:
    """The ``lua.ViewList`` wrapper: ``items`` (ViewListItems), ``selectionIndex`` (-1 = none),
    ``itemWrapper`` (presenter type name), ``removeAt(i)`` and ``remove(element)``."""

    type = VIEW_LIST

    def __init__(self, lookup_type: Optional[Callable[[str], Optional[Callable[[Any], Any]]]] = None) -> None:
        self.items: List[ViewListItem] = []
        self.selectionIndex = -1
        self.itemWrapper = ""
        self._keys: Dict[Any, List[ViewListItem]] = {}
        self._source: Any = None
        self._lookup_type = lookup_type

    def _new_item(self, element: Any, index: int) -> ViewListItem:
        li = ViewListItem(self, element, index)
        if self.itemWrapper and self._lookup_type is not None:
            factory = self._lookup_type(self.itemWrapper)
            if factory is not None:
                presenter = factory(li)
                if presenter is not None:
                    li.item = presenter
        return li

    @staticmethod
    def _key(element: Any) -> Any:
        # Identity for objects, value for scalars (as Lua table keys): equal strings share rows in order.
        if element is None or isinstance(element, (bool, int, float, str)):
            return ("v", type(element).__name__, element)
        return ("id", id(element))

    def _sync(self, source: Any) -> None:
        """Sync by identity: an element keeps its item while it stays in the list; repeated equal
        scalars map to items in order of occurrence."""
        old = self._keys
        keys: Dict[Any, List[ViewListItem]] = {}
        items: List[ViewListItem] = []
        if isinstance(source, (list, tuple)):
            for i, e in enumerate(source):
                if isinstance(e, float) and e != e:  # NaN never matches an old item
                    items.append(self._new_item(e, i))
                    continue
                k = self._key(e)
                slots = old.get(k)
                li = slots.pop(0) if slots else None
                if li is not None:
                    li.index = i
                else:
                    li = self._new_item(e, i)
                items.append(li)
                keys.setdefault(k, []).append(li)
        for slots in old.values():
            for li in slots:
                _destroy_presenter(li)
        self._keys, self.items, self._source = keys, items, source
        if self.selectionIndex >= len(items):
            self.selectionIndex = -1

    def _rewrap(self, source: Any, item_wrapper: str) -> None:
        """What the wrapper constructor does on every computation of its variable."""
        if item_wrapper != self.itemWrapper:
            for li in self.items:
                _destroy_presenter(li)
            self._keys, self.items, self.itemWrapper = {}, [], item_wrapper
        if source is not None and not isinstance(source, (list, tuple)):
            self._sync(None)
            raise path_failure(f"a ViewList needs a sequence, got a {type(source).__name__}")
        self._sync(source)

    def removeAt(self, index: int) -> None:
        """Removes element ``index`` (0-based) from the source list."""
        src = self._source
        if isinstance(src, list) and isinstance(index, int) and 0 <= index < len(src):
            del src[index]
            self._sync(src)

    def remove(self, element: Any) -> None:
        """Removes the row showing ``element`` (the element, its presenter or the row itself)."""
        for i, li in enumerate(self.items):
            if li.baseItem is element or li.item is element or li is element:
                self.removeAt(i)
                return

    def destroy(self) -> None:
        """Destroying the list destroys every presenter."""
        for li in self.items:
            _destroy_presenter(li)
        self._keys, self.items = {}, []
