"""The audit chain's rules, apart from any database: record hashes, checkpoint payloads, verification.

Each record's hash is the SHA-256 of the canonical JSON of all its fields, its sequence number and
the previous record's hash included; the first record links to :data:`GENESIS`. A checkpoint is an
Ed25519 signature over the canonical JSON of ``{seq, hash, at, key_id}`` of the chain head.

:func:`verify_chain` finds every edited record (its hash no longer matches its content), removed record
(a gap in the sequence, or a broken link), inserted or reordered record (a broken link or a content
mismatch, since the sequence number is hashed) and any disagreement with the chain head or a signed
checkpoint, and names the first bad record.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fundtrail.domain.custody import canonical_json, document_hash

GENESIS = "0" * 64

FIELDS = (
    "seq",
    "at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "case_number",
    "reason",
    "details",
    "prev_hash",
)


@dataclass(frozen=True, slots=True)
class RecordData:
    """A stored audit record's fields (``details`` as the stored canonical JSON text)."""

    seq: int
    at: str
    actor: str
    action: str
    object_type: str
    object_id: str | None
    case_number: str | None
    reason: str | None
    details: str
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        """The hash the record's content calls for."""
        return record_hash(
            self.seq,
            self.at,
            self.actor,
            self.action,
            self.object_type,
            self.object_id,
            self.case_number,
            self.reason,
            self.details,
            self.prev_hash,
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON values (details parsed)."""
        try:
            details: Any = json.loads(self.details)
        except ValueError:
            details = self.details
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "case_number": self.case_number,
            "reason": self.reason,
            "details": details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def record_hash(
    seq: int,
    at: str,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | None,
    case_number: str | None,
    reason: str | None,
    details: str,
    prev_hash: str,
) -> str:
    """SHA-256 over the canonical JSON of a record's fields."""
    return document_hash(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "case_number": case_number,
            "reason": reason,
            "details": details,
            "prev_hash": prev_hash,
        }
    )


def details_text(details: Mapping[str, Any] | None) -> str:
    """The canonical JSON text a record stores for its details."""
    return canonical_json(dict(details or {})).decode("utf-8")


def checkpoint_payload(seq: int, head_hash: str, at: str, key_id: str) -> bytes:
    """The bytes a checkpoint signature covers."""
    return canonical_json({"seq": seq, "hash": head_hash, "at": at, "key_id": key_id})


@dataclass(frozen=True, slots=True)
class CheckpointData:
    """A stored checkpoint."""

    id: int
    seq: int
    hash: str
    at: str
    key_id: str
    signature: str


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the chain, at a record."""

    seq: int
    problem: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.problem}"


@dataclass(frozen=True)
class Verification:
    """What verifying the chain found."""

    records: int
    head_seq: int
    head_hash: str
    checkpoints: int
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    @property
    def intact(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    @property
    def first_bad(self) -> Problem | None:
        """The problem at the lowest sequence number."""
        return self.problems[0] if self.problems else None

    def to_dict(self) -> dict[str, Any]:
        """The verification as JSON values."""
        first = self.first_bad
        return {
            "intact": self.intact,
            "records": self.records,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "checkpoints": self.checkpoints,
            "first_bad_record": None if first is None else first.seq,
            "problem": None if first is None else str(first),
            "problems": [{"seq": p.seq, "problem": p.problem} for p in self.problems],
        }


def verify_chain(
    records: Iterable[RecordData],
    head: tuple[int, str],
    checkpoints: Iterable[CheckpointData],
    check_signature: Callable[[CheckpointData], bool],
) -> Verification:
    """Verify records (in sequence order) against each other, the chain head and the signed checkpoints."""
    problems: list[Problem] = []
    hashes: dict[int, str] = {}
    expected, prev_hash, count = 1, GENESIS, 0
    for r in records:
        count += 1
        if r.seq < expected:
            problems.append(Problem(r.seq, f"out of sequence (expected record {expected} here): inserted"))
        elif r.seq > expected:
            missing = f"record {expected}" if r.seq == expected + 1 else f"records {expected} to {r.seq - 1}"
            problems.append(
                Problem(expected, f"{missing} missing (the sequence jumps from {expected - 1} to {r.seq})")
            )
        if r.computed_hash() != r.hash:
            problems.append(
                Problem(
                    r.seq,
                    f"content does not match its hash (edited); stored {r.hash}, "
                    f"computed {r.computed_hash()}",
                )
            )
        if r.prev_hash != prev_hash:
            problems.append(
                Problem(
                    r.seq,
                    f"does not link to the record before it (prev_hash {r.prev_hash}, "
                    f"expected {prev_hash}): a record was removed, inserted or "
                    f"rewritten",
                )
            )
        hashes[r.seq] = r.hash
        expected, prev_hash = max(expected, r.seq + 1), r.hash
    head_seq, head_hash = head
    last = expected - 1
    if last < head_seq:
        problems.append(
            Problem(
                last + 1, f"missing: the chain head is at record {head_seq}, the log ends at record {last}"
            )
        )
    elif last > head_seq:
        problems.append(
            Problem(head_seq + 1, f"beyond the chain head ({head_seq}): appended outside the audit log")
        )
    elif last and hashes.get(last) != head_hash:
        problems.append(Problem(last, f"does not match the chain head hash {head_hash}"))
    n_checkpoints = 0
    for cp in checkpoints:
        n_checkpoints += 1
        if not check_signature(cp):
            problems.append(Problem(cp.seq, f"checkpoint {cp.id} signature is not valid (key {cp.key_id})"))
        elif cp.seq > 0 and hashes.get(cp.seq) != cp.hash:
            problems.append(
                Problem(cp.seq, f"does not match signed checkpoint {cp.id} (signed hash {cp.hash})")
            )
    problems.sort(key=lambda p: p.seq)
    return Verification(count, head_seq, head_hash, n_checkpoints, tuple(problems))
