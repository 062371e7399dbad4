"""Memory bounds of the ingest write path: the address index's compact layout and its limits."""

from __future__ import annotations

import numpy as np
import pytest

from fundtrail.store import interning
from fundtrail.store.interning import AddressIndex


def _hashes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**64 - 1, n, dtype=np.uint64), rng.integers(0, 2**64 - 1, n, dtype=np.uint64)


def test_address_index_holds_16_bytes_an_address_after_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interning, "MAX_RUN", 5000)
    h1, h2 = _hashes(20_000, 5)
    index = AddressIndex(h1[:10], h2[:10], np.arange(10, dtype=np.int64), 10)
    for start in range(10, 20_000, 999):
        stop = min(start + 999, 20_000)
        index.add(h1[start:stop], h2[start:stop], np.arange(start, stop, dtype=np.int64))
    assert index.size == 20_000
    assert sum(col.nbytes for run in index.runs for col in run) == 16 * 20_000
    assert all(bool((run[0][1:] > run[0][:-1]).all()) for run in index.runs)  # each run sorted
    sizes = [len(run[0]) for run in index.runs]
    assert max(sizes) <= 5000 and len(sizes) <= 10  # runs merge, but never beyond MAX_RUN
    order = np.random.default_rng(6).permutation(20_000)
    found = index.lookup(h1[order], h2[order])
    assert found is not None and (found == order).all()
    # the second hash is compared on its kept 32 bits: a difference there is still a collision
    assert index.lookup(h1[3:4], h2[3:4] ^ np.uint64(1)) is None


def test_address_index_is_full_beyond_its_entries_or_its_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    h1, h2 = _hashes(30, 7)
    monkeypatch.setattr(interning, "MAX_INDEXED", 20)
    index = AddressIndex(h1[:10], h2[:10], np.arange(10, dtype=np.int64), 10)
    index.add(h1[10:20], h2[10:20], np.arange(10, 20, dtype=np.int64))
    assert not index.full
    index.add(h1[20:30], h2[20:30], np.arange(20, 30, dtype=np.int64))
    assert index.full
    big = AddressIndex(h1[:10], h2[:10], np.arange(10, dtype=np.int64), 10)
    big.add(h1[10:11], h2[10:11], np.array([interning.MAX_ID], dtype=np.int64))  # beyond 32-bit ids
    assert big.full and big.size == 10
