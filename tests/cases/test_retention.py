"""Retention: expired records are deleted (each deletion audited) unless their case is on legal hold;
a dry run deletes nothing; personal data goes first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import yaml

from fundtrail.audit import log as audit_log
from fundtrail.cases import cases, evidence
from fundtrail.cases.context import operation
from fundtrail.cases.retention import apply_retention, retention_rules
from fundtrail.cases.testing import EXCHANGE
from fundtrail.domain.retention import RecordType
from fundtrail.errors import InputError, PermissionDeniedError

OPENED = datetime(2020, 1, 10, tzinfo=UTC)
CLOSED = datetime(2020, 6, 1, tzinfo=UTC)


@pytest.fixture()
def closed_case(agency_db, chain_store, ransom_trace):
    """A case opened and closed in 2020 with a person, an address and preserved evidence."""
    with operation(agency_db, "ivo", now=OPENED) as ctx:
        number = cases.open_case(ctx, "Old case").number
        cases.add_subject(ctx, number, "person", "Jane Roe")
        ev = evidence.preserve_trace(ctx, number, ransom_trace, chain_store, add_subjects=True).item
    with operation(agency_db, "sue", now=CLOSED) as ctx:
        cases.set_status(ctx, number, "closed", reason="judgment final")
    return number, ev.id


def _types(run) -> list[str]:
    return sorted({e.record_type.value for e in run.deleted})


def test_personal_data_expires_first_and_a_dry_run_deletes_nothing(agency_db, closed_case) -> None:
    number, _ = closed_case
    with operation(agency_db, "admin") as ctx:
        plan = apply_retention(ctx, dry_run=True, as_of=CLOSED + timedelta(days=1826))
    assert _types(plan) == ["personal_subject"]
    with operation(agency_db, "admin") as ctx:
        plan = apply_retention(ctx, dry_run=True, as_of=CLOSED + timedelta(days=3651))
    assert _types(plan) == ["case", "evidence", "personal_subject", "subject"]
    with operation(agency_db, "ivo") as ctx:
        assert len(cases.show_case(ctx, number).subjects) == 4


def test_expired_records_are_deleted_and_each_deletion_is_audited(agency_db, home, closed_case) -> None:
    number, ev_id = closed_case
    now = CLOSED + timedelta(days=3651)
    with operation(agency_db, "admin", now=now) as ctx:
        run = apply_retention(ctx)
    assert len(run.deleted) == 6 and not run.held  # person, 3 addresses, evidence, case
    assert not (home / "evidence" / ev_id).exists()
    with operation(agency_db, "aud") as ctx:
        deletions = [
            r for r in audit_log.records(ctx.session, case_number=number) if r.action == "retention.delete"
        ]
        assert len(deletions) == 6 and all("expired 20" in r.reason for r in deletions)
        assert deletions[-1].object_type == "case"
        assert cases.list_cases(ctx) == []
    assert audit_log.verify_database(agency_db).intact


def test_a_legal_hold_keeps_everything(agency_db, home, closed_case) -> None:
    number, ev_id = closed_case
    with operation(agency_db, "sue") as ctx:
        cases.set_hold(ctx, number, reason="appeal pending")
    with operation(agency_db, "admin", now=CLOSED + timedelta(days=9000)) as ctx:
        run = apply_retention(ctx)
    assert run.deleted == [] and len(run.held) == 5  # the case itself stays while anything of it stays
    assert (home / "evidence" / ev_id).is_dir()


def test_open_cases_are_kept(agency_db) -> None:
    with operation(agency_db, "ivo", now=OPENED) as ctx:
        number = cases.open_case(ctx, "Still open").number
        cases.add_subject(ctx, number, "address", EXCHANGE, chain="btc")
    with operation(agency_db, "admin") as ctx:
        assert apply_retention(ctx, dry_run=True, as_of=OPENED + timedelta(days=99999)).deleted == []


def test_only_admins_apply_retention_and_as_of_only_plans(agency_db) -> None:
    with operation(agency_db, "sue") as ctx:
        with pytest.raises(PermissionDeniedError):
            apply_retention(ctx, dry_run=True)
    with operation(agency_db, "admin") as ctx:
        with pytest.raises(InputError, match="--as-of only plans"):
            apply_retention(ctx, as_of=OPENED)


def test_agency_rules_override_the_shipped_ones(home) -> None:
    assert retention_rules()[RecordType.PERSONAL_SUBJECT].days == 1825
    (home / "retention.yaml").write_text(
        yaml.safe_dump({"personal_subject": {"days": 365, "clock": "created"}})
    )
    rule = retention_rules(home)[RecordType.PERSONAL_SUBJECT]
    assert (rule.days, rule.clock.value) == (365, "created")
    (home / "retention.yaml").write_text(yaml.safe_dump({"subject": {"days": -1}}))
    with pytest.raises(InputError, match="subject.days must be a whole number"):
        retention_rules(home)
