"""An audit record's fields and hashes, apart from any database.

A record's ``hash`` is the SHA-256 of the canonical JSON of its fields (the previous record's hash
included, so each record names the one before); the same bytes are the record's leaf in the log's
Merkle tree (:mod:`fundtrail.audit.verifier`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fundtrail.audit.verifier import GENESIS, RECORD_FIELDS, record_leaf
from fundtrail.domain.custody import canonical_json

__all__ = ["GENESIS", "FIELDS", "RecordData", "details_text", "record_hash"]

FIELDS = RECORD_FIELDS


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

    def fields(self) -> dict[str, Any]:
        """The hashed fields."""
        return {name: getattr(self, name) for name in FIELDS}

    def computed_hash(self) -> str:
        """The hash the record's content calls for."""
        return record_hash(**self.fields())

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON values (details parsed)."""
        try:
            details: Any = json.loads(self.details)
        except ValueError:
            details = self.details
        return {**self.fields(), "details": details, "hash": self.hash}


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
    fields: Mapping[str, Any] = {
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
    return hashlib.sha256(record_leaf(fields)).hexdigest()


def details_text(details: Mapping[str, Any] | None) -> str:
    """The canonical JSON text a record stores for its details."""
    return canonical_json(dict(details or {})).decode("utf-8")
