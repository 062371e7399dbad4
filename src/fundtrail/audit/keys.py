"""The agency's Ed25519 signing key: created on first use under ``HOME/keys/`` (0600), never logged.

The key id is the first 16 hex digits of the SHA-256 of the raw public key. When the key is made, its
public half is written as ``HOME/keys/<key_id>.pub`` and pinned in the home's trust file
(:mod:`fundtrail.audit.trust`), and its fingerprint is logged. The case database also lists it
(``signing_keys``) for reference only: verification never trusts a key because a table lists it.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.orm import Session

from fundtrail.audit import trust
from fundtrail.errors import InputError

log = logging.getLogger(__name__)

KEY_FILE = "agency-ed25519.pem"
ALGORITHM = "ed25519"


def key_id_of(public_raw: bytes) -> str:
    """The key id of a raw Ed25519 public key."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class AgencyKey:
    """The agency's signing key pair."""

    private: Ed25519PrivateKey
    key_id: str
    public_b64: str
    home: Path | None = None
    """The home the key belongs to (where its trust file is)."""

    @property
    def public_raw(self) -> bytes:
        """The raw 32-byte public key."""
        return base64.b64decode(self.public_b64)

    def sign(self, data: bytes) -> str:
        """An Ed25519 signature of ``data``, base64."""
        return base64.b64encode(self.private.sign(data)).decode("ascii")

    def __repr__(self) -> str:  # never show key material
        return f"AgencyKey(key_id={self.key_id!r})"


def _public_raw(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def create_key_file(path: Path) -> Ed25519PrivateKey | None:
    """A new random Ed25519 key written to ``path`` (0600, folder 0700); None when ``path`` exists.

    Another process may create it at the same time: then that one's key stands and None is returned.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if path.exists():
        return None
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return private


def load_or_create(home: Path) -> AgencyKey:
    """The agency key of ``home``, created (0600, folder 0700) when there is none yet."""
    path = Path(home) / "keys" / KEY_FILE
    private = create_key_file(path)
    if private is not None:
        public_b64 = base64.b64encode(_public_raw(private)).decode("ascii")
        pinned = trust.pin(home, public_b64, trust.AGENCY)
        log.info("created the agency signing key %s, fingerprint %s", pinned.key_id, pinned.fingerprint)
    if path.stat().st_mode & 0o077:
        raise InputError(f"{path}: the agency key must be readable by its owner only (chmod 600)")
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise InputError(f"{path}: not an Ed25519 private key")
    raw = _public_raw(loaded)
    key = AgencyKey(loaded, key_id_of(raw), base64.b64encode(raw).decode("ascii"), Path(home))
    pub = path.parent / f"{key.key_id}.pub"
    if not pub.exists():
        pub.write_text(key.public_b64 + "\n", encoding="ascii")
    return key


def public_of_key_file(path: Path) -> str:
    """The base64 public half of the agency key file at ``path`` (reads only)."""
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as error:
        raise InputError(f"{path}: not a readable private key ({error})") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise InputError(f"{path}: not an Ed25519 private key")
    return base64.b64encode(_public_raw(loaded)).decode("ascii")


def verify_signature(public_b64: str, data: bytes, signature_b64: str) -> bool:
    """True when ``signature_b64`` is a valid Ed25519 signature of ``data`` by ``public_b64``."""
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
        public.verify(base64.b64decode(signature_b64), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def register(session: Session, key: AgencyKey) -> None:
    """Record the key's public half in the case database (once)."""
    from fundtrail.audit.models import SigningKey

    if session.get(SigningKey, key.key_id) is None:
        session.add(SigningKey(key_id=key.key_id, algorithm=ALGORITHM, public_key=key.public_b64))
        session.flush()
