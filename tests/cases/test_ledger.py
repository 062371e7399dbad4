"""The recovery ledger and the public report: exact amounts, a legal basis for each entry, aggregates
without personal data or addresses, and a chart."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest
from sqlalchemy import event

from fundtrail.cases import cases, requests
from fundtrail.cases.context import Context, operation
from fundtrail.cases.ledger import entry_doc, list_entries, record_entry, recovery_report, write_chart
from fundtrail.cases.testing import EXCHANGE
from fundtrail.errors import ConflictError, InputError, PermissionDeniedError

WEI = 12_345_678_901_234_567_890_123  # beyond 64 bits


@pytest.fixture()
def two_cases(agency_db):
    with operation(agency_db, "ivo") as ctx:
        a = cases.open_case(ctx, "A").number
        b = cases.open_case(ctx, "B").number
        cases.add_subject(ctx, a, "address", EXCHANGE, chain="btc", label="Northwind Exchange")
        cases.add_subject(ctx, a, "person", "Jane Roe")
        req = requests.draft_request(ctx, a, "freeze", "Northwind Exchange").number
    return a, b, req


def test_entries_need_a_legal_basis_and_keep_exact_amounts(agency_db, two_cases) -> None:
    a, b, req = two_cases
    with operation(agency_db, "ivo") as ctx:
        with pytest.raises(InputError, match="needs its legal basis"):
            record_entry(ctx, a, "frozen", "btc", 5)
        with pytest.raises(InputError, match=f"request {req} is not a request of case {b}"):
            record_entry(ctx, b, "frozen", "btc", 5, request=req)
        with pytest.raises(InputError, match="not a whole number"):
            record_entry(ctx, a, "frozen", "btc", "0.5", request=req)
        entry = record_entry(
            ctx, a, "frozen", "btc", "3_000_000", request=req, holder="Northwind Exchange", jurisdiction="lt"
        )
        eth = record_entry(ctx, b, "seized", "eth", WEI, court_order="Harju County Court 1-26-77")
        assert entry_doc(entry)["request"] == req and entry.jurisdiction == "LT"
        assert entry_doc(eth)["amount"] == str(WEI)
    with operation(agency_db, "ana") as ctx:
        assert [e.amount for e in list_entries(ctx, b)] == [WEI]
    with operation(agency_db, "lia") as ctx:
        with pytest.raises(PermissionDeniedError):
            record_entry(ctx, a, "returned", "btc", 1, court_order="x")


def test_the_public_report_aggregates_without_personal_data_or_addresses(
    agency_db, two_cases, tmp_path
) -> None:
    a, b, req = two_cases
    with operation(agency_db, "sue") as ctx:
        record_entry(ctx, a, "frozen", "btc", 3_000_000, request=req)
        record_entry(ctx, b, "frozen", "btc", 1_000_001, court_order="C-2")
        record_entry(ctx, b, "seized", "btc", 1_000_000, court_order="C-3")
        record_entry(ctx, b, "seized", "eth", WEI, court_order="C-4")
        record_entry(ctx, b, "seized", "eth", WEI, court_order="C-5")
    with operation(agency_db, "aud") as ctx:
        rows = [r.to_dict() for r in recovery_report(ctx)]
    assert rows == [
        {
            "kind": "frozen",
            "chain": "btc",
            "asset": "native",
            "jurisdiction": "EE",
            "amount": "4000001",
            "amount_display": "0.04000001 BTC",
            "cases": 2,
            "entries": 2,
        },
        {
            "kind": "seized",
            "chain": "btc",
            "asset": "native",
            "jurisdiction": "EE",
            "amount": "1000000",
            "amount_display": "0.01 BTC",
            "cases": 1,
            "entries": 1,
        },
        {
            "kind": "seized",
            "chain": "eth",
            "asset": "native",
            "jurisdiction": "EE",
            "amount": str(2 * WEI),
            "amount_display": "24,691.357802469135780246 ETH",
            "cases": 1,
            "entries": 2,
        },
    ]
    text = json.dumps(rows)
    assert EXCHANGE not in text and "Jane Roe" not in text and a not in text and "C-2" not in text
    png, svg = write_chart(recovery_report_for(agency_db), tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "<svg" in svg.read_text() and "frozen" in svg.read_text()


def recovery_report_for(db):
    with operation(db, "aud") as ctx:
        return recovery_report(ctx)


def test_an_empty_report_still_draws_a_chart(agency_db, tmp_path) -> None:
    with operation(agency_db, "aud") as ctx:
        rows = recovery_report(ctx)
    assert rows == []
    assert all(p.exists() for p in write_chart(rows, tmp_path))


def _at_once(agency_db, jobs: list[tuple[str, Callable[[Context], object]]]) -> list[BaseException | None]:
    """Run each job (user, work) in its own thread and transaction; every one has read what it needs
    before any of them writes (a barrier at the first flush). Returns each job's error, or None."""
    barrier = threading.Barrier(len(jobs), timeout=30)
    errors: list[BaseException | None] = [None] * len(jobs)

    def run(i: int, user: str, work: Callable[[Context], object]) -> None:
        waited = False

        def wait_for_the_others(session, flush_context, instances) -> None:
            nonlocal waited
            if not waited:
                waited = True
                barrier.wait()

        try:
            with operation(agency_db, user) as ctx:
                event.listen(ctx.session, "before_flush", wait_for_the_others)
                work(ctx)
        except BaseException as error:  # noqa: BLE001 - handed back to the test
            errors[i] = error

    threads = [threading.Thread(target=run, args=(i, u, w)) for i, (u, w) in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_concurrent_independent_additions_both_succeed(agency_db, two_cases) -> None:
    if agency_db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite runs one writer at a time (BEGIN IMMEDIATE): its transactions cannot overlap")
    a, _b, req = two_cases
    with operation(agency_db, "ivo") as ctx:
        before = cases.show_case(ctx, a).version
    errors = _at_once(agency_db, [
        ("ivo", lambda ctx: record_entry(ctx, a, "frozen", "btc", 1_000, request=req)),
        ("sue", lambda ctx: record_entry(ctx, a, "seized", "btc", 2_000, court_order="C-1")),
    ])
    assert errors == [None, None]
    with operation(agency_db, "ivo") as ctx:
        assert sorted(e.amount for e in list_entries(ctx, a)) == [1_000, 2_000]
        assert cases.show_case(ctx, a).version == before + 2  # each addition still moves the version
    with operation(agency_db, "ivo") as ctx:  # an edit based on the version before them is stale
        with pytest.raises(ConflictError, match=f"is at version {before + 2}, not {before}"):
            cases.update_case(ctx, a, expected_version=before, title="lost update")


def test_concurrent_edits_of_one_case_still_conflict(agency_db, two_cases) -> None:
    if agency_db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite runs one writer at a time (BEGIN IMMEDIATE): its transactions cannot overlap")
    a, _b, _req = two_cases
    errors = _at_once(agency_db, [
        ("ivo", lambda ctx: cases.update_case(ctx, a, title="Ivo's title")),
        ("sue", lambda ctx: cases.update_case(ctx, a, title="Sue's title")),
    ])
    assert sorted(type(e).__name__ for e in errors) == ["ConflictError", "NoneType"]


def test_an_edit_after_an_addition_in_one_operation(agency_db, two_cases) -> None:
    a, _b, req = two_cases
    with operation(agency_db, "ivo") as ctx:
        version = cases.show_case(ctx, a).version
        record_entry(ctx, a, "frozen", "btc", 1_000, request=req)
        edited = cases.update_case(ctx, a, expected_version=version + 1, title="A, frozen")
        assert edited.version == version + 2
