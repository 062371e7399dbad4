"""Retention: delete the case records whose period has run out, unless their case is on legal hold.

Periods are data (``retention.yaml`` shipped, ``HOME/retention.yaml`` to override) per record type
(:class:`fundtrail.domain.retention.RecordType`). Each deletion is an audit record naming the record,
its rule and when it expired; a dry run deletes nothing and says what would go. A case is deleted
only once nothing of it is left; an evidence item's package folder goes with it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select, update

from fundtrail.cases.context import Context
from fundtrail.cases.models import Case, EvidenceItem, LedgerEntry, LegalRequest, Subject
from fundtrail.domain.cases import Action, SubjectKind
from fundtrail.domain.retention import RecordType, RetentionRule, parse_retention_rules
from fundtrail.errors import InputError

AGENCY_RULES = "retention.yaml"


def _load(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise InputError(f"{source}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise InputError(f"{source}: retention rules must be a mapping")
    return data


def retention_rules(home: Path | None = None) -> dict[RecordType, RetentionRule]:
    """The retention rules: shipped, with ``HOME/retention.yaml`` over them when present."""
    data = _load(
        resources.files("fundtrail.cases").joinpath("retention.yaml").read_text(encoding="utf-8"),
        "fundtrail/cases/retention.yaml",
    )
    if home is not None and (Path(home) / AGENCY_RULES).is_file():
        path = Path(home) / AGENCY_RULES
        data = {**data, **_load(path.read_text(encoding="utf-8"), str(path))}
    return parse_retention_rules(data)


@dataclass(frozen=True, slots=True)
class Expired:
    """A record whose retention period has run out."""

    record_type: RecordType
    object_id: str
    case: str
    expired_at: datetime
    held: bool

    def to_dict(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "type": self.record_type.value,
            "id": self.object_id,
            "case": self.case,
            "expired_at": self.expired_at,
            "held": self.held,
        }


@dataclass
class RetentionRun:
    """What a retention run deleted (or would delete), and what a legal hold kept."""

    dry_run: bool
    deleted: list[Expired] = field(default_factory=list)
    held: list[Expired] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "dry_run": self.dry_run,
            "deleted": [e.to_dict() for e in self.deleted],
            "held": [e.to_dict() for e in self.held],
        }


def _subject_type(s: Subject) -> RecordType:
    return RecordType.PERSONAL_SUBJECT if SubjectKind(s.kind).is_personal else RecordType.SUBJECT


def apply_retention(ctx: Context, *, dry_run: bool = False, as_of: datetime | None = None) -> RetentionRun:
    """Delete every expired record not on legal hold (admins); each deletion is audited."""
    ctx.require(Action.RETENTION)
    if as_of is not None and not dry_run:
        raise InputError("--as-of only plans (use it with --dry-run); deletions happen as of now")
    now = as_of or ctx.now
    rules = retention_rules(ctx.home)
    run = RetentionRun(dry_run)
    s = ctx.session
    folders: list[Path] = []
    for case in s.execute(select(Case).order_by(Case.id)).scalars().all():
        closed = case.closed_at
        if closed is None and all(r.clock.value == "case_closed" for r in rules.values()):
            continue
        candidates: list[tuple[RecordType, Any, datetime]] = []
        candidates += [(_subject_type(x), x, x.added_at) for x in case.subjects]
        candidates += [(RecordType.TASK, x, x.created_at) for x in case.tasks]
        candidates += [
            (RecordType.REQUEST, x, x.created_at)
            for x in s.execute(select(LegalRequest).where(LegalRequest.case_id == case.id)).scalars()
        ]
        candidates += [
            (RecordType.EVIDENCE, x, x.created_at)
            for x in s.execute(
                select(EvidenceItem)
                .where(EvidenceItem.case_id == case.id)
                .order_by(EvidenceItem.version.desc())
            ).scalars()
        ]
        candidates += [
            (RecordType.LEDGER_ENTRY, x, x.recorded_at)
            for x in s.execute(select(LedgerEntry).where(LedgerEntry.case_id == case.id)).scalars()
        ]
        kept = 0
        for rtype, record, created in candidates:
            rule = rules[rtype]
            if not rule.is_expired(created, closed, now):
                kept += 1
                continue
            item = Expired(
                rtype,
                _object_id(record),
                case.number,
                rule.expires_at(created, closed) or now,
                case.legal_hold,
            )
            if case.legal_hold:
                run.held.append(item)
                kept += 1
                continue
            run.deleted.append(item)
            if not dry_run:
                folders += _delete(ctx, case, rtype, record, rule, item)
        case_rule = rules[RecordType.CASE]
        if kept == 0 and case_rule.is_expired(case.created_at, closed, now):
            item = Expired(
                RecordType.CASE,
                case.number,
                case.number,
                case_rule.expires_at(case.created_at, closed) or now,
                case.legal_hold,
            )
            if case.legal_hold:
                run.held.append(item)
            else:
                run.deleted.append(item)
                if not dry_run:
                    folders += _delete(ctx, case, RecordType.CASE, case, case_rule, item)
    if dry_run:
        ctx.audit(
            "retention.plan",
            "retention",
            details={"as_of": now.isoformat(), "would_delete": len(run.deleted), "held": len(run.held)},
        )
    elif folders:  # only once the deletions are committed: a failed transaction keeps the files
        ctx.after_commit.append(lambda: remove_folders(folders))
    return run


def _object_id(record: Any) -> str:
    if isinstance(record, LegalRequest):
        return record.number
    return str(record.id)


def _delete(
    ctx: Context, case: Case, rtype: RecordType, record: Any, rule: RetentionRule, item: Expired
) -> list[Path]:
    s = ctx.session
    folders: list[Path] = []
    if isinstance(record, EvidenceItem):
        s.execute(update(Subject).where(Subject.evidence_id == record.id).values(evidence_id=None))
        s.execute(update(LegalRequest).where(LegalRequest.evidence_id == record.id).values(evidence_id=None))
        s.execute(
            update(EvidenceItem).where(EvidenceItem.supersedes_id == record.id).values(supersedes_id=None)
        )
        folders.append(ctx.home / record.bag_path)
    if isinstance(record, LegalRequest):
        for entry in s.execute(select(LedgerEntry).where(LedgerEntry.request_id == record.id)).scalars():
            entry.request_id = None
            entry.note = ((entry.note + "; ") if entry.note else "") + f"legal basis: request {record.number}"
    s.delete(record)
    s.flush()
    if record is not case:
        s.expire(case)  # its collections no longer hold the deleted record
    ctx.audit(
        "retention.delete",
        rtype.value,
        item.object_id,
        case=case.number,
        reason=f"retention: {rtype.value} kept {rule.days} days after {rule.clock.value}, "
        f"expired {item.expired_at.date().isoformat()}",
    )
    return folders


def remove_folders(folders: list[Path]) -> None:
    """Remove evidence folders whose records were deleted (after the transaction committed)."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)
