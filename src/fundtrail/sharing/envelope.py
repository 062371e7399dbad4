"""The envelope of a shared package: who sends what to whom under which terms, signed by the sender.

An envelope is a small JSON document::

    {"envelope": "fundtrail-package/1", "package_id": "...", "format": "stix", "created": "...",
     "sender": {"name": ..., "country": "EE", "key_id": ...},
     "recipient": {"name": ..., "country": "SC", "key_id": ...},
     "agreement": "ee-sc-2026", "legal_basis": "...", "case": "EE-2026-0001",
     "marking": {"tlp": "amber", "pap": "amber"}, "categories": ["addresses_and_transactions", ...],
     "pseudonymised": true, "retention_days": 365, "onward_sharing": false,
     "contents": {"files": {"case.ftm.json": "<sha256>"}}            (or "objects": {stix id: sha256})
     "signature": {"algorithm": "ed25519", "key_id": ..., "value": ...}}

The signature covers the canonical JSON of everything but ``signature``. ``contents`` pins every
payload file (FtM, TagPack, BagIt: the sidecar ``PATH.envelope.json``) or every STIX object (the
envelope travels inside the bundle as a ``fundtrail-package`` object, so that it survives TAXII).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fundtrail.audit.keys import AgencyKey
from fundtrail.domain.custody import canonical_json, sha256_hex
from fundtrail.domain.sharing import (
    DataCategory,
    PackageFormat,
    PackageTerms,
    Pap,
    Tlp,
    format_timestamp,
    parse_timestamp,
)
from fundtrail.errors import InputError, IntegrityError, ParseError
from fundtrail.sharing.signing import sign_document, verify_document

ENVELOPE_VERSION: Final = "fundtrail-package/1"
SIDECAR_SUFFIX = ".envelope.json"


class Party(BaseModel):
    """An agency on one end of an exchange."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=300)
    country: str = Field(pattern=r"^[A-Z]{2}$")
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")


class Marking(BaseModel):
    """TLP 2.0 and PAP levels."""

    model_config = ConfigDict(extra="forbid")

    tlp: Tlp
    pap: Pap


