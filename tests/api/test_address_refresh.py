"""An address document past its bound is answered at once, stale, while one refresh computes it again."""

from __future__ import annotations

import threading
import time
from typing import Any

from fundtrail.api.routers import chain as chain_router


class Clock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


def test_a_stale_document_is_served_while_one_refresh_runs(agency, world, monkeypatch) -> None:
    cache = agency.app.state.fundtrail.address_cache
    clock = Clock()
    monkeypatch.setattr(cache, "_clock", clock)
    url, headers = f"/api/chains/btc/addresses/{world.G}", agency.headers("ana")
    first = agency.client.get(url, headers=headers)
    assert first.status_code == 200, first.text

    real = chain_router.address_document
    release, calls = threading.Event(), []

    def slow_changed(*args: Any) -> dict[str, Any]:  # the chain moved on meanwhile: another document
        calls.append(args)
        release.wait(timeout=30)
        return {**real(*args), "received": "1"}

    monkeypatch.setattr(chain_router, "address_document", slow_changed)
    clock.now += cache.seconds + 1  # past the bound, within the stale horizon
    for _ in range(5):  # answered at once with the old document; one refresh only
        again = agency.client.get(url, headers=headers)
        assert again.status_code == 200 and again.json() == first.json()
    assert len(calls) == 1
    release.set()
    deadline = time.monotonic() + 10
    while agency.client.get(url, headers=headers).json()["received"] != "1":
        assert time.monotonic() < deadline, "the refresh never replaced the document"
        time.sleep(0.05)
    assert len(calls) == 1
