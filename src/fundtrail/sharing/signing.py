"""Ed25519 signatures for exchanges: detached signatures over documents, and signed HTTP requests.

The agency key is the one of :mod:`fundtrail.audit.keys` (``HOME/keys/``): one key per agency signs its
evidence, its audit checkpoints and what it sends to partners, and partners know it by its key id.

A signed request carries four headers (see :func:`signed_headers`)::

    X-FundTrail-Key-Id: 3f2a9c0d1b7e4a55
    X-FundTrail-Timestamp: 2026-05-01T12:00:00.000000Z
    X-FundTrail-Nonce: 9c1f...            (random, 128 bits)
    X-FundTrail-Signature: <base64 Ed25519 over request_payload(...)>

The signature covers the scheme name, method, path with query, timestamp, nonce, the SHA-256 of the
body and the key id (:func:`fundtrail.domain.sharing.request_payload`). The receiver accepts it only
from a partner key it has an agreement with, within :data:`~fundtrail.domain.sharing.REPLAY_WINDOW`
of its clock, and only once per nonce (:class:`ReplayGuard`).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from fundtrail.audit.keys import AgencyKey, key_id_of, verify_signature
from fundtrail.domain.custody import canonical_json
from fundtrail.domain.sharing import (
    REPLAY_WINDOW,
    check_fresh,
    format_timestamp,
    request_payload,
)
from fundtrail.errors import InputError, IntegrityError

KEY_ID_HEADER = "X-FundTrail-Key-Id"
TIMESTAMP_HEADER = "X-FundTrail-Timestamp"
NONCE_HEADER = "X-FundTrail-Nonce"
SIGNATURE_HEADER = "X-FundTrail-Signature"
SIGNED_HEADERS = (KEY_ID_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)


def public_key_id(public_b64: str) -> str:
    """The key id of a base64 raw Ed25519 public key; InputError when it is not one."""
    try:
        raw = base64.b64decode(public_b64, validate=True)
    except ValueError:
        raise InputError("the public key is not base64") from None
    if len(raw) != 32:
        raise InputError(f"the public key is {len(raw)} bytes; an Ed25519 public key has 32")
    return key_id_of(raw)


def sign_document(key: AgencyKey, document: Mapping[str, Any]) -> dict[str, str]:
    """A detached signature of a JSON document's canonical bytes: algorithm, key id, value."""
    return {"algorithm": "ed25519", "key_id": key.key_id, "value": key.sign(canonical_json(dict(document)))}


def verify_document(public_b64: str, document: Mapping[str, Any], signature: Mapping[str, Any]) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of the document by ``public_b64``."""
    if signature.get("algorithm") != "ed25519" or not isinstance(signature.get("value"), str):
        return False
    return verify_signature(public_b64, canonical_json(dict(document)), signature["value"])


def body_sha256(body: bytes) -> str:
    """SHA-256 hex of a request body."""
    return hashlib.sha256(body).hexdigest()


def signed_headers(
    key: AgencyKey,
    method: str,
    path: str,
    body: bytes,
    *,
    now: datetime | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that sign a request to ``path`` (path and query, as sent) with ``body``."""
    timestamp = format_timestamp(now or datetime.now(UTC))
    nonce = nonce or secrets.token_hex(16)
    payload = request_payload(method, path, timestamp, nonce, body_sha256(body), key.key_id)
    return {
        KEY_ID_HEADER: key.key_id,
        TIMESTAMP_HEADER: timestamp,
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: key.sign(payload),
    }


class ReplayGuard:
    """Remembers the nonces seen within the replay window; a nonce seen twice is a replay."""

    def __init__(self, window: timedelta = REPLAY_WINDOW) -> None:
        self.window = window
        self._seen: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str, nonce: str, now: datetime) -> None:
        """Raise IntegrityError when ``nonce`` of ``key_id`` was already used within the window."""
        key = f"{key_id}:{nonce}"
        with self._lock:
            horizon = now - 2 * self.window
            if len(self._seen) > 1000:
                self._seen = {k: t for k, t in self._seen.items() if t > horizon}
            seen = self._seen.get(key)
            if seen is not None and seen > horizon:
                raise IntegrityError(
                    f"request nonce {nonce[:8]}... of key {key_id} was already used: replay refused"
                )
            self._seen[key] = now


def verify_request(
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    public_key_for: Callable[[str], str | None],
    *,
    guard: ReplayGuard,
    now: datetime | None = None,
    window: timedelta = REPLAY_WINDOW,
) -> str:
    """Check a signed request; returns the signer's key id.

    InputError for missing or stale headers, IntegrityError for an unknown key, a bad signature or a
    replayed nonce. ``public_key_for(key_id)`` gives the partner's public key, or None when unknown.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    values = {h: lowered.get(h.lower()) for h in SIGNED_HEADERS}
    missing = [h for h, v in values.items() if not v]
    if missing:
        raise InputError(f"the request is not signed: missing {', '.join(missing)}")
    key_id, timestamp = values[KEY_ID_HEADER] or "", values[TIMESTAMP_HEADER] or ""
    nonce, signature = values[NONCE_HEADER] or "", values[SIGNATURE_HEADER] or ""
    now = now or datetime.now(UTC)
    check_fresh(timestamp, now, window)
    if not 16 <= len(nonce) <= 64:
        raise InputError("the request nonce must be 16 to 64 characters")
    public = public_key_for(key_id)
    if public is None:
        raise IntegrityError(f"key {key_id} is not the key of any partner agreement")
    payload = request_payload(method, path, timestamp, nonce, body_sha256(body), key_id)
    if not verify_signature(public, payload, signature):
        raise IntegrityError(f"the request signature of key {key_id} is not valid")
    guard.check(key_id, nonce, now)
    return key_id


def _path_of(url: httpx.URL) -> str:
    return url.raw_path.decode("ascii")


class SignedAuth(httpx.Auth):
    """httpx authentication that signs every request with the agency key."""

    requires_request_body = True

    def __init__(self, key: AgencyKey) -> None:
        self.key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(
            signed_headers(self.key, request.method, _path_of(request.url), request.content)
        )
        yield request


def requests_auth(key: AgencyKey) -> Any:
    """The same signing for the ``requests`` library (``taxii2-client`` uses it)."""
    from urllib.parse import urlsplit

    import requests

    class _Auth(requests.auth.AuthBase):
        def __call__(self, r: Any) -> Any:
            body = r.body or b""
            if isinstance(body, str):
                body = body.encode("utf-8")
            parts = urlsplit(r.url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            r.headers.update(signed_headers(key, r.method, path, body))
            return r

    return _Auth()
