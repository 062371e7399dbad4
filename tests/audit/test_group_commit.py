"""The group commit of audit records: many waiting appends in one transaction with one signed head, the
chain exactly as appends one by one would leave it, and a failed group failing every waiter."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text

from fundtrail.audit import log as audit_log
from fundtrail.audit.batch import GroupCommit
from fundtrail.audit.models import AuditRecord, AuditTreeHead
from fundtrail.cases.context import operation
from fundtrail.cases.db import CaseDB
from fundtrail.errors import IntegrityError


def _counts(db: CaseDB) -> tuple[int, int]:
    with db.reading() as session:
        records = session.execute(select(func.count()).select_from(AuditRecord)).scalar_one()
        heads = session.execute(select(func.count()).select_from(AuditTreeHead)).scalar_one()
        return int(records), int(heads)


def _entries(n: int) -> list[audit_log.Entry]:
    return [audit_log.Entry("ana", "case.read", "case", f"EE-2026-{n:04d}", case_number=f"EE-2026-{n:04d}",
                            reason="review", details={"thread": n}),
            audit_log.Entry("ana", "api.get_case", "api", f"/api/cases/EE-2026-{n:04d}",
                            case_number=f"EE-2026-{n:04d}", details={"method": "GET", "thread": n})]


def _until(condition, what: str) -> None:
    for _ in range(6000):
        if condition():
            return
        time.sleep(0.005)
    raise AssertionError(f"gave up waiting: {what}")


class Gate:
    """A writer guard that holds the writer until opened, and says when the writer is waiting at it."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.waiting = threading.Event()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        self.waiting.set()
        assert self.opened.wait(60)
        yield


def test_concurrent_appends_are_written_once_each_in_one_group_with_one_head(agency_db: CaseDB) -> None:
    before_records, before_heads = _counts(agency_db)
    gate = Gate()
    writer = GroupCommit(agency_db, gate)
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            writer.commit(_entries(n))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    try:
        first = threading.Thread(target=one, args=(0,))
        first.start()
        _until(gate.waiting.is_set, "the writer holding the first group")
        rest = [threading.Thread(target=one, args=(n,)) for n in range(1, 40)]
        for t in rest:
            t.start()
        _until(lambda: writer._queue.qsize() == len(rest), "every other append queued")
        gate.opened.set()
        for t in [first, *rest]:
            t.join(60)
    finally:
        writer.close()
    assert errors == []
    records, heads = _counts(agency_db)
    assert records - before_records == 80
    assert heads - before_heads == 2  # the first append alone, then the 39 that queued behind it, together
    assert writer.stats.groups == 2 and writer.stats.records == 80
    with agency_db.reading() as session:
        rows = session.execute(select(AuditRecord).where(AuditRecord.seq > before_records)
                               .order_by(AuditRecord.seq)).scalars().all()
        by_thread: dict[str, list[str]] = {}
        for r in rows:
            by_thread.setdefault(r.case_number or "", []).append(r.action)
        # each append's records exactly once, in its order, next to each other
        assert sorted(by_thread) == sorted(f"EE-2026-{n:04d}" for n in range(40))
        assert all(actions == ["case.read", "api.get_case"] for actions in by_thread.values())
        assert all(rows[i].case_number == rows[i + 1].case_number for i in range(0, 80, 2))
        assert rows[0].reason == "review" and rows[0].actor == "ana" and '"thread"' in rows[0].details
    check = audit_log.verify_database(agency_db)
    assert check.intact, check.problems
    assert check.records == records and check.heads == heads


def test_a_group_and_appends_one_by_one_leave_the_same_chain(agency_db: CaseDB) -> None:
    """append_many is append, many times: same fields, same hashes, same tree."""
    at = datetime(2026, 12, 7, 1, 2, 3, 456789, tzinfo=UTC)
    entries = [replace(e, at=at) for e in _entries(1) + _entries(2)]
    before, _ = _counts(agency_db)
    wanted = select(AuditRecord.hash).where(AuditRecord.seq > before).order_by(AuditRecord.seq)
    with operation(agency_db, "ana") as ctx:
        audit_log.append_many(ctx.session, entries, key=ctx.key)
        grouped = ctx.session.execute(wanted).scalars().all()
        ctx.session.rollback()
    with operation(agency_db, "ana") as ctx:
        for e in entries:
            audit_log.append(ctx.session, e.actor, e.action, e.object_type, e.object_id,
                             case_number=e.case_number, reason=e.reason, details=e.details, at=e.at,
                             key=ctx.key)
        one_by_one = ctx.session.execute(wanted).scalars().all()
    assert len(grouped) == 4 and grouped == one_by_one
    check = audit_log.verify_database(agency_db)
    assert check.intact, check.problems


