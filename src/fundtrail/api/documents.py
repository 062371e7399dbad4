"""Documents the API serves: the address document (:mod:`fundtrail.analysis.profile`), and a cache for it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import orjson

from fundtrail.analysis import profile
from fundtrail.store import ChainStore


def address_document(store: ChainStore, home: Path, chain: str, address: str) -> dict[str, Any]:
    """The ``fundtrail address --format json`` document of ``address`` (the address profile service)."""
    return profile.address_document(store, home, chain, address)


class DocumentCache:
    """A small thread-safe LRU cache of documents.

    The service opens the chain store read-only and no writer can open it meanwhile, so a document
    computed from it stays true for the life of the process.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        """The cached document, or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        """Remember ``value``; the least recently used entry goes when full."""
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()


def json_bytes(document: Any) -> bytes:
    """A document as JSON bytes, as the API answers it."""
    from fastapi.encoders import jsonable_encoder

    return orjson.dumps(jsonable_encoder(document))