class Contents(BaseModel):
    """What the signature pins: payload files or STIX objects, each by SHA-256."""

    model_config = ConfigDict(extra="forbid")

    files: dict[str, str] | None = None
    objects: dict[str, str] | None = None

    @field_validator("files")
    @classmethod
    def _relative(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name in value or {}:
            p = Path(name)
            if p.is_absolute() or ".." in p.parts or not name:
                raise ValueError(f"file name {name!r} must be relative and stay inside the package")
        return value


class Signature(BaseModel):
    """A detached Ed25519 signature."""

    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["ed25519"]
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    value: str = Field(min_length=80, max_length=100)


class Envelope(BaseModel):
    """A package's envelope (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    envelope: Literal["fundtrail-package/1"] = ENVELOPE_VERSION
    package_id: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    format: PackageFormat
    created: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
    sender: Party
    recipient: Party
    agreement: str = Field(min_length=1, max_length=100)
    legal_basis: str = Field(min_length=1, max_length=2000)
    case: str | None = None
    marking: Marking
    categories: list[DataCategory] = Field(min_length=1)
    pseudonymised: bool
    retention_days: int = Field(ge=1, le=36500)
    onward_sharing: bool
    contents: Contents
    signature: Signature | None = None

    def unsigned(self) -> dict[str, Any]:
        """The document the signature covers (JSON values, without ``signature``)."""
        return self.model_dump(mode="json", exclude={"signature"}, exclude_none=True)

    def terms(self) -> PackageTerms:
        """The terms the receiver checks against its agreement."""
        return PackageTerms(
            sender_key_id=self.sender.key_id,
            format=self.format,
            tlp=self.marking.tlp,
            pap=self.marking.pap,
            categories=frozenset(self.categories),
            retention_days=self.retention_days,
            onward_sharing=self.onward_sharing,
            pseudonymised=self.pseudonymised,
        )

    def document(self) -> dict[str, Any]:
        """The signed envelope as JSON values."""
        return self.model_dump(mode="json", exclude_none=True)


def new_package_id() -> str:
    """A new random package id (UUID 4)."""
    return str(uuid.uuid4())


def now_text(now: datetime | None = None) -> str:
    """The envelope's ``created`` text."""
    return format_timestamp(now or datetime.now(UTC))


def parse_created(text: str) -> datetime:
    """The envelope's ``created`` as a UTC datetime."""
    return parse_timestamp(text)


def sign(envelope: Envelope, key: AgencyKey) -> Envelope:
    """The envelope signed by the agency key."""
    if envelope.sender.key_id != key.key_id:
        raise InputError("the envelope's sender is not this agency's key")
    signature = sign_document(key, envelope.unsigned())
    return envelope.model_copy(update={"signature": Signature.model_validate(signature)})


def parse(document: Any, source: str) -> Envelope:
    """An envelope from JSON values; IntegrityError naming the first problem otherwise."""
    try:
        envelope = Envelope.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "envelope"
        raise IntegrityError(f"{source}: the envelope is not valid: {where}: {first['msg']}") from None
    if envelope.signature is None:
        raise IntegrityError(f"{source}: the envelope is not signed")
    return envelope


def verify(envelope: Envelope, public_b64: str, source: str) -> None:
    """Raise IntegrityError unless the envelope's signature is the sender's, by ``public_b64``."""
    sig = envelope.signature
    if sig is None or sig.key_id != envelope.sender.key_id:
        raise IntegrityError(f"{source}: the envelope is signed by another key than its sender's")
    if not verify_document(public_b64, envelope.unsigned(), sig.model_dump()):
        raise IntegrityError(
            f"{source}: the signature of package {envelope.package_id} is not valid "
            f"(key {sig.key_id}): the package was changed or not signed by its sender"
        )


def file_sha256(path: Path) -> str:
    """SHA-256 hex of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def payload_files(path: Path) -> dict[str, str]:
    """``{relative name: sha256}`` of a payload: one file (its name), or every file of a folder."""
    path = Path(path)
    if path.is_dir():
        return {
            p.relative_to(path).as_posix(): file_sha256(p) for p in sorted(path.rglob("*")) if p.is_file()
        }
    return {path.name: file_sha256(path)}


def check_files(path: Path, expected: dict[str, str], source: str) -> None:
    """Raise IntegrityError unless the payload at ``path`` is exactly the files the envelope pins."""
    actual = payload_files(path)
    if not Path(path).is_dir() and len(expected) == 1:  # one file: its name may change on the way
        actual = {next(iter(expected)): next(iter(actual.values()))}
    missing = sorted(set(expected) - set(actual))
    added = sorted(set(actual) - set(expected))
    changed = sorted(n for n in set(expected) & set(actual) if expected[n] != actual[n])
    if missing or added or changed:
        parts = (
            ([f"changed: {', '.join(changed[:3])}"] if changed else [])
            + ([f"missing: {', '.join(missing[:3])}"] if missing else [])
            + ([f"not signed: {', '.join(added[:3])}"] if added else [])
        )
        raise IntegrityError(f"{source}: the payload does not match its signed envelope ({'; '.join(parts)})")


def sidecar_of(path: Path) -> Path:
    """Where a payload's envelope lies: ``PATH.envelope.json``."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def write_sidecar(path: Path, envelope: Envelope) -> Path:
    """Write the envelope beside the payload; returns the sidecar's path."""
    target = sidecar_of(path)
    target.write_text(json.dumps(envelope.document(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return target


def read_sidecar(path: Path) -> Envelope:
    """The envelope beside a payload; IntegrityError when it is missing or not valid."""
    target = sidecar_of(path)
    if not target.is_file():
        raise IntegrityError(f"{path}: no signed envelope beside it ({target.name} is missing)")
    try:
        document = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise IntegrityError(f"{target}: cannot read the envelope: {error}") from None
    except RecursionError:
        raise ParseError(str(target), None, "the envelope's JSON is nested too deeply to read") from None
    return parse(document, str(target))


def object_sha256(obj: Any) -> str:
    """SHA-256 of a STIX object's canonical JSON (independent of how a server re-serialises it)."""
    return sha256_hex(canonical_json(obj))