def test_appends_on_a_tampered_log_fail_every_waiter_and_write_nothing(agency_db: CaseDB) -> None:
    writer = GroupCommit(agency_db)
    try:
        writer.commit(_entries(1))
        with agency_db.transaction() as session:
            session.execute(text("UPDATE audit_records SET reason = 'changed' WHERE seq = 1"))
            newest = session.execute(select(func.max(AuditTreeHead.id))).scalar_one()
            session.execute(text("DELETE FROM audit_tree_heads WHERE id = :id"), {"id": newest})
        records, heads = _counts(agency_db)
        with pytest.raises(IntegrityError, match="signed tree head"):
            writer.commit(_entries(2))
        with pytest.raises(IntegrityError):  # the writer goes on, and goes on refusing
            writer.commit(_entries(3))
        assert _counts(agency_db) == (records, heads)
        assert writer.stats.failed == 2
    finally:
        writer.close()


def test_a_record_that_cannot_be_written_fails_its_append_alone(agency_db: CaseDB) -> None:
    writer = GroupCommit(agency_db)
    try:
        records, _ = _counts(agency_db)
        with pytest.raises(TypeError):
            writer.commit([audit_log.Entry("ana", "case.read", "case", details={"bad": object()})])
        writer.commit(_entries(1))
        assert _counts(agency_db)[0] == records + 2
    finally:
        writer.close()


def test_a_closed_writer_starts_again_on_the_next_commit(agency_db: CaseDB) -> None:
    """An app's state is closed at shutdown and may serve again (its engine reconnects): so does this."""
    writer = GroupCommit(agency_db)
    records, _ = _counts(agency_db)
    writer.commit(_entries(1))
    writer.close()
    writer.commit(_entries(2))
    writer.close()
    assert _counts(agency_db)[0] == records + 4


def test_records_are_made_ready_before_the_writer_takes_the_head(agency_db: CaseDB, monkeypatch) -> None:
    """Encoding a read's details and times happens in the read's own thread: the writer, holding the
    database's one write lock, only chains, hashes and inserts."""
    gate = Gate()
    writer = GroupCommit(agency_db, gate)
    encoded: list[str] = []
    real = audit_log.details_text

    def watched(details):
        encoded.append(threading.current_thread().name)
        return real(details)

    monkeypatch.setattr(audit_log, "details_text", watched)
    records, _ = _counts(agency_db)
    try:
        gate.opened.set()
        writer.commit(_entries(1))
    finally:
        writer.close()
    assert encoded == [threading.current_thread().name] * 2
    assert _counts(agency_db)[0] == records + 2
    check = audit_log.verify_database(agency_db)
    assert check.intact, check.problems


def test_a_group_wakes_the_coroutines_of_one_event_loop_at_once(agency_db: CaseDB) -> None:
    """commit_async: the writer wakes an event loop once per group, not once per waiting coroutine."""
    import asyncio

    gate = Gate()
    writer = GroupCommit(agency_db, gate)
    wake_ups = 0

    async def main() -> list[bool]:
        nonlocal wake_ups
        loop = asyncio.get_running_loop()
        real = loop.call_soon_threadsafe

        def counted(*args, **kwargs):
            nonlocal wake_ups
            wake_ups += 1
            return real(*args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]
        first = asyncio.ensure_future(writer.commit_async(_entries(0)))
        while not gate.waiting.is_set():
            await asyncio.sleep(0.005)
        rest = [asyncio.ensure_future(writer.commit_async(_entries(n))) for n in range(1, 21)]
        while writer._queue.qsize() < len(rest):
            await asyncio.sleep(0.005)
        gate.opened.set()
        return list(await asyncio.gather(first, *rest))

    records, heads = _counts(agency_db)
    try:
        written = asyncio.run(main())
    finally:
        writer.close()
    assert written == [True] * 21
    assert _counts(agency_db) == (records + 42, heads + 2)
    assert wake_ups == 2  # the first read's group, then the twenty queued behind it
