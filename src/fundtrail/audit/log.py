"""The audit log in the case database: appends, signed checkpoints and verification.

Appends happen inside the operation's own transaction, so an operation and its audit record are
written together or not at all. Appends are serialised through the one-row ``audit_head`` table:
PostgreSQL locks it (``SELECT ... FOR UPDATE``) until the transaction ends; SQLite transactions hold
the database write lock from their start (``BEGIN IMMEDIATE``, see :mod:`fundtrail.cases.db`). The
unique sequence number and hash are a last line of defence against forks.

The head is signed (a checkpoint) every :data:`SIGN_EVERY` records and at each verification.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fundtrail.audit.chain import (
    CheckpointData,
    RecordData,
    Verification,
    checkpoint_payload,
    details_text,
    record_hash,
    verify_chain,
)
from fundtrail.audit.keys import AgencyKey, register, verify_signature
from fundtrail.cases.models import AuditCheckpoint, AuditHead, AuditRecord, SigningKey
from fundtrail.errors import IntegrityError

log = logging.getLogger(__name__)

SIGN_EVERY = 100
"""A checkpoint is signed after this many records."""


def timestamp(when: datetime | None = None) -> str:
    """An audit timestamp: UTC, ISO 8601 with microseconds."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lock_head(session: Session) -> AuditHead:
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if head is None:
        raise IntegrityError("the audit chain head is missing from the case database")
    return head


def append(
    session: Session,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int | None = None,
    *,
    case_number: str | None = None,
    reason: str | None = None,
    details: Mapping[str, Any] | None = None,
    at: datetime | None = None,
    key: AgencyKey | None = None,
    sign_every: int = SIGN_EVERY,
) -> AuditRecord:
    """Append one record (actor, action, object, case, reason, details) to the chain."""
    head = _lock_head(session)
    seq = head.seq + 1
    fields = {
        "seq": seq,
        "at": timestamp(at),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": None if object_id is None else str(object_id),
        "case_number": case_number,
        "reason": reason,
        "details": details_text(details),
        "prev_hash": head.hash,
    }
    record = AuditRecord(**fields, hash=record_hash(**fields))
    session.add(record)
    head.seq, head.hash = seq, record.hash
    session.flush()
    if key is not None and seq - head.signed_seq >= sign_every:
        checkpoint(session, key, at=at)
    return record


def checkpoint(session: Session, key: AgencyKey, *, at: datetime | None = None) -> AuditCheckpoint | None:
    """Sign the current chain head (None when it is already signed)."""
    head = _lock_head(session)
    last = session.execute(select(AuditCheckpoint.seq).order_by(AuditCheckpoint.id.desc()).limit(1)).scalar()
    if last is not None and last == head.seq:
        return None
    register(session, key)
    when = timestamp(at)
    cp = AuditCheckpoint(
        seq=head.seq,
        hash=head.hash,
        at=when,
        key_id=key.key_id,
        signature=key.sign(checkpoint_payload(head.seq, head.hash, when, key.key_id)),
    )
    session.add(cp)
    head.signed_seq = head.seq
    session.flush()
    log.info("audit checkpoint signed at record %d", head.seq)
    return cp


_COLUMNS = (
    AuditRecord.seq,
    AuditRecord.at,
    AuditRecord.actor,
    AuditRecord.action,
    AuditRecord.object_type,
    AuditRecord.object_id,
    AuditRecord.case_number,
    AuditRecord.reason,
    AuditRecord.details,
    AuditRecord.prev_hash,
    AuditRecord.hash,
)


def _records(session: Session, *, batch: int = 5000) -> Iterator[RecordData]:
    after = -(2**31)
    while True:
        rows = session.execute(
            select(*_COLUMNS).where(AuditRecord.seq > after).order_by(AuditRecord.seq).limit(batch)
        ).all()
        if not rows:
            return
        for r in rows:
            yield RecordData(*r)
        after = rows[-1][0]


def verify(session: Session, home_key: AgencyKey | None = None) -> Verification:
    """Verify the whole chain, its head and every signed checkpoint.

    Signatures are checked with the public keys registered in the database; the home's own key, when
    given, must agree with its registered public half.
    """
    keys = {k.key_id: k.public_key for k in session.execute(select(SigningKey)).scalars()}
    if home_key is not None and home_key.key_id in keys and keys[home_key.key_id] != home_key.public_b64:
        raise IntegrityError(f"the public key registered for key {home_key.key_id} is not the agency's key")
    head = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one_or_none()
    if head is None:
        raise IntegrityError("the audit chain head is missing from the case database")
    checkpoints = [
        CheckpointData(c.id, c.seq, c.hash, c.at, c.key_id, c.signature)
        for c in session.execute(select(AuditCheckpoint).order_by(AuditCheckpoint.id)).scalars()
    ]

    def check(cp: CheckpointData) -> bool:
        public = keys.get(cp.key_id)
        return public is not None and verify_signature(
            public, checkpoint_payload(cp.seq, cp.hash, cp.at, cp.key_id), cp.signature
        )

    return verify_chain(_records(session), (head[0], head[1]), checkpoints, check)


def records(
    session: Session,
    *,
    case_number: str | None = None,
    actor: str | None = None,
    object_type: str | None = None,
    since_seq: int = 0,
    limit: int = 100,
) -> list[RecordData]:
    """Records in sequence order, filtered; the last ``limit`` of them."""
    q = select(*_COLUMNS).where(AuditRecord.seq > since_seq)
    if case_number:
        q = q.where(AuditRecord.case_number == case_number)
    if actor:
        q = q.where(AuditRecord.actor == actor)
    if object_type:
        q = q.where(AuditRecord.object_type == object_type)
    rows = session.execute(q.order_by(AuditRecord.seq.desc()).limit(limit)).all()
    return [RecordData(*r) for r in reversed(rows)]


def count(session: Session) -> int:
    """How many records the log holds."""
    return int(session.execute(select(func.count()).select_from(AuditRecord)).scalar_one())
