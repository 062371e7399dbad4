"""The service's document cache: least recently used out first, and nothing served past its bound."""

from __future__ import annotations

from fundtrail.api.documents import DocumentCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_document_is_served_within_its_bound_and_recomputed_after() -> None:
    clock = Clock()
    cache = DocumentCache(size=10, seconds=2.0, clock=clock)
    cache.put(("btc", "a"), b"old")
    clock.now += 1.9
    assert cache.get(("btc", "a")) == b"old"
    clock.now += 0.2  # 2.1 s after it was computed: the chain may have moved on
    assert cache.get(("btc", "a")) is None
    cache.put(("btc", "a"), b"new")
    assert cache.get(("btc", "a")) == b"new"


def test_the_least_recently_used_document_goes_first() -> None:
    cache = DocumentCache(size=2, seconds=60, clock=Clock())
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # b is now the least recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)


def test_a_zero_bound_or_size_caches_nothing() -> None:
    for cache in (DocumentCache(size=0), DocumentCache(size=10, seconds=0)):
        cache.put("a", 1)
        assert cache.get("a") is None


def test_a_stale_document_is_handed_out_while_one_refresh_runs() -> None:
    clock = Clock()
    cache = DocumentCache(size=10, seconds=2.0, stale_seconds=30.0, clock=clock)
    cache.put("a", b"old")
    clock.now += 5
    assert cache.get("a") is None and cache.get_stale("a") == b"old"
    assert cache.begin_refresh("a") and not cache.begin_refresh("a")  # one refresh at a time
    cache.put("a", b"new")
    cache.end_refresh("a")
    assert cache.get("a") == b"new" and cache.begin_refresh("a")
    cache.end_refresh("a")
    clock.now += 33  # past the stale horizon too: nothing is handed out
    assert cache.get_stale("a") is None and cache.get("a") is None
