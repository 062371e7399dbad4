"""Sealed ground truth: a document encrypted to the exercise owner's X25519 key.

The owner's key pair lives in ``HOME/keys/`` (``exercise-owner.key``, mode 0600, and
``exercise-owner.pub``), made on first use. A sealed file is ECIES-style: a fresh ephemeral X25519 key
agrees a secret with the owner's public key, HKDF-SHA256 derives a 256-bit key from it (salted, with the
exercise id in ``info``), and AES-256-GCM encrypts the document, authenticating the header (every field
but the ciphertext) as associated data. The sealed file names its algorithms and the fingerprint of the
key it was sealed to, so a wrong key is told apart from a tampered file:

* a key whose fingerprint is not the recipient's: :class:`~fundtrail.errors.InputError` (exit 2);
* a header or ciphertext that fails authentication: :class:`~fundtrail.errors.IntegrityError` (exit 1).
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fundtrail.errors import InputError, InputLimitError, IntegrityError, ParseError

SEALED_FORMAT = "fundtrail-sealed/1"
KEM = "X25519"
KDF = "HKDF-SHA256"
AEAD = "AES-256-GCM"
OWNER_KEY = "exercise-owner.key"
OWNER_PUB = "exercise-owner.pub"
MAX_SEALED_BYTES = 64 << 20
"""Bound on a sealed file (the truth of a large world is a few MB)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(source: str, name: str, text: Any) -> bytes:
    if not isinstance(text, str):
        raise ParseError(source, name, "must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ParseError(source, name, "is not base64") from None


def fingerprint(public: X25519PublicKey) -> str:
    """SHA-256 of the raw public key, hex, first 32 characters: the key's id in sealed files."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True)
class OwnerKey:
    """The exercise owner's key pair."""

    private: X25519PrivateKey

    @property
    def public(self) -> X25519PublicKey:
        """The public half."""
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        """Its fingerprint."""
        return fingerprint(self.public)


def _read_private(path: Path) -> X25519PrivateKey:
    data = path.read_bytes()[:4096]
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise InputError(f"{path}: not a PEM private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise InputError(f"{path}: not an X25519 private key")
    return key


def load_owner_key(home: Path, key_file: Path | None = None) -> OwnerKey:
    """The owner key of ``home`` (or the private key in ``key_file``); InputError when there is none."""
    path = key_file or Path(home) / "keys" / OWNER_KEY
    if not path.is_file():
        raise InputError(f"{path}: no exercise owner key (it is made by `fundtrail exercise create`)")
    return OwnerKey(_read_private(path))


def load_or_create_owner_key(home: Path) -> OwnerKey:
    """The owner key of ``home``, made (0600, folder 0700) when there is none yet."""
    folder = Path(home) / "keys"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / OWNER_KEY
    if path.exists():
        return load_owner_key(home)
    private = X25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made by another process meanwhile: that one stands
        return load_owner_key(home)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (folder / OWNER_PUB).write_bytes(public)
    return OwnerKey(private)


def _derive(shared: bytes, salt: bytes, context: str) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt, f"fundtrail exercise truth {context}".encode()).derive(shared)


def _aad(header: dict[str, Any]) -> bytes:
    return orjson.dumps(header, option=orjson.OPT_SORT_KEYS)


def seal(document: dict[str, Any], recipient: X25519PublicKey, context: str) -> bytes:
    """The sealed file (JSON bytes) holding ``document`` for the holder of ``recipient``'s private key."""
    ephemeral = X25519PrivateKey.generate()
    salt = os.urandom(16)
    nonce = os.urandom(12)
    header = {
        "format": SEALED_FORMAT,
        "kem": KEM,
        "kdf": KDF,
        "aead": AEAD,
        "context": context,
        "recipient": fingerprint(recipient),
        "ephemeral_public": _b64(
            ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        ),
        "salt": _b64(salt),
        "nonce": _b64(nonce),
    }
    key = _derive(ephemeral.exchange(recipient), salt, context)
    ciphertext = AESGCM(key).encrypt(nonce, orjson.dumps(document), _aad(header))
    return orjson.dumps({**header, "ciphertext": _b64(ciphertext)}, option=orjson.OPT_INDENT_2)


def unseal(path: Path, owner: OwnerKey, context: str) -> dict[str, Any]:
    """Open a sealed file with the owner's key (see the module docstring for the errors)."""
    source = str(path)
    size = path.stat().st_size
    if size > MAX_SEALED_BYTES:
        raise InputLimitError(
            source, None, f"{size} bytes is more than {MAX_SEALED_BYTES}", "MAX_SEALED_BYTES"
        )
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ParseError(source, None, f"not a sealed file (not JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != SEALED_FORMAT:
        raise ParseError(source, None, f"not a sealed file of format {SEALED_FORMAT}")
    algorithms = (doc.get("kem"), doc.get("kdf"), doc.get("aead"))
    if algorithms != (KEM, KDF, AEAD):
        raise ParseError(
            source, None, f"unsupported algorithms {algorithms}; this version uses {KEM}, {KDF}, {AEAD}"
        )
    if doc.get("recipient") != owner.key_id:
        raise InputError(
            f"{source}: sealed to key {doc.get('recipient')}, not to this owner key ({owner.key_id})"
        )
    header = {k: v for k, v in doc.items() if k != "ciphertext"}
    try:
        ephemeral = X25519PublicKey.from_public_bytes(
            _unb64(source, "ephemeral_public", doc.get("ephemeral_public"))
        )
    except ValueError:
        raise IntegrityError(f"{source}: the sealed truth fails authentication (bad ephemeral key)") from None
    salt = _unb64(source, "salt", doc.get("salt"))
    nonce = _unb64(source, "nonce", doc.get("nonce"))
    ciphertext = _unb64(source, "ciphertext", doc.get("ciphertext"))
    key = _derive(owner.private.exchange(ephemeral), salt, context)
    try:
        plain = AESGCM(key).decrypt(nonce, ciphertext, _aad(header))
    except (InvalidTag, ValueError):
        raise IntegrityError(
            f"{source}: the sealed truth fails authentication (tampered or truncated)"
        ) from None
    result = orjson.loads(plain)
    if not isinstance(result, dict):
        raise IntegrityError(f"{source}: the sealed document is not an object")
    return result
