"""Case reads in snapshots on both case database backends (SQLite, PostgreSQL when configured): reads
side by side, their records group-committed, kept documents rebuilt after any change."""

from __future__ import annotations

import asyncio
import json
import threading

from sqlalchemy import create_engine, func, select, text

from fundtrail.api.casework import CaseCall, CaseWork, principal_of
from fundtrail.audit import log as audit_log
from fundtrail.audit.models import AuditRecord, AuditTreeHead
from fundtrail.cases import cases as service
from fundtrail.cases import generation
from fundtrail.cases.context import operation
from fundtrail.cases.db import CaseDB
from fundtrail.cases.models import User


def _counts(db: CaseDB) -> tuple[int, int]:
    with db.reading() as session:
        return (int(session.execute(select(func.count()).select_from(AuditRecord)).scalar_one()),
                int(session.execute(select(func.count()).select_from(AuditTreeHead)).scalar_one()))


def _setup(db: CaseDB) -> tuple[CaseWork, str]:
    with operation(db, "ivo") as ctx:
        number = service.open_case(ctx, "Ransomware payments", severity="high").number
    return CaseWork(db), number


def test_reads_in_snapshots_from_many_threads_on_each_backend(agency_db: CaseDB) -> None:
    work, number = _setup(agency_db)
    with agency_db.session() as session:
        ivo = principal_of(session.execute(select(User).where(User.username == "ivo")).scalar_one())
    call = CaseCall("list_subjects", "GET", f"/api/cases/{number}/subjects", "token", "review", number)
    records, heads = _counts(agency_db)
    titles: list[str] = []

    def reader() -> None:
        for _ in range(5):
            doc = work.read(ivo, call, lambda ctx: work.case_document(ctx, service.show_case(ctx, number)))
            titles.append(doc["title"])

    try:
        threads = [threading.Thread(target=reader) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        work.close()
    assert titles == ["Ransomware payments"] * 40
    new_records, new_heads = _counts(agency_db)
    assert new_records - records == 80
    assert 1 <= new_heads - heads < 80
    check = audit_log.verify_database(agency_db)
    assert check.intact, check.problems


def test_the_case_read_sees_every_change_and_not_its_own_records(agency_db: CaseDB) -> None:
    work, number = _setup(agency_db)
    with agency_db.session() as session:
        ivo = principal_of(session.execute(select(User).where(User.username == "ivo")).scalar_one())
    call = CaseCall("get_case", "GET", f"/api/cases/{number}", "token", None, number)

    def read() -> dict:
        return json.loads(asyncio.run(work.read_case(ivo, call, number, None)))

    def current() -> int | None:
        with agency_db.reading() as session:
            return generation.current(session)

    try:
        assert read()["title"] == "Ransomware payments"
        before = current()
        assert read()["title"] == "Ransomware payments"
        assert current() == before  # audit records only
        with operation(agency_db, "ivo") as ctx:
            service.update_case(ctx, number, title="Retitled by a change", reason="retitle")
        assert current() == (before or 0) + 1
        assert read()["title"] == "Retitled by a change"
        # a change outside FundTrail's own code paths, on another engine (as another process would)
        other = create_engine(agency_db.engine.url.render_as_string(hide_password=False))
        try:
            from fundtrail.cases.generation import track

            track(other)
            with other.begin() as connection:
                connection.execute(text("UPDATE cases SET title = 'Retitled elsewhere' WHERE number = :n"),
                                   {"n": number})
        finally:
            other.dispose()
        assert read()["title"] == "Retitled elsewhere"
    finally:
        work.close()
    check = audit_log.verify_database(agency_db)
    assert check.intact, check.problems


def test_reads_that_miss_at_once_share_one_load(agency_db: CaseDB, monkeypatch) -> None:
    work, number = _setup(agency_db)
    with agency_db.session() as session:
        ivo = principal_of(session.execute(select(User).where(User.username == "ivo")).scalar_one())
    call = CaseCall("get_case", "GET", f"/api/cases/{number}", "token", None, number)
    loads: list[str] = []
    load = work._load_facts

    def counted(username: str, case: str):
        loads.append(case)
        return load(username, case)

    monkeypatch.setattr(work, "_load_facts", counted)

    async def many() -> list[bytes]:
        return await asyncio.gather(*(work.read_case(ivo, call, number, None) for _ in range(20)))

    try:
        records, _ = _counts(agency_db)
        bodies = asyncio.run(many())
    finally:
        work.close()
    assert len(set(bodies)) == 1 and json.loads(bodies[0])["number"] == number
    assert loads == [number]  # one snapshot for the twenty reads
    assert _counts(agency_db)[0] == records + 40
