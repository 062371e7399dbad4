"""The case database: created by its migrations, models and migrations agree, exact amounts, optimistic
locking with two real sessions; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, select, text

from fundtrail.cases import cases
from fundtrail.cases.context import operation
from fundtrail.cases.db import CaseDB, current_revision, downgrade, head_revision, make_engine, upgrade
from fundtrail.cases.models import Base, Case, LedgerEntry, User
from fundtrail.errors import ConflictError, InputError


def test_migrations_create_the_schema_and_go_back_down(case_db: CaseDB) -> None:
    tables = set(inspect(case_db.engine).get_table_names())
    assert {
        "cases",
        "subjects",
        "evidence_items",
        "custody_events",
        "legal_requests",
        "ledger_entries",
        "audit_records",
        "audit_head",
        "users",
    } <= tables
    assert current_revision(case_db.engine) == head_revision()
    with case_db.engine.connect() as conn:
        assert conn.execute(text("SELECT seq, hash FROM audit_head")).one() == (0, "0" * 64)
    downgrade(case_db.engine, "base")
    assert "cases" not in inspect(case_db.engine).get_table_names()
    upgrade(case_db.engine)
    assert current_revision(case_db.engine) == head_revision()


def test_models_and_migrations_agree(case_db: CaseDB) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    # this layer's tables and the audit layer's (their migrations are in this chain); other layers keep
    # theirs in the same database, with their own migrations
    owners = ("fundtrail.cases.models", "fundtrail.audit.models")
    mine = {m.local_table.name for m in Base.registry.mappers if m.class_.__module__ in owners}

    def include(obj, name, type_, reflected, compare_to) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in mine

    with case_db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include, "compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    assert len(mine) >= 15


def test_a_database_behind_the_code_is_not_upgraded_silently(backend_url: str, home) -> None:
    engine = make_engine(backend_url)
    upgrade(engine, "0001")
    engine.dispose()
    if backend_url.startswith("sqlite"):
        CaseDB.open(home, backend_url).close()  # the embedded file is brought up to date on first use
    else:
        with pytest.raises(InputError, match="run `fundtrail db upgrade`"):
            CaseDB.open(home, backend_url)


def test_amounts_are_exact_beyond_64_bits(agency_db: CaseDB) -> None:
    with operation(agency_db, "ivo") as ctx:
        number = cases.open_case(ctx, "Wei").number
        from fundtrail.cases.ledger import record_entry

        record_entry(ctx, number, "seized", "eth", 123_456_789_012_345_678_901_234_567_890, court_order="C-1")
    with agency_db.engine.connect() as conn:
        stored = conn.execute(text("SELECT amount FROM ledger_entries")).scalar_one()
    assert stored == "123456789012345678901234567890"
    with agency_db.transaction() as s:
        assert s.execute(select(LedgerEntry.amount)).scalar_one() == 123_456_789_012_345_678_901_234_567_890


def test_two_sessions_editing_one_case_the_second_gets_a_conflict(agency_db: CaseDB) -> None:
    with operation(agency_db, "ivo") as ctx:
        number = cases.open_case(ctx, "Locking").number
    first, second = agency_db.session(), agency_db.session()
    try:
        with first.begin():
            mine = first.execute(select(Case).where(Case.number == number)).scalar_one()
        with second.begin():
            theirs = second.execute(select(Case).where(Case.number == number)).scalar_one()
            theirs.title = "Their title"
        assert theirs.version == 2
        with pytest.raises(ConflictError, match="changed by someone else"):
            with agency_db.transaction() as session:
                stale = session.merge(mine, load=False)
                stale.title = "My title"
    finally:
        first.close()
        second.close()
    with agency_db.transaction() as s:
        assert s.execute(select(Case.title)).scalar_one() == "Their title"


def test_editing_with_an_old_version_is_a_conflict(agency_db: CaseDB) -> None:
    with operation(agency_db, "ivo") as ctx:
        case = cases.open_case(ctx, "Versions")
    with operation(agency_db, "ivo") as ctx:
        assert cases.update_case(ctx, case.number, expected_version=1, title="v2").version == 2
    with pytest.raises(ConflictError, match="is at version 2, not 1"):
        with operation(agency_db, "ivo") as ctx:
            cases.update_case(ctx, case.number, expected_version=1, title="lost update")


def test_times_come_back_in_utc(agency_db: CaseDB) -> None:
    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    with operation(agency_db, "ivo", now=when) as ctx:
        cases.open_case(ctx, "Times")
    with agency_db.transaction() as s:
        created = s.execute(select(Case.created_at)).scalar_one()
        assert created == when and created.tzinfo is not None
        assert s.execute(select(User).where(User.username == "ivo")).scalar_one().role == "investigator"
