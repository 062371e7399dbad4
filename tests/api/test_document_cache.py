"""The service's document cache: valid while the store's generation is, least recently used out first."""

from __future__ import annotations

from fundtrail.api.documents import DocumentCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Probe:
    def __init__(self) -> None:
        self.value = 1
        self.asked = 0

    def __call__(self) -> int:
        self.asked += 1
        return self.value


def test_a_document_is_served_while_the_store_is_unchanged_and_recomputed_after_a_change() -> None:
    clock, probe = Clock(), Probe()
    cache = DocumentCache(size=10, seconds=2.0, generation=probe, clock=clock)
    cache.put(("btc", "a"), b"old", cache.current())
    clock.now += 3600
    assert cache.get(("btc", "a")) == b"old"
    probe.value += 1  # the chain moved on
    clock.now += 1.9  # not looked yet
    assert cache.get(("btc", "a")) == b"old"
    clock.now += 0.2  # looked again: the document is not served any more
    assert cache.get(("btc", "a")) is None
    cache.put(("btc", "a"), b"new", cache.current())
    assert cache.get(("btc", "a")) == b"new"


def test_the_least_recently_used_document_goes_first() -> None:
    cache = DocumentCache(size=2, seconds=60, clock=Clock())
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # b is now the least recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)


def test_a_zero_size_caches_nothing_and_a_zero_interval_looks_at_every_look_up() -> None:
    cache = DocumentCache(size=0)
    cache.put("a", 1)
    assert cache.get("a") is None
    probe = Probe()
    cache = DocumentCache(size=10, seconds=0, generation=probe, clock=Clock())
    cache.put("a", 1, cache.current())
    assert [cache.get("a") for _ in range(3)] == [1, 1, 1] and probe.asked == 4
    probe.value += 1
    assert cache.get("a") is None


def test_a_document_put_without_a_generation_takes_the_last_one_seen() -> None:
    clock, probe = Clock(), Probe()
    cache = DocumentCache(size=10, seconds=1.0, generation=probe, clock=clock)
    cache.put("a", b"early")  # nothing seen yet: not kept (its generation is unknown)
    assert cache.get("a") is None
    cache.put("a", b"doc")
    assert cache.get("a") == b"doc"
    probe.value += 1
    clock.now += 1.0
    assert cache.get("a") is None
