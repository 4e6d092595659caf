"""Text embeddings per label set for two-tower tasks: a small least-recently-used cache."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LabelCache(Generic[V]):
    """At most ``size`` entries; the least recently used one leaves first."""

    def __init__(self, size: int = 32):
        self.size = size
        self._entries: OrderedDict[Hashable, V] = OrderedDict()

    def get(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The entry of ``key``, computed by ``compute()`` the first time it is asked for."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = self._entries[key] = compute()
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value
