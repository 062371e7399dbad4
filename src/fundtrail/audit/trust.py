"""Trust anchors: the public keys a home trusts, pinned in its configuration, never in the database.

An attacker who can write to the case database must not be able to make FundTrail trust his key.
So the keys that verification accepts come only from files of the home that the database cannot
change: ``HOME/keys/trusted-keys.json``, written when the agency key is made (``agency``) and when an
agreement pins a partner's key (``partner:<name>``), plus keys the user names on the command line.
The agency's own public key is also derived from its private key file when that is present.

Each key is known by its key id (the first 16 hex digits of the SHA-256 of the raw public key) and
shown to people as a fingerprint (``SHA256:`` and the whole digest, in groups of four), which is what
an auditor compares over the telephone. A key whose id does not match its bytes is refused.

Reading the trust file never writes anything; :func:`pin` replaces the file atomically.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fundtrail.errors import InputError

TRUST_FILE = "trusted-keys.json"
AGENCY = "agency"
PARTNER_PREFIX = "partner:"
USER_GIVEN = "given"
MAX_TRUST_FILE = 1 << 20


def _raw(public_b64: str) -> bytes:
    try:
        raw = base64.b64decode(public_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InputError("the public key is not base64") from None
    if len(raw) != 32:
        raise InputError(f"the public key is {len(raw)} bytes; an Ed25519 public key has 32")
    return raw


def key_id_for(public_b64: str) -> str:
    """The key id of a base64 raw Ed25519 public key."""
    return hashlib.sha256(_raw(public_b64)).hexdigest()[:16]


def fingerprint(public_b64: str) -> str:
    """The fingerprint people compare: ``SHA256:`` and the digest of the raw key in groups of four."""
    digest = hashlib.sha256(_raw(public_b64)).hexdigest()
    return "SHA256:" + ":".join(digest[i : i + 4] for i in range(0, 64, 4))


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A public key the home trusts, and whose it is."""

    key_id: str
    public_key: str
    owner: str
    pinned_at: str = ""

    @property
    def raw(self) -> bytes:
        """The raw 32-byte public key."""
        return _raw(self.public_key)

    @property
    def fingerprint(self) -> str:
        """The key's fingerprint."""
        return fingerprint(self.public_key)

    def to_dict(self) -> dict[str, str]:
        """The key as JSON values."""
        return {
            "key_id": self.key_id,
            "public_key": self.public_key,
            "owner": self.owner,
            "fingerprint": self.fingerprint,
            "pinned_at": self.pinned_at,
        }


def trusted_key(public_b64: str, owner: str, key_id: str | None = None, pinned_at: str = "") -> TrustedKey:
    """A trusted key from its base64 public half; InputError when ``key_id`` is not that key's id."""
    public = public_b64.strip()
    actual = key_id_for(public)
    if key_id is not None and key_id != actual:
        raise InputError(f"key id {key_id} does not match the public key (its id is {actual})")
    return TrustedKey(actual, public, owner, pinned_at)


def trust_file(home: Path) -> Path:
    """Where the home pins its trusted keys."""
    return Path(home) / "keys" / TRUST_FILE


def _read(home: Path) -> list[TrustedKey]:
    path = trust_file(home)
    if not path.is_file():
        return []
    if path.stat().st_size > MAX_TRUST_FILE:
        raise InputError(f"{path}: larger than {MAX_TRUST_FILE} bytes; not a trusted-keys file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        entries = doc["keys"]
        keys = [
            trusted_key(str(e["public_key"]), str(e["owner"]), str(e["key_id"]), str(e.get("pinned_at", "")))
            for e in entries
        ]
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{path}: not a valid trusted-keys file ({error})") from None
    return keys


def _agency_public(home: Path) -> TrustedKey | None:
    from fundtrail.audit.keys import KEY_FILE, public_of_key_file

    path = Path(home) / "keys" / KEY_FILE
    if not path.is_file():
        return None
    return trusted_key(public_of_key_file(path), AGENCY)


def load(home: Path, given: Iterable[str] = ()) -> dict[str, TrustedKey]:
    """Every key the home trusts, by key id: pinned keys, the agency's own, and ``given`` ones.

    Reads only. ``given`` are base64 public keys the user named (``--public-key``).
    """
    keys: dict[str, TrustedKey] = {}
    for k in _read(home):
        keys[k.key_id] = k
    own = _agency_public(home)
    if own is not None:
        keys.setdefault(own.key_id, own)
    for public in given:
        k = trusted_key(public, USER_GIVEN)
        keys.setdefault(k.key_id, k)
    return keys


def owned_by(keys: Mapping[str, TrustedKey], owner: str) -> list[TrustedKey]:
    """The keys of one owner (``agency`` or ``partner:<name>``)."""
    return [k for k in keys.values() if k.owner == owner]


def partner_owner(name: str) -> str:
    """The owner label of a partner's key."""
    return f"{PARTNER_PREFIX}{name}"


def pin(home: Path, public_b64: str, owner: str, key_id: str | None = None) -> TrustedKey:
    """Pin a public key for ``owner`` in the home's trust file (atomically); returns it.

    Pinning a key already pinned for the same owner changes nothing; a key id already pinned for
    another owner is refused.
    """
    new = trusted_key(public_b64, owner, key_id, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    current = _read(home)
    for k in current:
        if k.key_id == new.key_id:
            if k.owner != owner:
                raise InputError(f"key {k.key_id} is already pinned for {k.owner}, not {owner}")
            return k
    _write(home, [*current, new])
    return new


def unpin(home: Path, key_id: str) -> bool:
    """Remove a pinned key; True when it was pinned."""
    current = _read(home)
    kept = [k for k in current if k.key_id != key_id]
    if len(kept) == len(current):
        return False
    _write(home, kept)
    return True


def _write(home: Path, keys: list[TrustedKey]) -> None:
    path = trust_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "about": "Public keys this FundTrail home trusts. Keys in the case database are never trusted.",
        "keys": [
            {k: v for k, v in key.to_dict().items() if k != "fingerprint"} | {"fingerprint": key.fingerprint}
            for key in keys
        ],
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".trusted-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
