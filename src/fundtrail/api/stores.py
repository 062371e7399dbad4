"""The chain store as the service shares it between request threads.

DuckDB connections are not safe to share between threads, but cursors of one connection are separate
connections to the same database: the service opens the home's chain store once, shared with the other
processes on the home (:mod:`fundtrail.store.service`: it hosts the store or reaches the process that
does), and lends every request (and every background job) a cursor of its own from a pool, wrapped as a
:class:`ChainStore` so that the analysis services take it unchanged. The service only reads chain data;
an ingest or a watcher writes beside it, and each request reads a consistent snapshot.

The pooled stores of one file compare equal, so that caches keyed by the store (the UTXO graph that
tracing builds) are built once and shared by every request, and live as long as the pool.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from fundtrail.store import ChainStore

log = logging.getLogger(__name__)


class CursorStore(ChainStore):
    """A :class:`ChainStore` over a cursor of a shared connection; closing it closes only the cursor."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, path: str) -> None:  # noqa: D107
        self.path = path
        self.read_only = True
        self.con = cursor

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CursorStore) and other.path == self.path

    def __hash__(self) -> int:
        return hash((CursorStore, self.path))


class ChainAccess:
    """The home's shared chain store; :meth:`store` yields a per-thread cursor of it."""

    def __init__(self, home: Path) -> None:
        self.path = Path(home) / "chain.duckdb"
        self._lock = threading.Lock()
        self._opened: ChainStore | None = None
        self._free: list[CursorStore] = []
        self._all: list[CursorStore] = []

    @property
    def root(self) -> duckdb.DuckDBPyConnection:
        """The shared connection, opened on first use."""
        with self._lock:
            if self._opened is None:
                log.info("chain store %s opened (shared)", self.path)
                self._opened = ChainStore.open_shared(self.path, read_only=True)
            return self._opened.con

    @contextmanager
    def store(self) -> Iterator[ChainStore]:
        """A chain store for the calling thread alone (a pooled cursor of the shared connection)."""
        root = self.root
        with self._lock:
            if self._free:
                store = self._free.pop()
            else:
                store = CursorStore(root.cursor(), str(self.path))
                self._all.append(store)
        healthy = False
        try:
            yield store
            healthy = True
        finally:
            healthy = healthy and self._reset(store)
            with self._lock:
                if self._opened is not None and self._opened.con is root and healthy:
                    self._free.append(store)
                else:  # pooled stores compare equal: drop this one by identity
                    self._all = [x for x in self._all if x is not store]
                    store.con.close()

    @staticmethod
    def _reset(store: CursorStore) -> bool:
        """Drop what a service left unread on the cursor; False when the cursor is not usable."""
        try:
            store.con.abort()
        except duckdb.Error:
            return False
        return True

    def close(self) -> None:
        """Close the cursors and the shared store."""
        with self._lock:
            for store in self._all:
                store.con.close()
            self._free.clear()
            self._all.clear()
            if self._opened is not None:
                self._opened.close()
                self._opened = None
