"""Address interning without scanning the ``addresses`` table per batch.

Each chain's interned addresses are indexed in memory by two independent 64-bit hashes of their text,
computed by DuckDB (``hash(address)`` and ``hash(address || chr(1))``), with their ids: 24 bytes per
address in sorted NumPy runs (merged like a binary counter, so adding is amortised O(log n) per address
and a look-up is a vectorised binary search per run). A batch's distinct addresses are hashed in one
query and looked up at once; only the new ones are inserted.

Exactness: the first hash is kept unique in the index. A new address whose first hash is already taken,
or whose first hash matches an entry whose second hash differs, is a 64-bit collision: the index is
dropped for that chain and interning falls back to the SQL anti-join (exact, slower). A wrong id needs
both 64-bit hashes of two different addresses to collide (about 2^-128 per pair).

The index is rebuilt from the table when the table's highest id is not the one the index expects (another
writer interned addresses), and it stays below :data:`MAX_INDEXED` entries per chain (beyond that the
chain interns through SQL), so memory stays bounded whatever the input size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

MAX_INDEXED = 30_000_000
"""Addresses per chain the in-memory index holds at most (24 bytes each: 720 MB, and as much again for a
moment while its largest runs merge), so that an ingest stays within 2 GB beside DuckDB's own limit."""

HASHES_SQL = "hash({col}) AS h1, hash({col} || chr(1)) AS h2"


class AddressIndex:
    """Interned ids of one chain's addresses by the pair of hashes of their text."""

    def __init__(self, h1: np.ndarray[Any, Any], h2: np.ndarray[Any, Any], ids: np.ndarray[Any, Any],
                 next_id: int) -> None:
        self.runs: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]] = []
        self.size = 0
        self.next_id = next_id
        if len(h1):
            order = np.argsort(h1, kind="stable")
            self.runs.append((h1[order], h2[order], ids[order]))
            self.size = len(h1)

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
        order = np.argsort(h1, kind="stable")
        self.runs.append((h1[order], h2[order], ids[order]))
        self.size += len(h1)
        self.next_id = max(self.next_id, int(ids.max()) + 1)
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            b1, b2, bid = self.runs.pop()
            a1, a2, aid = self.runs.pop()
            pos = np.searchsorted(a1, b1)
            self.runs.append((np.insert(a1, pos, b1), np.insert(a2, pos, b2), np.insert(aid, pos, bid)))


def hashes_of(con: Any, addresses: list[str]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The two hashes of each address, in order, computed by DuckDB."""
    con.register("_intern_hash", pa.table({"a": pa.array(addresses, pa.string())}))
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
    if count > MAX_INDEXED:
        return None
    if not count:
        empty = np.zeros(0, dtype=np.uint64)
        return AddressIndex(empty, empty, np.zeros(0, dtype=np.int64), 0)
    got = con.execute(f"SELECT {HASHES_SQL.format(col='address')}, id FROM addresses WHERE chain = ?",
                      [chain]).fetchnumpy()
    return AddressIndex.build(np.asarray(got["h1"], dtype=np.uint64), np.asarray(got["h2"], dtype=np.uint64),
                              np.asarray(got["id"], dtype=np.int64), top + 1)
