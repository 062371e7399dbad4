"""Documents the API serves: the address document (:mod:`fundtrail.analysis.profile`), and a cache for it."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import orjson

from fundtrail.analysis import profile
from fundtrail.store import ChainStore


def address_document(store: ChainStore, home: Path, chain: str, address: str) -> dict[str, Any]:
    """The ``fundtrail address --format json`` document of ``address`` (the address profile service)."""
    return profile.address_document(store, home, chain, address)


class DocumentCache:
    """A small thread-safe LRU cache of documents, each kept at most ``seconds``.

    An ingest, a watcher or a tag import may write to the chain store while the service reads it
    (:mod:`fundtrail.store.service`), so a document computed from it is true only for a while: a
    cached document is fresh for ``seconds`` after it was computed. Past that, :meth:`get_stale`
    still hands it out for up to ``stale_seconds`` more while one refresh (claimed with
    :meth:`begin_refresh`) computes it again, so that popular documents never make requests wait.
    """

    def __init__(self, size: int = 4096, seconds: float = 2.0, stale_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.seconds = seconds
        self.stale_seconds = stale_seconds
        self._clock = clock
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._refreshing: set[Hashable] = set()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        """The cached document, or None (never cached, evicted, or older than the bound)."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            age = self._clock() - item[0]
            if age > self.seconds:
                if age > self.seconds + self.stale_seconds:
                    del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def get_stale(self, key: Hashable) -> Any | None:
        """The cached document even past its freshness, within ``stale_seconds`` more; else None."""
        with self._lock:
            item = self._items.get(key)
            if item is None or self._clock() - item[0] > self.seconds + self.stale_seconds:
                return None
            return item[1]

    def begin_refresh(self, key: Hashable) -> bool:
        """Claim the one refresh of ``key``: False when another is already running."""
        with self._lock:
            if key in self._refreshing:
                return False
            self._refreshing.add(key)
            return True

    def end_refresh(self, key: Hashable) -> None:
        """The refresh of ``key`` is over (done or failed)."""
        with self._lock:
            self._refreshing.discard(key)

    def put(self, key: Hashable, value: Any) -> None:
        """Remember ``value``; the least recently used entry goes when full."""
        if self.size <= 0 or self.seconds <= 0:
            return
        with self._lock:
            self._items[key] = (self._clock(), value)
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
