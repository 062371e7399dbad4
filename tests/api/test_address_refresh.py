"""After the chain store changed, concurrent look-ups of one address share one computation, and none of
them is answered the document of before."""

from __future__ import annotations

import threading
from typing import Any

from fundtrail.api.routers import chain as chain_router


class Probe:
    """A store generation the test moves."""

    def __init__(self) -> None:
        self.value = 1

    def __call__(self) -> int:
        return self.value


def test_concurrent_look_ups_after_a_change_share_one_computation(agency, world, monkeypatch) -> None:
    cache = agency.app.state.fundtrail.address_cache
    probe = Probe()
    cache.watch(probe)
    url, headers = f"/api/chains/btc/addresses/{world.G}", agency.headers("ana")
    first = agency.client.get(url, headers=headers)
    assert first.status_code == 200, first.text

    real = chain_router.address_document
    release, calls = threading.Event(), []

    def slow_changed(*args: Any) -> dict[str, Any]:  # the chain moved on: another document
        calls.append(args)
        release.wait(timeout=30)
        return {**real(*args), "received": "1"}

    monkeypatch.setattr(chain_router, "address_document", slow_changed)
    probe.value = 2
    monkeypatch.setattr(cache, "seconds", 0.0)
    answers: list[Any] = []

    def one() -> None:
        answers.append(agency.client.get(url, headers=headers))

    threads = [threading.Thread(target=one) for _ in range(5)]
    for thread in threads:
        thread.start()
    while not calls:  # the first look-up computes; the others find its computation and wait for it
        threading.Event().wait(0.01)
    threading.Event().wait(0.2)
    release.set()
    for thread in threads:
        thread.join(timeout=60)
    assert [a.status_code for a in answers] == [200] * 5
    assert {a.json()["received"] for a in answers} == {"1"}  # nobody got the document of before
    assert len(calls) == 1
