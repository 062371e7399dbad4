"""The case layer's demo steps on a small traced chain: agency and users, case with evidence, an approved
freeze with its ledger entry and letter, an intact audit log; run twice, nothing is duplicated."""

from __future__ import annotations

from fundtrail.audit import log as audit_log
from fundtrail.cases.context import operation
from fundtrail.cases.db import CaseDB
from fundtrail.cases.ledger import list_entries
from fundtrail.cases.requests import list_requests
from fundtrail.cases.testing import EXCHANGE, EXCHANGE_NAME
from fundtrail.scenarios import agency as demo
from fundtrail.scenarios.demo import DEMO_STEPS, DemoContext, StepStatus, run_step


def test_the_steps_follow_the_trace() -> None:
    names = [s.name for s in DEMO_STEPS]
    assert (
        names.index("trace")
        < names.index("agency")
        < names.index("case")
        < names.index("freeze")
        < names.index("audit")
    )


def test_demo_steps_build_the_agency_case_and_freeze(case_db, home, ransom_trace) -> None:
    ctx = DemoContext(home=home)
    ctx.state["trace"] = ransom_trace
    ctx.state["summary"] = {
        "case": {"paid": 5_000_000},
        "exchanges": [
            {"name": EXCHANGE_NAME, "jurisdiction": "LT", "tainted_value": 3_000_000, "addresses": [EXCHANGE]}
        ],
    }
    try:
        for _ in range(2):
            results = [run_step(step, ctx) for step in demo.STEPS]
            assert all(r.status is StepStatus.DONE for r in results), [r.message for r in results]
    finally:
        ctx.close()
    assert "--as USER" in results[0].message or any("--as USER" in h for h in ctx.hints)
    db = CaseDB.open(home)
    try:
        with operation(db, "auditor") as op:
            number = ctx.state["case_number"]
            (req,) = list_requests(op, case=number)
            assert (req.type, req.state, req.author.username, req.approved_by.username) == (
                "freeze",
                "acknowledged",
                "investigator",
                "supervisor",
            )
            (entry,) = list_entries(op, number)
            assert (entry.kind, entry.amount, entry.request_id) == ("frozen", 3_000_000, req.id)
        assert audit_log.verify_database(db).intact
    finally:
        db.close()
    assert (home / "reports" / "letters" / f"{req.number}.en.pdf").is_file()
