"""Address interning without scanning the ``addresses`` table per batch.

Each chain's interned addresses are indexed in memory by two independent 64-bit hashes of their text,
computed by DuckDB (``hash(address)`` and ``hash(address || chr(1))``), with their ids: 16 bytes per
address (the first hash, the low 32 bits of the second, the id as 32 bits) in sorted NumPy runs (merged
like a binary counter, so adding is amortised O(log n) per address and a look-up is a vectorised binary
search per run; runs stop merging at :data:`MAX_RUN` entries, and a merge builds one column at a time,
so growing the index needs a few tens of MB more at most, not a second copy of it). A batch's distinct
addresses are hashed in one query and looked up at once; only the new ones are inserted.

Exactness: the first hash is kept unique in the index. A new address whose first hash is already taken,
or whose first hash matches an entry whose second hash differs, is a 64-bit collision: the index is
dropped for that chain and interning falls back to the SQL anti-join (exact, slower). A wrong id needs
the first hash (64 bits) and the kept part of the second (32 bits) of two different addresses to collide
(about 2^-96 per pair).

The index is rebuilt from the table when the table's highest id is not the one the index expects (another
writer interned addresses), and it stays below :data:`MAX_INDEXED` entries per chain (beyond that the
chain interns through SQL), so memory stays bounded whatever the input size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

MAX_INDEXED = 30_000_000
"""Addresses per chain the in-memory index holds at most (16 bytes each: 480 MB), so that an ingest stays
within 2 GB beside DuckDB's own limit (:data:`fundtrail.store.chainstore.INGEST_MEMORY`)."""

MAX_RUN = 4_000_000
"""Entries beyond which runs are not merged (64 MB a run): a look-up searches a few more runs, and a merge
never copies more than this."""

MAX_ID = 2**31 - 1
"""Ids the index holds (32 bits); a chain with higher ids interns through SQL."""

_Run = list[np.ndarray[Any, Any]]

HASHES_SQL = "hash({col}) AS h1, hash({col} || chr(1)) AS h2"


class AddressIndex:
    """Interned ids of one chain's addresses by the pair of hashes of their text."""

    def __init__(self, h1: np.ndarray[Any, Any], h2: np.ndarray[Any, Any], ids: np.ndarray[Any, Any],
                 next_id: int) -> None:
        self.runs: list[_Run] = []
        self.size = 0
        self.next_id = next_id
        if len(h1):
            self.runs.append(_sorted_run(h1, h2, ids))
            self.size = len(h1)

    @property
    def full(self) -> bool:
        """Whether the index holds more than it may (:data:`MAX_INDEXED` entries, ids up to :data:`MAX_ID`):
        the chain interns through SQL from then on."""
        return self.size > MAX_INDEXED or self.next_id > MAX_ID

    @classmethod
    def build(cls, h1: np.ndarray[Any, Any], h2: np.ndarray[Any, Any], ids: np.ndarray[Any, Any],
              next_id: int) -> AddressIndex | None:
        """The index of these entries, or None when two of them share the first hash."""
        index = cls(h1, h2, ids, next_id)
        if index.runs and bool((index.runs[0][0][1:] == index.runs[0][0][:-1]).any()):
            return None
        return index

    def lookup(self, h1: np.ndarray[Any, Any], h2: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
        """The id of each (h1, h2), -1 where the index has none; None when a first hash matches an entry
        whose second hash differs (a collision: the caller stops using the index)."""
        found = np.full(len(h1), -1, dtype=np.int64)
        h2 = h2.astype(np.uint32)  # the kept low 32 bits
        for r1, r2, rid in self.runs:
            pos = np.searchsorted(r1, h1)
            pos[pos == len(r1)] = 0
            hit = r1[pos] == h1
            if not hit.any():
                continue
            same = hit & (r2[pos] == h2)
            if bool((hit & ~same).any()):
                return None
            found[same] = rid[pos[same]]
        return found

    def add(self, h1: np.ndarray[Any, Any], h2: np.ndarray[Any, Any], ids: np.ndarray[Any, Any]) -> None:
        """Add entries not in the index (their first hashes unique and absent: checked by the caller)."""
        if not len(h1):
            return
        self.next_id = max(self.next_id, int(ids.max()) + 1)
        if self.next_id > MAX_ID:  # the index is dropped by its user (see ``full``)
            return
        self.runs.append(_sorted_run(h1, h2, ids))
        self.size += len(h1)
        while (len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0])
               and len(self.runs[-2][0]) + len(self.runs[-1][0]) <= MAX_RUN):
            b = self.runs.pop()
            a = self.runs.pop()
            pos = np.searchsorted(a[0], b[0])
            merged: _Run = []
            for k in range(3):  # one column at a time: the old one is freed before the next is built
                merged.append(np.insert(a[k], pos, b[k]))
                a[k] = b[k] = np.zeros(0, dtype=merged[k].dtype)
            self.runs.append(merged)


def _sorted_run(h1: np.ndarray[Any, Any], h2: np.ndarray[Any, Any], ids: np.ndarray[Any, Any]) -> _Run:
    """The entries as a run sorted by first hash, in the index's compact types."""
    order = np.argsort(h1, kind="stable")
    return [np.asarray(h1, dtype=np.uint64)[order], np.asarray(h2).astype(np.uint32)[order],
            np.asarray(ids).astype(np.int32)[order]]


def hashes_of(con: Any, addresses: list[str] | pa.Array
              ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The two hashes of each address, in order, computed by DuckDB."""
    column = addresses if isinstance(addresses, pa.Array) else pa.array(addresses, pa.string())
    con.register("_intern_hash", pa.table({"a": column}))
    try:
        got = con.execute(f"SELECT {HASHES_SQL.format(col='a')} FROM _intern_hash").fetchnumpy()
    finally:
        con.unregister("_intern_hash")
    return np.asarray(got["h1"], dtype=np.uint64), np.asarray(got["h2"], dtype=np.uint64)


def load_index(con: Any, chain: str) -> AddressIndex | None:
    """The index of the chain's stored addresses, or None when the chain has too many to index."""
    row = con.execute("SELECT count(*), coalesce(max(id), -1) FROM addresses WHERE chain = ?",
                      [chain]).fetchall()[0]
    count, top = int(row[0]), int(row[1])
    if count > MAX_INDEXED or top + 1 > MAX_ID:
        return None
    if not count:
        empty = np.zeros(0, dtype=np.uint64)
        return AddressIndex(empty, empty, np.zeros(0, dtype=np.int64), 0)
    got = con.execute(f"SELECT {HASHES_SQL.format(col='address')}, id FROM addresses WHERE chain = ?",
                      [chain]).fetchnumpy()
    return AddressIndex.build(np.asarray(got["h1"], dtype=np.uint64), np.asarray(got["h2"], dtype=np.uint64),
                              np.asarray(got["id"], dtype=np.int64), top + 1)
