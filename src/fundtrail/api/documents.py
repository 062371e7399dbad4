"""Documents the API serves: the address document (:mod:`fundtrail.analysis.profile`), and a cache for it."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import orjson

from fundtrail.analysis import profile
from fundtrail.analysis.risk import HOME_CATALOGUE
from fundtrail.store import ChainStore
from fundtrail.store.chainstore import file_generation


def address_document(store: ChainStore, home: Path, chain: str, address: str) -> dict[str, Any]:
    """The ``fundtrail address --format json`` document of ``address`` (the address profile service)."""
    return profile.address_document(store, home, chain, address)


def home_generation(home: Path) -> Hashable:
    """What the documents of ``home`` are computed from, as a value that changes when any of it changes:
    the chain store file (:func:`~fundtrail.store.chainstore.file_generation`: every committed write of
    any process, ingest, reorg, tag or sanctions import, clustering) and the home's risk indicator
    catalogue. A few ``stat`` calls."""
    try:
        st = os.stat(Path(home) / HOME_CATALOGUE)
        catalogue: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
    except FileNotFoundError:
        catalogue = None
    return file_generation(Path(home) / "chain.duckdb"), catalogue


_UNSET: Any = object()


class DocumentCache:
    """A small thread-safe LRU cache of documents, each valid while what it was computed from is unchanged.

    An ingest, a watcher or a tag import may write to the chain store while the service reads it
    (:mod:`fundtrail.store.service`). Each document is kept with the *generation* of the store it was
    computed from (``generation``: a cheap probe such as :func:`home_generation`), and served while the
    store's generation is the same: an unchanged store never costs a recomputation. The probe is asked
    at most once every ``seconds`` (0: on every look-up), so a change is seen within ``seconds``; the
    generation to tag a document with is taken *before* its computation starts (an older tag only costs
    one needless recomputation; a newer one would keep a stale document).

    Concurrent computations of one document are shared: :meth:`claim` makes one request the computer,
    :meth:`pending` lets the others wait for its result (:meth:`settle`).
    """

    def __init__(self, size: int = 4096, seconds: float = 0.5,
                 generation: Callable[[], Hashable] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.seconds = seconds
        self._probe = generation
        self._clock = clock
        self._items: OrderedDict[Hashable, tuple[Hashable, Any]] = OrderedDict()
        self._claims: dict[Hashable, tuple[Hashable, Future[Any]]] = {}
        self._lock = threading.Lock()
        self._probe_lock = threading.Lock()
        self._generation: Hashable = _UNSET
        self._checked = 0.0
        self.probes = 0

    def watch(self, generation: Callable[[], Hashable] | None) -> None:
        """Follow this probe from now on (None: documents never go stale); asked on the next look-up."""
        with self._probe_lock:
            self._probe = generation
            self._generation = _UNSET

    def current(self) -> Hashable:
        """The store's generation as last seen, asking the probe when it was asked ``seconds`` ago or more."""
        if self._probe is None:
            return None
        now = self._clock()
        with self._probe_lock:
            if self._generation is _UNSET or now - self._checked >= self.seconds:
                self._generation = self._probe()
                self._checked = now
                self.probes += 1
            return self._generation

    def get(self, key: Hashable, generation: Hashable = _UNSET) -> Any | None:
        """The cached document of ``generation`` (default: the current one), or None."""
        if generation is _UNSET:
            generation = self.current()
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != generation:
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: Hashable, value: Any, generation: Hashable = _UNSET) -> None:
        """Remember ``value`` computed from ``generation`` (give the one taken before computing it;
        default: the last one seen); the least recently used entry goes when full."""
        if self.size <= 0:
            return
        if generation is _UNSET:
            generation = None if self._probe is None else self._generation
            if generation is _UNSET:
                return
        with self._lock:
            self._items[key] = (generation, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def pending(self, key: Hashable, generation: Hashable) -> Future[Any] | None:
        """The running computation of ``key`` for ``generation``, if one was claimed."""
        with self._lock:
            claim = self._claims.get(key)
            return claim[1] if claim is not None and claim[0] == generation else None

    def claim(self, key: Hashable, generation: Hashable) -> Future[Any]:
        """Become the computer of ``key`` for ``generation``: others waiting get what :meth:`settle` gives."""
        future: Future[Any] = Future()
        with self._lock:
            self._claims[key] = (generation, future)
        return future

    def settle(self, key: Hashable, future: Future[Any], value: Any = None,
               error: BaseException | None = None) -> None:
        """The claimed computation ended: hand its value (or error) to those waiting."""
        with self._lock:
            if self._claims.get(key, (None, None))[1] is future:
                del self._claims[key]
        if not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()


def json_bytes(document: Any) -> bytes:
    """A document as JSON bytes, as the API answers it."""
    from fastapi.encoders import jsonable_encoder

    return orjson.dumps(jsonable_encoder(document))
