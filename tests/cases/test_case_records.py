"""Cases: numbering, roles and reach, subjects with deconfliction, tasks, status, legal hold; every
change audited. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from fundtrail.audit import log as audit_log
from fundtrail.cases import cases
from fundtrail.cases.context import operation
from fundtrail.cases.testing import EXCHANGE, RANSOM
from fundtrail.cases.users import add_user
from fundtrail.domain.cases import Role, may_open_case_in
from fundtrail.errors import (
    ConflictError,
    InputError,
    InvalidAddressError,
    InvalidTransitionError,
    NotFoundError,
    PermissionDeniedError,
)

NOW = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)


def test_cases_are_numbered_per_jurisdiction_and_year(agency_db) -> None:
    with operation(agency_db, "admin") as ctx:
        add_user(ctx, "fred", "Fred French", "investigator", "Cybercrime Unit", "FR")
    with operation(agency_db, "ivo", now=NOW) as ctx:
        numbers = [cases.open_case(ctx, f"Case {i}").number for i in range(3)]
    with operation(agency_db, "fred", now=NOW) as ctx:
        other = cases.open_case(ctx, "Joint case").number
    assert numbers == ["EE-2026-0001", "EE-2026-0002", "EE-2026-0003"]
    assert other == "FR-2026-0001"
    with operation(agency_db, "ivo", now=datetime(2027, 1, 1, tzinfo=UTC)) as ctx:
        assert cases.open_case(ctx, "Next year").number == "EE-2027-0001"


def test_the_opener_leads_and_the_case_holds_the_agency(agency_db) -> None:
    with operation(agency_db, "ivo", now=NOW) as ctx:
        case = cases.open_case(ctx, "Ransomware", severity="high", offence="extortion", summary="Paid.")
        doc = cases.case_doc(ctx, case)
    assert doc["assignees"] == [
        {"username": "ivo", "display_name": "Ivo Investigator", "role": "lead", "unit": "Cybercrime Unit"}
    ]
    assert (doc["status"], doc["severity"], doc["lead_agency"]) == (
        "open",
        "high",
        "Estonian Police and Border Guard Board",
    )


@pytest.mark.parametrize(
    "user, allowed",
    [("ana", False), ("ivo", True), ("sue", True), ("aud", False), ("lia", False), ("admin", False)],
)
def test_who_may_open_a_case(agency_db, user, allowed) -> None:
    with operation(agency_db, user) as ctx:
        if allowed:
            cases.open_case(ctx, "x")
        else:
            with pytest.raises(PermissionDeniedError, match="may not case.open"):
                cases.open_case(ctx, "x")


@pytest.mark.parametrize("user", ["ivo", "sue"])
@pytest.mark.parametrize(
    "where", [{"unit": "Fraud Unit"}, {"jurisdiction": "fr"}, {"unit": "Fraud Unit", "jurisdiction": "FR"}]
)
def test_cases_are_opened_only_in_ones_own_unit_and_jurisdiction(agency_db, user, where) -> None:
    with pytest.raises(PermissionDeniedError, match="may not open a case for"):
        with operation(agency_db, user) as ctx:
            cases.open_case(ctx, "Someone else's case", **where)
    with operation(agency_db, user) as ctx:  # nothing was written, not even a case number
        assert cases.list_cases(ctx) == []
        own = cases.open_case(ctx, "Ours", unit=" Cybercrime Unit ", jurisdiction="ee")
        assert (own.number, own.unit, own.jurisdiction) == (f"EE-{own.year}-0001", "Cybercrime Unit", "EE")


def test_who_may_open_a_case_where() -> None:
    own = ("Cybercrime Unit", "EE")
    for role in Role:
        assert may_open_case_in(role, *own, "Cybercrime Unit", "EE")
        assert may_open_case_in(role, *own, "Fraud Unit", "EE") is (role is Role.ADMIN)
        assert may_open_case_in(role, *own, "Cybercrime Unit", "FR") is (role is Role.ADMIN)


def test_a_case_of_another_unit_is_out_of_reach_as_if_it_did_not_exist(agency_db) -> None:
    with operation(agency_db, "admin") as ctx:
        add_user(ctx, "olga", "Olga Other", "investigator", "Fraud Unit", "EE")
    with operation(agency_db, "ivo") as ctx:
        number = cases.open_case(ctx, "Ours").number
    with operation(agency_db, "olga") as ctx:
        with pytest.raises(NotFoundError, match=f"case '{number}' not found"):
            cases.show_case(ctx, number)
        assert cases.list_cases(ctx) == []
    with operation(agency_db, "lia") as ctx:  # liaison officers reach their whole jurisdiction
        assert [c.number for c in cases.list_cases(ctx)] == [number]
    with operation(agency_db, "admin") as ctx:  # admins reach only what they are assigned to
        assert cases.list_cases(ctx) == []


def test_deconfliction_names_the_other_case_and_its_contact_without_blocking(agency_db) -> None:
    with operation(agency_db, "admin") as ctx:
        add_user(ctx, "olga", "Olga Other", "investigator", "Fraud Unit", "EE", email="olga@example.org")
    with operation(agency_db, "olga") as ctx:
        theirs = cases.open_case(ctx, "Fraud ring").number
        cases.add_subject(ctx, theirs, "address", EXCHANGE.upper(), chain="btc")
    with operation(agency_db, "ivo") as ctx:
        ours = cases.open_case(ctx, "Ransomware").number
        subject, others = cases.add_subject(ctx, ours, "address", EXCHANGE, chain="btc")
        _, none = cases.add_subject(ctx, ours, "address", RANSOM, chain="btc")
    assert subject.value == EXCHANGE  # bech32 is stored lower case: the upper-case entry matched
    assert none == []
    assert [o.to_dict() for o in others] == [
        {
            "case": theirs,
            "status": "open",
            "unit": "Fraud Unit",
            "contact": {"name": "Olga Other", "unit": "Fraud Unit", "email": "olga@example.org"},
        }
    ]
    with operation(agency_db, "aud") as ctx:
        record = audit_log.records(ctx.session, case_number=ours)[-2]
    assert json.loads(record.details)["deconfliction"] == [theirs]


def test_subjects_are_validated_and_personal_data_stays_out_of_the_audit_log(agency_db) -> None:
    with operation(agency_db, "ivo") as ctx:
        number = cases.open_case(ctx, "Subjects").number
        with pytest.raises(InvalidAddressError):
            cases.add_subject(ctx, number, "address", "bc1-not-an-address", chain="btc")
        with pytest.raises(InputError, match="needs --chain"):
            cases.add_subject(ctx, number, "transaction", "ab" * 32)
        with pytest.raises(InputError, match="unknown subject kind 'car'"):
            cases.add_subject(ctx, number, "car", "x")
        cases.add_subject(ctx, number, "person", "Jane Roe", role="suspect")
        cases.add_subject(ctx, number, "exchange_account", "NW-778812", label="Northwind Exchange")
        with pytest.raises(ConflictError, match="already holds"):
            cases.add_subject(ctx, number, "person", "Jane Roe")
    with operation(agency_db, "aud") as ctx:
        details = [r.details for r in audit_log.records(ctx.session, case_number=number)]
    assert not any("Jane Roe" in d or "NW-778812" in d for d in details)


def test_tasks_status_and_hold(agency_db) -> None:
    with operation(agency_db, "ivo") as ctx:
        number = cases.open_case(ctx, "Work").number
        task = cases.add_task(ctx, number, "Serve the freeze order", due=date(2026, 3, 1), assignee="lia")
        assert (task.due_date, task.assignee.username) == (date(2026, 3, 1), "lia")
        assert cases.set_status(ctx, number, "active").status == "active"
        with pytest.raises(PermissionDeniedError):
            cases.set_status(ctx, number, "closed", reason="done")
        with pytest.raises(PermissionDeniedError):
            cases.set_hold(ctx, number, reason="appeal")
    with operation(agency_db, "sue") as ctx:
        with pytest.raises(InputError, match="needs a reason"):
            cases.set_status(ctx, number, "closed")
        with pytest.raises(InvalidTransitionError, match="cannot become open"):
            cases.set_status(ctx, number, "open")
        held = cases.set_hold(ctx, number, reason="pending appeal")
        assert held.legal_hold and held.hold_reason == "pending appeal"
        closed = cases.set_status(ctx, number, "closed", reason="convicted")
        assert closed.closed_at is not None and closed.version == 5  # opened, task, active, hold, closed


def test_a_failed_operation_writes_nothing(agency_db) -> None:
    with operation(agency_db, "ivo") as ctx:
        number = cases.open_case(ctx, "Atomic").number
    with pytest.raises(InvalidAddressError):
        with operation(agency_db, "ivo") as ctx:
            cases.add_subject(ctx, number, "address", RANSOM, chain="btc")
            cases.add_subject(ctx, number, "address", "not-an-address", chain="btc")
    with operation(agency_db, "ivo") as ctx:
        assert cases.show_case(ctx, number).subjects == []
    assert audit_log.verify_database(agency_db).intact
