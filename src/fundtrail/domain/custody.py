"""Evidence and chain of custody: event types, identifiers, canonical hashing, manifest comparison.

Pure: no I/O. Canonical JSON (sorted keys, no insignificant spaces, UTF-8) is what every content hash
in FundTrail is computed over, so that a hash depends on the content only.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fundtrail.errors import InputError


class CustodyEventType(StrEnum):
    """What happened to an evidence item."""

    CREATED = "created"
    VIEWED = "viewed"
    EXPORTED = "exported"
    TRANSFERRED = "transferred"
    VERIFIED = "verified"
    RETRACED = "retraced"
    SUPERSEDED = "superseded"


def canonical_json(document: Any) -> bytes:
    """The canonical JSON bytes of a document: sorted keys, compact separators, UTF-8."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as lower-case hex."""
    return hashlib.sha256(data).hexdigest()


def document_hash(document: Any) -> str:
    """SHA-256 of a document's canonical JSON."""
    return sha256_hex(canonical_json(document))


_EVIDENCE_ID = re.compile(r"^([A-Z]{2}-\d{4}-\d{4,})-E(\d{3,})(?:-v(\d+))?$")


@dataclass(frozen=True, slots=True)
class EvidenceId:
    """An evidence identifier: the case number, the item number in the case, the version."""

    case_number: str
    item: int
    version: int

    def __str__(self) -> str:
        return f"{self.case_number}-E{self.item:03d}-v{self.version}"

    @classmethod
    def parse(cls, text: str) -> tuple[str, int, int | None]:
        """``(case, item, version)`` from ``EE-2026-0001-E001-v2`` (version None when left out)."""
        m = _EVIDENCE_ID.match(text.strip().upper().replace("-V", "-v"))
        if not m:
            raise InputError(f"{text!r} is not an evidence id (CASE-Ennn-vN, e.g. EE-2026-0001-E001-v1)")
        return m.group(1), int(m.group(2)), int(m.group(3)) if m.group(3) else None


@dataclass(frozen=True, slots=True)
class FileDifference:
    """One file whose content does not match what was recorded."""

    path: str
    problem: str
    expected: str | None
    actual: str | None

    def to_dict(self) -> dict[str, Any]:
        """The difference as JSON values."""
        return {"path": self.path, "problem": self.problem, "expected": self.expected, "actual": self.actual}

    def __str__(self) -> str:
        if self.problem == "changed":
            return f"{self.path}: sha256 expected {self.expected}, actual {self.actual}"
        return f"{self.path}: {self.problem}"


def compare_manifests(expected: Mapping[str, str], actual: Mapping[str, str]) -> list[FileDifference]:
    """Files missing, changed or added, in path order."""
    out: list[FileDifference] = []
    for path in sorted(set(expected) | set(actual)):
        want, have = expected.get(path), actual.get(path)
        if have is None:
            out.append(FileDifference(path, "missing", want, None))
        elif want is None:
            out.append(FileDifference(path, "added", None, have))
        elif want != have:
            out.append(FileDifference(path, "changed", want, have))
    return out
