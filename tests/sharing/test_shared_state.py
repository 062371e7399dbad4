"""PSI sessions and TAXII statuses kept in a folder the workers of a server share: two store objects on one
folder stand for two workers; two apps on one home and one shared folder stand for a server's workers."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fundtrail.errors import ConflictError, IntegrityError
from fundtrail.sharing.partners import PartnerClient
from fundtrail.sharing.shared_state import (
    MAX_SESSION_BYTES,
    MAX_STATUS_BYTES,
    MemoryStatuses,
    SharedPsiSessions,
    SharedStatuses,
)

from .conftest import D1, Agency, Q, TestClient, agree, settings

PARTNER, OTHER = "a1b2c3d4e5f60718", "0f0e0d0c0b0a0908"


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def workers(tmp_path: Path, clock: Clock) -> tuple[SharedPsiSessions, SharedPsiSessions]:
    """Two workers' session stores on one folder."""
    return (SharedPsiSessions(tmp_path, ttl=600, clock=clock),
            SharedPsiSessions(tmp_path, ttl=600, clock=clock))


def _only_file(folder: Path) -> Path:
    (path,) = folder.iterdir()
    return path


def test_a_session_opened_by_one_worker_is_closed_by_another_once(workers, tmp_path: Path) -> None:
    one, other = workers
    session = one.open(PARTNER, 3)
    path = _only_file(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600 and session not in path.name
    other.close(session, PARTNER, 3)
    assert list(tmp_path.iterdir()) == []
    for store in (one, other):  # used up, in every worker
        with pytest.raises(IntegrityError, match="no open deconfliction query"):
            store.close(session, PARTNER, 1)


def test_a_session_is_claimed_by_exactly_one_of_racing_workers(tmp_path: Path) -> None:
    stores = [SharedPsiSessions(tmp_path) for _ in range(8)]
    for _ in range(20):
        session = stores[0].open(PARTNER, 1)
        won: list[bool] = []
        start = threading.Barrier(len(stores))

        def close(store: SharedPsiSessions, session: str = session, won: list[bool] = won,
                  start: threading.Barrier = start) -> None:
            start.wait()
            try:
                store.close(session, PARTNER, 1)
                won.append(True)
            except IntegrityError:
                won.append(False)

        threads = [threading.Thread(target=close, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(won) == [False] * (len(stores) - 1) + [True]
    assert list(tmp_path.iterdir()) == []


def test_another_partner_or_more_items_are_refused(workers) -> None:
    one, other = workers
    session = one.open(PARTNER, 2)
    with pytest.raises(IntegrityError, match="no open deconfliction query"):
        other.close(session, OTHER, 1)
    with pytest.raises(IntegrityError, match="no open deconfliction query"):  # the attempt used it up
        other.close(session, PARTNER, 1)
    session = one.open(PARTNER, 2)
    with pytest.raises(IntegrityError, match="3 contacts asked for a query of 2 items"):
        other.close(session, PARTNER, 3)


def test_a_session_expires(workers, clock: Clock) -> None:
    one, other = workers
    early, late = one.open(PARTNER, 1), one.open(PARTNER, 1)
    clock.now += 599
    other.close(early, PARTNER, 1)
    clock.now += 1
    with pytest.raises(IntegrityError, match="no open deconfliction query"):
        other.close(late, PARTNER, 1)


@pytest.mark.parametrize("contents", [
    b"not json",
    b"[]",
    json.dumps({"partner": PARTNER, "items": 2}).encode(),
    json.dumps({"partner": PARTNER, "items": "2", "created": 0}).encode(),
    json.dumps({"partner": PARTNER, "items": True, "created": 0}).encode(),
    json.dumps({"partner": PARTNER, "items": 0, "created": 0}).encode(),
    json.dumps({"partner": 7, "items": 2, "created": 0}).encode(),
    json.dumps({"partner": PARTNER, "items": 2, "created": "now"}).encode(),
    json.dumps({"partner": PARTNER, "items": 2, "created": 0, "extra": 1}).encode(),
])
def test_a_session_file_that_is_not_one_is_refused(workers, tmp_path: Path, clock: Clock,
                                                   contents: bytes) -> None:
    one, other = workers
    session = one.open(PARTNER, 2)
    path = _only_file(tmp_path)
    path.write_bytes(contents.replace(b'"created": 0', f'"created": {clock.now}'.encode()))
    with pytest.raises(IntegrityError, match="no open deconfliction query"):
        other.close(session, PARTNER, 1)
    assert list(tmp_path.iterdir()) == []


def test_a_session_file_too_large_or_not_a_file_is_refused(workers, tmp_path: Path) -> None:
    one, other = workers
    session = one.open(PARTNER, 2)
    path = _only_file(tmp_path)
    record = json.loads(path.read_bytes())
    padded = json.dumps(record) + " " * MAX_SESSION_BYTES
    path.write_text(padded)
    with pytest.raises(IntegrityError, match="no open deconfliction query"):
        other.close(session, PARTNER, 1)

    session = one.open(PARTNER, 2)
    path = _only_file(tmp_path)
    target = tmp_path.parent / "elsewhere.json"
    target.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(target)
    with pytest.raises(IntegrityError, match="no open deconfliction query"):
        other.close(session, PARTNER, 1)
    assert target.exists()


def test_open_sessions_are_bounded_and_expired_ones_pruned(tmp_path: Path, clock: Clock) -> None:
    one = SharedPsiSessions(tmp_path, ttl=600, max_open=3, clock=clock)
    other = SharedPsiSessions(tmp_path, ttl=600, max_open=3, clock=clock)
    first = one.open(PARTNER, 1)
    one.open(PARTNER, 1)
    other.open(PARTNER, 1)
    with pytest.raises(ConflictError, match="3 deconfliction queries are open"):
        one.open(PARTNER, 1)
    other.close(first, PARTNER, 1)  # one fewer open
    one.open(PARTNER, 1)
    clock.now = time.time() + 601  # every file is older than the sessions last
    fresh = other.open(PARTNER, 1)
    assert len(list(tmp_path.iterdir())) == 1
    one.close(fresh, PARTNER, 1)


def test_a_status_put_by_one_worker_is_read_by_another(tmp_path: Path, clock: Clock) -> None:
    one, other = (SharedStatuses(tmp_path, clock=clock) for _ in range(2))
    status = {"id": str(uuid.uuid4()), "status": "complete", "total_count": 1, "successes": [{"id": "x"}]}
    one.put(status["id"], {"partner": PARTNER, "status": status})
    assert other.get(status["id"]) == {"partner": PARTNER, "status": status}
    assert other.get(str(uuid.uuid4())) is None and other.get("../../etc/passwd") is None
    assert _only_file(tmp_path).stat().st_mode & 0o777 == 0o600
    clock.now += 24 * 3600 - 1
    assert other.get(status["id"]) is not None
    clock.now += 1  # kept 24 hours
    assert other.get(status["id"]) is None


@pytest.mark.parametrize("contents", [
    b"{",
    b'"text"',
    json.dumps({"partner": PARTNER, "status": "complete", "saved": 0}).encode(),
    json.dumps({"partner": None, "status": {}, "saved": 0}).encode(),
    json.dumps({"partner": PARTNER, "status": {}}).encode(),
    json.dumps({"partner": PARTNER, "status": {}, "saved": 0, "x": 1}).encode(),
    json.dumps({"partner": PARTNER, "status": {"pad": "x" * MAX_STATUS_BYTES}, "saved": 0}).encode(),
])
def test_a_status_file_that_is_not_one_is_refused(tmp_path: Path, clock: Clock, contents: bytes) -> None:
    one, other = (SharedStatuses(tmp_path, clock=clock) for _ in range(2))
    one.put("s1", {"partner": PARTNER, "status": {"id": "s1"}})
    _only_file(tmp_path).write_bytes(contents.replace(b'"saved": 0', f'"saved": {clock.now}'.encode()))
    assert other.get("s1") is None


def test_statuses_are_bounded_and_a_large_one_keeps_its_counts(tmp_path: Path, clock: Clock) -> None:
    store = SharedStatuses(tmp_path, max_statuses=3, clock=clock)
    for n in range(5):
        before = set(tmp_path.iterdir())
        store.put(f"s{n}", {"partner": PARTNER, "status": {"id": f"s{n}"}})
        (written,) = set(tmp_path.iterdir()) - before
        os.utime(written, (clock.now + n, clock.now + n))  # written in this order, a second apart
    assert len(list(tmp_path.iterdir())) == 3
    assert [store.get(f"s{n}") is not None for n in range(5)] == [False, False, True, True, True]
    successes = [{"id": f"indicator--{uuid.uuid4()}", "version": "2026-01-01T00:00:00Z"} for _ in range(5000)]
    big = {"id": "big", "status": "complete", "success_count": 5000, "successes": successes}
    store.put("big", {"partner": PARTNER, "status": big})
    kept = store.get("big")
    assert kept is not None and kept["status"] == {"id": "big", "status": "complete", "success_count": 5000}


def test_memory_statuses_keep_the_newest() -> None:
    store = MemoryStatuses(max_statuses=2)
    for n in range(3):
        store.put(f"s{n}", {"partner": PARTNER, "status": {"id": f"s{n}"}})
    assert store.get("s0") is None and store.get("s2") == {"partner": PARTNER, "status": {"id": "s2"}}


# ------------------------------------------------------------------------------------------------
# Two apps on one home and one shared folder: the workers of one server


class EachInTurn:
    """An HTTP client sending each request to the next of several apps (a new connection each time)."""

    def __init__(self, clients: list[TestClient]) -> None:
        self.clients = clients
        self.base_url = clients[0].base_url
        self.sent = 0

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        client = self.clients[self.sent % len(self.clients)]
        self.sent += 1
        return client.request(method, url, **kwargs)

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture()
def a_workers(pair, tmp_path: Path) -> Iterator[tuple[Any, Any, list[Any]]]:
    """Agency A served by two apps sharing one folder, as ``fundtrail serve --workers 2`` does."""
    from fundtrail.api.app import create_app

    a, b = pair
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    apps = [create_app(a.home, settings().model_copy(update={"shared_folder": shared})) for _ in range(2)]
    yield a, b, apps
    for app in apps:
        app.state.fundtrail.close()


def _in_turn(apps: list[Any]) -> EachInTurn:
    return EachInTurn([TestClient(app, base_url="http://a.test") for app in apps])


def test_deconfliction_whose_calls_reach_two_workers(a_workers) -> None:
    from fundtrail.sharing.psi import deconflict, start_query

    a, b, apps = a_workers
    with b.op("ivo") as ctx:  # B asks A: A's ransom case holds D1 (and R1, R2, D2)
        found = deconflict(ctx, b.cases["exchange"], "sc-ee",
                           clients=lambda row, key: PartnerClient(_in_turn(apps), key, row.partner_name))
    assert [(m["chain"], m["address"]) for m in found["matches"]] == [("btc", D1)]

    client = PartnerClient(_in_turn(apps), b.key, a.name)
    query = start_query([("btc", D1), ("btc", Q)])
    answer = client.call("POST", "/psi", {"request": query.request})  # opened by the first app,
    items = [{"chain": "btc", "address": D1}]
    assert client.call("POST", "/psi/contacts", {"session": answer["session"], "items": items})["matches"]
    # used in the second: the first, which opened it, has no open query either
    with pytest.raises(Exception, match="no open deconfliction query"):
        client.call("POST", "/psi/contacts", {"session": answer["session"], "items": items})


def test_a_taxii_status_is_read_at_every_worker_by_its_partner_only(a_workers, tmp_path: Path) -> None:
    from fundtrail.sharing.signing import SignedAuth
    from fundtrail.sharing.taxii_server import collection_id

    a, b, apps = a_workers
    third = Agency(tmp_path / "third", "Police nationale", "FR")
    agree(a, third, "ee-fr")
    inbox = f"/taxii2/fundtrail/collections/{collection_id('inbox', 'ee-sc')}/objects/"
    envelope = {"objects": [{"type": "report", "id": f"report--{uuid.uuid4()}"}]}
    first, second = (TestClient(app, base_url="http://a.test") for app in apps)
    posted = first.post(inbox, json=envelope, auth=SignedAuth(b.key))
    assert posted.status_code == 202, posted.text
    status = posted.json()
    assert status["failure_count"] == 1  # not a package: refused whole, and the status says so
    where = f"/taxii2/fundtrail/status/{status['id']}/"
    for client in (second, first, second):
        answer = client.get(where, auth=SignedAuth(b.key))
        assert answer.status_code == 200 and answer.json() == status
    assert second.get(where, auth=SignedAuth(third.key)).status_code == 404  # another partner's
    assert first.get(f"/taxii2/fundtrail/collections/{collection_id('inbox', 'ee-fr')}/",
                     auth=SignedAuth(third.key)).status_code == 200  # whose calls are otherwise accepted
