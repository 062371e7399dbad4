"""Token checks cached in memory: no SQL (and no write lock) for a token checked within the bound, a
revocation made elsewhere refused once the bound has passed, ``last_used_at`` written at most once a
minute, one query for many requests or many tokens."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

BOUND = 5.0


def cache_settings(**changes: Any) -> Any:
    """Cheap password hashing, tokens trusted for :data:`BOUND` seconds."""
    from fundtrail.api.state import ApiSettings

    return ApiSettings(password_time_cost=1, password_memory_kib=1024, **changes)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine runs inside the block (BEGIN IMMEDIATE included)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()).upper())

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def writes(seen: list[str]) -> list[str]:
    """The statements that write or take SQLite's write lock."""
    kinds = ("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE", "BEGIN EXCLUSIVE")
    return [s for s in seen if s.startswith(kinds)]


def token_reads(seen: list[str]) -> list[str]:
    return [s for s in seen if s.startswith("SELECT") and "API_TOKENS" in s]


@pytest.fixture()
def worker(agency) -> Iterator[Any]:
    """Makes authentication services as separate worker processes have them: each on its own case
    database connection, with a hand-moved clock and no background thread."""
    from fundtrail.api.auth import AuthService
    from fundtrail.api.casework import CaseWork

    made: list[tuple[Any, Any]] = []

    def make(clock: Clock, **changes: Any) -> AuthService:
        cases = CaseWork.open(agency.home)
        auth = AuthService(cases, cache_settings(token_cache_seconds=BOUND, **changes), clock=clock,
                           background=False)
        made.append((auth, cases))
        return auth

    yield make
    for auth, cases in made:
        auth.close()
        cases.close()


def test_cached_token_runs_no_sql_and_the_check_takes_no_write_lock(worker) -> None:
    clock = Clock()
    auth = worker(clock)
    token, info = auth.issue("ana", name="cache", lifetime=timedelta(days=1))
    with statements() as first:
        principal = auth.principal_for_token(token)
    assert principal is not None and principal.username == "ana" and principal.token_id == info["id"]
    assert len(token_reads(first)) == 1
    assert writes(first) == []  # the check reads without the write lock; last_used_at waits
    for step in (0.0, 1.0, 2.0, BOUND - 0.01 - 3.0):
        clock.advance(step)
        with statements() as cached:
            again = auth.principal_for_token(token)
            also = auth.cached_principal(token, via="session")
        assert cached == []
        assert again == principal and also is not None and also.via == "session"


def test_unknown_token_is_refused_without_writing(worker) -> None:
    auth = worker(Clock())
    with statements() as seen:
        assert auth.principal_for_token("ftk_not-a-token") is None
        assert auth.principal_for_token("ftk_not-a-token") is None
    assert len(token_reads(seen)) == 2  # never cached
    assert writes(seen) == []


def test_revocation_by_another_worker_takes_effect_within_the_bound(worker) -> None:
    clock = Clock()
    a, b = worker(clock), worker(clock)
    token, info = a.issue("ana", name="revoked elsewhere", lifetime=timedelta(days=1))
    admin = a.cases.user("admin")
    assert a.principal_for_token(token) is not None and b.principal_for_token(token) is not None
    a.revoke(admin, info["id"])
    assert a.principal_for_token(token) is None  # the worker that revoked: at once
    clock.advance(BOUND - 0.01)
    assert b.principal_for_token(token) is not None  # the other: trusted until the bound ...
    clock.advance(0.01)
    assert b.principal_for_token(token) is None  # ... and refused from then on
    clock.advance(BOUND)
    assert b.principal_for_token(token) is None


