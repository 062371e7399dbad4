"""Documents the API serves that the CLI composes too: the address document, and a cache for it.

The address document is built exactly as ``fundtrail address`` builds it: the store's activity look-up,
then every enricher that the layers registered (cluster, tags, sanctions, exposure, risk).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import orjson

from fundtrail.store import ChainStore
from fundtrail.store.lookups import address_activity


def address_enrichers() -> list[Any]:
    """The enrichers of the address document, as the CLI registers them."""
    import fundtrail.cli.main  # noqa: F401  (registering the command modules registers the enrichers)
    from fundtrail.cli.lookup import ADDRESS_ENRICHERS

    return list(ADDRESS_ENRICHERS)


def address_document(store: ChainStore, home: Path, chain: str, address: str) -> dict[str, Any]:
    """The ``fundtrail address --format json`` document of ``address``."""
    doc = address_activity(store, chain, address)
    for enrich in address_enrichers():
        enrich(store, home, doc)
    return doc


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
