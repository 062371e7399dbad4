"""Authentication: passwords (argon2), API and session tokens (random, stored as SHA-256), OpenID Connect.

* A **password** is kept as an argon2id hash; signing in checks it and issues a **session token** (for the
  dashboard's cookie) that expires after ``session_hours``.
* An **API token** is made for a user (by themselves or an admin), shown once, stored as its SHA-256
  hash, listed by id and prefix, revocable, and always expires.
* **OpenID Connect** (optional): an ID token of the configured issuer, signed by a key of its JWKS and
  meant for our client id, signs in the local user its ``username_claim`` names.

Tokens and passwords are never logged. Repeated failed sign-ins for a user name pause it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from fundtrail.api.access import Principal
from fundtrail.api.casework import CaseWork
from fundtrail.api.errors import TooManyRequests, Unauthenticated
from fundtrail.api.state import ApiSettings, OidcSettings
from fundtrail.errors import InputError, NotFoundError, PermissionDeniedError

log = logging.getLogger(__name__)

TOKEN_PREFIX = "ftk_"
SESSION_PREFIX = "fts_"
MAX_TOKEN_DAYS = 366

def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Passwords:
    """argon2id hashing with the service's cost settings; verifying also against unknown users' dummy
    hash, so that the answer takes as long whether the user exists or not."""

    def __init__(self, time_cost: int = 3, memory_kib: int = 65536) -> None:
        self.hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        """An argon2id hash of ``password``."""
        return self.hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """True when ``password`` matches the stored hash (never for a missing one)."""
        try:
            return self.hasher.verify(stored or self._dummy, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """True when the stored hash was made with other cost settings."""
        return self.hasher.check_needs_rehash(stored)


def new_token(kind: str) -> str:
    """A new random token (256 bits); its prefix says whether it is an API or a session token."""
    return (SESSION_PREFIX if kind == "session" else TOKEN_PREFIX) + secrets.token_urlsafe(32)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


@dataclass
class _Cached:
    principal: Principal
    token_id: str
    expires: float
    checked: float


class _Throttle:
    """Counts failed sign-ins per user name; too many within the pause make it wait."""

    def __init__(self, attempts: int, pause: int) -> None:
        self.attempts = attempts
        self.pause = pause
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(key, []) if now - t < self.pause]
            self._failures[key] = recent
            if len(recent) >= self.attempts:
                wait = int(self.pause - (now - recent[0])) + 1
                raise TooManyRequests(f"too many failed sign-ins for this user; try again in {wait} s", wait)

    def fail(self, key: str) -> None:
        with self._lock:
            self._failures.setdefault(key, []).append(time.monotonic())

    def succeed(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


class AuthService:
    """Passwords, tokens and sign-ins on the case database (see :mod:`fundtrail.api.models`)."""

    def __init__(self, cases: CaseWork, settings: ApiSettings) -> None:
        self.cases = cases
        self.settings = settings
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self._throttle = _Throttle(settings.login_attempts, settings.login_pause_seconds)
        self._oidc: OidcVerifier | None = OidcVerifier(settings.oidc) if settings.oidc else None
        self.passwords = Passwords(settings.password_time_cost, settings.password_memory_kib)

    # ------------------------------------------------------------------ principals

    def cached_principal(self, token: str, *, via: str = "token") -> Principal | None:
        """The user of a token checked within the cache time (no database), or None."""
        now = time.time()
        with self._lock:
            hit = self._cache.get(hash_token(token))
        if hit is None or now >= hit.expires or now - hit.checked >= self.settings.token_cache_seconds:
            return None
        return hit.principal if hit.principal.via == via else replace(hit.principal, via=via)

    def principal_for_token(self, token: str, *, via: str = "token") -> Principal | None:
        """The user a (session or API) token stands for, or None when unknown, expired or revoked."""
        cached = self.cached_principal(token, via=via)
        if cached is not None:
            return cached
        digest = hash_token(token)
        now = time.time()
        found = self.cases.token_principal(digest)
        if found is None:
            with self._lock:
                self._cache.pop(digest, None)
            return None
        principal, token_id, expires_at = found
        principal = Principal(principal.user_id, principal.username, principal.role, principal.unit,
                              principal.jurisdiction, principal.display_name, via=via, token_id=token_id)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = _Cached(principal, token_id, expires_at.timestamp(), now)
        return principal

    def forget(self, token_id: str | None = None) -> None:
        """Drop cached token checks (one token's, or all) so that a revocation takes effect at once."""
        with self._lock:
            if token_id is None:
                self._cache.clear()
                return
            for key in [k for k, v in self._cache.items() if v.token_id == token_id]:
                del self._cache[key]

    # ------------------------------------------------------------------ sign-in

    def login(self, username: str, password: str) -> tuple[str, dict[str, Any]]:
        """Check a password and issue a session token: ``(token, info)``. Unauthenticated otherwise."""
        key = username.strip().lower()
        self._throttle.check(key)
        stored = self.cases.password_hash(username)
        if not self.passwords.verify(stored, password):
            self._throttle.fail(key)
            log.info("failed sign-in for user %r", username)
            raise Unauthenticated("wrong user name or password")
        self._throttle.succeed(key)
        if stored is not None and self.passwords.needs_rehash(stored):
            self.cases.set_password_hash(username, self.passwords.hash(password))
        return self.issue(username, name="dashboard session", kind="session",
                          lifetime=timedelta(hours=self.settings.session_hours))

    def login_oidc(self, id_token: str) -> tuple[str, dict[str, Any]]:
        """Sign in with an OpenID Connect ID token; issues a session token for the user it names."""
        if self._oidc is None:
            raise NotFoundError("sign-in method", "openid-connect")
        username = self._oidc.username(id_token)
        if self.cases.user(username) is None:
            log.info("ID token for unknown user %r", username)
            raise Unauthenticated("the ID token names no user of this service")
        return self.issue(username, name="openid connect session", kind="session",
                          lifetime=timedelta(hours=self.settings.session_hours))

    @property
    def oidc_enabled(self) -> bool:
        """True when OpenID Connect sign-in is configured."""
        return self._oidc is not None

    # ------------------------------------------------------------------ tokens

    def issue(self, username: str, *, name: str, kind: str = "api",
              lifetime: timedelta = timedelta(days=90)) -> tuple[str, dict[str, Any]]:
        """A new token for ``username``: ``(token, info)``; the token itself is not stored."""
        if lifetime <= timedelta(0) or lifetime > timedelta(days=MAX_TOKEN_DAYS):
            raise InputError(f"a token lasts between a second and {MAX_TOKEN_DAYS} days")
        token = new_token(kind)
        expires = datetime.now(UTC) + lifetime
        info = self.cases.add_token(username, name=name, kind=kind, token_hash=hash_token(token),
                                    prefix=token[:10], expires_at=expires)
        log.info("%s token %s issued for user %r", kind, info["id"], username)
        return token, info

    def revoke(self, principal: Principal, token_id: str) -> dict[str, Any]:
        """Revoke a token: one's own, or any as an admin. Others' tokens answer NotFound."""
        owner = None if principal.role == "admin" else principal.username
        info = self.cases.revoke_token(token_id, owner=owner)
        self.forget(token_id)
        log.info("token %s revoked by %r", token_id, principal.username)
        return info

    def list_tokens(self, principal: Principal, *, everyone: bool = False, limit: int = 50,
                    offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """The tokens of the principal (or of every user, for admins asking ``everyone``)."""
        if everyone and principal.role != "admin":
            raise PermissionDeniedError("only admins list the tokens of every user")
        return self.cases.list_tokens(None if everyone else principal.username, limit=limit, offset=offset)

    def set_password(self, username: str, password: str) -> None:
        """Set a user's password (stored as an argon2 hash); revokes their sessions."""
        if len(password) < 12:
            raise InputError("a password needs at least 12 characters")
        self.cases.set_password_hash(username, self.passwords.hash(password))
        self.cases.revoke_sessions(username)
        self.forget()


class OidcVerifier:
    """Checks OpenID Connect ID tokens: signature by a JWKS key, issuer, audience, expiry."""

    def __init__(self, settings: OidcSettings) -> None:
        import jwt

        self.settings = settings
        self._jwt = jwt
        if settings.jwks_file is not None:
            self._keys: Any = jwt.PyJWKSet.from_json(settings.jwks_file.read_text())
            self._client = None
        elif settings.jwks_url:
            self._keys = None
            self._client = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=600, timeout=10)
        else:
            raise InputError("OpenID Connect needs a JWKS URL or file")

    def _key(self, token: str) -> Any:
        jwt = self._jwt
        try:
            if self._client is not None:
                return self._client.get_signing_key_from_jwt(token).key
            kid = jwt.get_unverified_header(token).get("kid")
            for key in self._keys.keys:
                if kid is None or key.key_id == kid:
                    return key.key
        except jwt.PyJWTError as error:
            log.info("ID token refused: %s", type(error).__name__)
            raise Unauthenticated("the ID token's signing key is unknown") from None
        raise Unauthenticated("the ID token's signing key is unknown")

    def username(self, token: str) -> str:
        """The user name an ID token stands for; Unauthenticated when it is not valid."""
        jwt = self._jwt
        s = self.settings
        key = self._key(token)
        try:
            claims = jwt.decode(token, key=key, algorithms=s.algorithms, audience=s.audience, issuer=s.issuer,
                                leeway=s.leeway_seconds, options={"require": ["exp", "iat", "iss", "aud"]})
        except jwt.PyJWTError as error:
            log.info("ID token refused: %s", type(error).__name__)
            raise Unauthenticated(f"the ID token is not valid ({type(error).__name__})") from None
        username = claims.get(s.username_claim)
        if not isinstance(username, str) or not username:
            raise Unauthenticated(f"the ID token has no {s.username_claim!r} claim")
        return username


__all__ = ["AuthService", "OidcVerifier", "Passwords", "hash_token"]


class Credentials:
    """The operator's service for the users' API tokens and passwords of a home (``fundtrail token``, the
    demo): the authentication service on a case database connection of its own. Use it as a context
    manager; it closes the connection."""

    def __init__(self, home: Path, settings: ApiSettings | None = None) -> None:
        self.cases = CaseWork.open(home)
        self.auth = AuthService(self.cases, settings or ApiSettings())

    def __enter__(self) -> Credentials:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the case database connection."""
        self.cases.close()

    def has_user(self, username: str) -> bool:
        """True when the home has this user."""
        return self.cases.user(username) is not None

    def has_password(self, username: str) -> bool:
        """True when the user has a password set."""
        return self.cases.password_hash(username) is not None

    def issue(self, username: str, *, name: str, lifetime: timedelta) -> tuple[str, dict[str, Any]]:
        """A new API token for ``username``: ``(token, info)``; the token is shown this once."""
        return self.auth.issue(username, name=name, kind="api", lifetime=lifetime)

    def list_tokens(self, username: str | None) -> tuple[list[dict[str, Any]], int]:
        """Every token and session (of one user, or of all), never their secrets."""
        return self.cases.list_tokens(username, limit=10_000, offset=0)

    def revoke(self, token_id: str) -> dict[str, Any]:
        """Revoke any token (the operator acts for the agency)."""
        return self.cases.revoke_token(token_id, owner=None)

    def set_password(self, username: str, password: str) -> None:
        """Set a user's password (at least 12 characters); revokes their sessions."""
        self.auth.set_password(username, password)