def test_refresh_ahead_renews_busy_tokens_in_one_query_and_drops_revoked_ones(worker) -> None:
    clock = Clock()
    a, b = worker(clock), worker(clock)
    tokens = [b.issue(u, name="busy", lifetime=timedelta(days=1)) for u in ("ana", "ivo", "sue")]
    idle, _ = b.issue("ana", name="idle", lifetime=timedelta(days=1))
    for token, _info in tokens:
        assert b.principal_for_token(token) is not None
    assert b.principal_for_token(idle) is not None
    b.flush_last_used()
    a.revoke(a.cases.user("admin"), tokens[2][1]["id"])
    clock.advance(BOUND / 2)
    for token, _info in tokens:  # used past half the bound: still from memory, and due for a check
        assert b.cached_principal(token) is not None
    with statements() as seen:
        assert b.refresh_due() == 3  # the idle token is left to expire at the bound
    assert len(token_reads(seen)) == 1 and writes(seen) == []
    assert b.cached_principal(tokens[2][0]) is None  # revoked: dropped by the check
    clock.advance(BOUND / 2 + 1)  # past the bound of the first checks
    with statements() as seen:
        assert b.principal_for_token(tokens[0][0]) is not None
        assert b.principal_for_token(tokens[1][0]) is not None
    assert seen == []  # renewed by the background check
    assert b.cached_principal(idle) is None


def test_last_used_is_written_at_most_once_a_minute_per_token(worker, agency) -> None:
    from fundtrail.api.models import ApiToken

    clock = Clock()
    auth = worker(clock)
    token, info = auth.issue("ana", name="used", lifetime=timedelta(days=1))

    def last_used() -> Any:
        with agency.db.session() as session:
            return session.scalar(select(ApiToken.last_used_at).where(ApiToken.id == info["id"]))

    assert last_used() is None
    with statements() as seen:
        for _ in range(5):  # five checks against the database within a minute
            assert auth.principal_for_token(token) is not None
            clock.advance(BOUND)
        auth.flush_last_used()
    assert len([s for s in seen if s.startswith("UPDATE API_TOKENS")]) == 1
    first = last_used()
    assert first is not None
    clock.advance(60)
    assert auth.principal_for_token(token) is not None
    auth.flush_last_used()
    assert last_used() > first


def test_many_requests_with_one_new_token_read_it_once(worker) -> None:
    auth = worker(Clock())
    token, _ = auth.issue("ana", name="burst", lifetime=timedelta(days=1))
    barrier = threading.Barrier(16)
    results: list[Any] = []

    def request() -> None:
        barrier.wait()
        results.append(auth.principal_for_token(token))

    with statements() as seen:
        threads = [threading.Thread(target=request) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 16 and all(r is not None and r.username == "ana" for r in results)
    assert len(token_reads(seen)) == 1


def test_background_check_writes_last_use_off_the_request(agency) -> None:
    from fundtrail.api.auth import AuthService
    from fundtrail.api.casework import CaseWork
    from fundtrail.api.models import ApiToken

    cases = CaseWork.open(agency.home)
    auth = AuthService(cases, cache_settings(token_cache_seconds=BOUND))
    try:
        token, info = auth.issue("ana", name="background", lifetime=timedelta(days=1))
        assert auth.principal_for_token(token) is not None
        for _ in range(200):  # the background thread writes it; wait for it (at most 10 s)
            with agency.db.session() as session:
                if session.scalar(select(ApiToken.last_used_at).where(ApiToken.id == info["id"])):
                    break
            threading.Event().wait(0.05)
        else:
            raise AssertionError("last_used_at was not written")
    finally:
        auth.close()
        cases.close()


def test_revocation_through_the_cli_reaches_the_api_within_the_bound(agency, cli) -> None:
    """The served app (its own connection) and the operator's ``fundtrail token revoke``."""
    from fastapi.testclient import TestClient

    from fundtrail.api.app import create_app
    from fundtrail.api.auth import AuthService
    from fundtrail.api.casework import CaseWork

    clock = Clock()
    settings = cache_settings(token_cache_seconds=BOUND)
    cases = CaseWork.open(agency.home)
    app = create_app(agency.home, settings, cases=cases,
                     auth=AuthService(cases, settings, clock=clock, background=False))
    token, info = app.state.fundtrail.auth.issue("ana", name="api", lifetime=timedelta(days=1))
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        assert client.get("/api/auth/me", headers=headers).status_code == 200
        assert cli("token", "revoke", info["id"], "--home", str(agency.home)).exit_code == 0
        clock.advance(BOUND - 0.5)
        assert client.get("/api/auth/me", headers=headers).status_code == 200
        clock.advance(0.5)
        answer = client.get("/api/auth/me", headers=headers)
        assert answer.status_code == 401, answer.text
