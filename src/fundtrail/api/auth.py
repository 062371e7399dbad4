"""Authentication: passwords (argon2), API and session tokens (random, stored as SHA-256), OpenID Connect.

* A **password** is kept as an argon2id hash; signing in checks it and issues a **session token** (for the
  dashboard's cookie) that expires after ``session_hours``.
* An **API token** is made for a user (by themselves or an admin), shown once, stored as its SHA-256
  hash, listed by id and prefix, revocable, and always expires.
* **OpenID Connect** (optional): an ID token of the configured issuer, signed by a key of its JWKS and
  meant for our client id, signs in the local user its ``username_claim`` names.

Tokens and passwords are never logged. Repeated failed sign-ins for a user name pause it.

**Checking tokens.** A token checked against the case database is trusted from memory for
``token_cache_seconds`` (the *bound*): a request bearing it costs a dictionary look-up, no SQL and no
lock of the database. The check reads without a write lock (a read-only connection for a SQLite file), so
it never waits behind case writes. Once half the bound has passed, the next request still answers from
memory and starts a check of every such token in the background (one query), so that busy tokens never
expire from the cache under load; a token not checked again within the bound is checked on its next use.
A revocation made by this process takes effect at once, and so does one made by another worker of the
same server or by the CLI on the same home (``fundtrail token revoke``, ``fundtrail token password``): a
revocation (sign-out, a revoked token, a password set, anything that calls :meth:`AuthService.forget`)
appends a byte to :data:`REVOCATIONS` in the home (the server's workers and the CLI share it), and every
worker compares that file's size with the one it last saw (one ``os.stat``) before trusting its cache,
emptying the cache when it grew; a check that began before the change is not kept. A revocation written
to the case database by anything else (another home on the same PostgreSQL database) takes effect
within the bound (counted from the start of the check that last saw the token valid).
``last_used_at`` is written at most once per :data:`LAST_USED_EVERY` per token and process, off the
request path.

The pause after failed sign-ins is counted per process: with ``N`` worker processes a user name takes at
most ``N x login_attempts`` wrong passwords per pause (each costing an argon2id hash).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
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
LAST_USED_EVERY = 60.0
"""Seconds between two writes of a token's ``last_used_at`` (per process)."""
MAX_CACHED_TOKENS = 10_000
CHECK_CHUNK = 500
REVOCATIONS = "revocations"
"""The file, in the home (else the workers' shared folder), that grows by one byte with every revocation."""

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
    expires: float  # Unix time the token expires
    checked: float  # monotonic time the check that saw it valid began
    used: bool = False  # asked for since that check


@dataclass(frozen=True)
class TokenRecord:
    """What a token check reads: the token's row and its user's."""

    principal: Principal
    token_id: str
    expires_at: datetime
    last_used_at: datetime | None


class TokenReader:
    """Reads token records without taking the database's write lock.

    A SQLite file is read through a read-only engine of its own (deferred transactions); other databases
    through the case database's engine (plain reads). A case service without an engine (tests) is asked
    through its ``token_principal``.
    """

    def __init__(self, cases: Any) -> None:
        self.cases = cases
        self._engine: Any = None
        self._own_engine = False
        db = getattr(cases, "db", None)
        engine = getattr(db, "engine", None)
        if engine is None:
            return
        if engine.dialect.name == "sqlite":
            database = engine.url.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                from fundtrail.cases.db import make_read_only_engine

                self._engine = make_read_only_engine(engine.url.render_as_string(hide_password=False))
                self._own_engine = True
            return  # an in-memory database: through the case service
        self._engine = engine

    def read(self, digests: list[str]) -> dict[str, TokenRecord]:
        """The valid (known, unexpired, unrevoked, active user) tokens among ``digests``."""
        if self._engine is None:
            return self._read_through_service(digests)
        from sqlalchemy import select

        from fundtrail.api.models import ApiToken
        from fundtrail.cases.models import User

        now = datetime.now(UTC)
        out: dict[str, TokenRecord] = {}
        with self._engine.connect() as connection:
            for start in range(0, len(digests), CHECK_CHUNK):
                rows = connection.execute(
                    select(ApiToken.token_hash, ApiToken.id, ApiToken.expires_at, ApiToken.revoked_at,
                           ApiToken.last_used_at, User.id, User.username, User.role, User.unit,
                           User.jurisdiction, User.display_name, User.active)
                    .join(User, User.id == ApiToken.user_id)
                    .where(ApiToken.token_hash.in_(digests[start:start + CHECK_CHUNK]))).all()
                for (digest, token_id, expires_at, revoked_at, last_used_at, user_id, username, role, unit,
                     jurisdiction, display_name, active) in rows:
                    if revoked_at is not None or expires_at <= now or not active:
                        continue
                    principal = Principal(user_id, username, role, unit, jurisdiction, display_name)
                    out[digest] = TokenRecord(principal, token_id, expires_at, last_used_at)
        return out

    def _read_through_service(self, digests: list[str]) -> dict[str, TokenRecord]:
        out: dict[str, TokenRecord] = {}
        for digest in digests:
            found = self.cases.token_principal(digest)
            if found is not None:
                principal, token_id, expires_at = found
                out[digest] = TokenRecord(principal, token_id, expires_at, datetime.now(UTC))
        return out

    def mark_used(self, used: dict[str, datetime]) -> None:
        """Write ``last_used_at`` of these token ids (a write transaction of the case database)."""
        db = getattr(self.cases, "db", None)
        if not used or db is None:
            return
        from sqlalchemy import update

        from fundtrail.api.models import ApiToken

        with db.transaction() as session:
            for token_id, when in used.items():
                session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=when))

    def close(self) -> None:
        """Release the read-only engine (when this reader made one)."""
        if self._own_engine and self._engine is not None:
            self._engine.dispose()
        self._engine = None


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

    def __init__(self, cases: CaseWork, settings: ApiSettings, *,
                 clock: Callable[[], float] = time.monotonic, background: bool = True,
                 revocations: Path | None = None) -> None:
        self.cases = cases
        self.settings = settings
        self.clock = clock
        self.background = background
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self._gates: dict[str, threading.Lock] = {}
        self._used: dict[str, float] = {}  # token id -> when this process last wrote last_used_at
        self._pending_use: dict[str, datetime] = {}
        self._maintaining = False
        self._epoch = 0  # bumped whenever the cache is emptied: checks begun before are not kept
        shared = settings.shared_folder
        # the home's file (the server and the CLI on one home), else the workers' shared folder's
        self._revocations: Path | None = (revocations if revocations is not None
                                          else None if shared is None else Path(shared) / REVOCATIONS)
        self._revocations_seen = self._revocation_mark()
        self._reader = TokenReader(cases)
        self._throttle = _Throttle(settings.login_attempts, settings.login_pause_seconds)
        self._oidc: OidcVerifier | None = OidcVerifier(settings.oidc) if settings.oidc else None
        self.passwords = Passwords(settings.password_time_cost, settings.password_memory_kib)

    def close(self) -> None:
        """Write pending ``last_used_at`` times and release the token reader."""
        try:
            self.flush_last_used()
        except Exception:  # the last-used times are informative; closing goes on
            log.exception("could not write tokens' last use")
        self._reader.close()

    # ------------------------------------------------------------------ principals

    @property
    def bound(self) -> float:
        """Seconds within which a revocation made elsewhere takes effect here."""
        return self.settings.token_cache_seconds

    def _revocation_mark(self) -> tuple[int, int] | None:
        """The revocations file's identity and size (None: no file, or no shared folder)."""
        if self._revocations is None:
            return None
        try:
            st = os.stat(self._revocations)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size

    def _follow_revocations(self) -> None:
        """Empty the cache when another worker (or this one) revoked something since the last look."""
        if self._revocations is None:
            return
        mark = self._revocation_mark()
        if mark == self._revocations_seen:
            return
        with self._lock:
            self._revocations_seen = mark
            self._cache.clear()
            self._epoch += 1

    def _announce_revocation(self) -> None:
        """Tell the server's other workers that something was revoked (after it was committed)."""
        if self._revocations is None:
            return
        try:
            fd = os.open(self._revocations, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, b"\n")
            finally:
                os.close(fd)
        except OSError:  # the other workers still see it within the bound
            log.exception("could not announce a revocation to the other workers")

    def cached_principal(self, token: str, *, via: str = "token") -> Principal | None:
        """The user of a token checked within the bound (no database), or None."""
        self._follow_revocations()
        digest = hash_token(token)
        now = self.clock()
        wall = time.time()
        kick = False
        with self._lock:
            hit = self._cache.get(digest)
            if hit is None or wall >= hit.expires or now - hit.checked >= self.bound:
                return None
            hit.used = True
            kick = self.background and now - hit.checked >= self.bound / 2 and not self._maintaining
        if kick:
            self._start_maintenance()
        return hit.principal if hit.principal.via == via else replace(hit.principal, via=via)

    def principal_for_token(self, token: str, *, via: str = "token") -> Principal | None:
        """The user a (session or API) token stands for, or None when unknown, expired or revoked."""
        cached = self.cached_principal(token, via=via)
        if cached is not None:
            return cached
        digest = hash_token(token)
        with self._lock:
            gate = self._gates.setdefault(digest, threading.Lock())
        try:
            with gate:  # many requests with one token at once: one of them reads, the others wait for it
                cached = self.cached_principal(token, via=via)
                if cached is not None:
                    return cached
                started, epoch = self.clock(), self._epoch
                record = self._reader.read([digest]).get(digest)
                self._store(digest, record, started, epoch)
        finally:
            with self._lock:
                self._gates.pop(digest, None)
        if record is None:
            return None
        return replace(record.principal, via=via, token_id=record.token_id)

    def _store(self, digest: str, record: TokenRecord | None, started: float, epoch: int) -> bool:
        """Keep a check's result (not when the cache was emptied since the check began, ``epoch``);
        True when a ``last_used_at`` write is due."""
        with self._lock:
            if record is None:
                self._cache.pop(digest, None)
                return False
            if epoch != self._epoch:  # a revocation since: this check may predate it
                return False
            if len(self._cache) >= MAX_CACHED_TOKENS and digest not in self._cache:
                self._cache.clear()
            principal = replace(record.principal, token_id=record.token_id)
            self._cache[digest] = _Cached(principal, record.token_id, record.expires_at.timestamp(), started)
            return self._note_use(record, started)

    def _note_use(self, record: TokenRecord, now: float) -> bool:
        """Queue a ``last_used_at`` write when this process wrote none for the token lately (under lock)."""
        last = self._used.get(record.token_id)
        if last is not None and now - last < LAST_USED_EVERY:
            return False
        stored = record.last_used_at
        lately = datetime.now(UTC) - timedelta(seconds=LAST_USED_EVERY)
        if last is None and stored is not None and stored > lately:
            self._used[record.token_id] = now  # another process wrote it lately
            return False
        self._used[record.token_id] = now
        if len(self._used) > MAX_CACHED_TOKENS:
            self._used.clear()
        self._pending_use[record.token_id] = datetime.now(UTC)
        if self.background and not self._maintaining:
            self._maintaining = True
            threading.Thread(target=self._maintain, name="fundtrail-token-check", daemon=True).start()
        return True

    def _start_maintenance(self) -> None:
        with self._lock:
            if self._maintaining:
                return
            self._maintaining = True
        threading.Thread(target=self._maintain, name="fundtrail-token-check", daemon=True).start()

    def _maintain(self) -> None:
        try:
            self.refresh_due()
            self.flush_last_used()
        except Exception:  # a failed background check leaves entries to expire at the bound
            log.exception("background token check failed")
        finally:
            with self._lock:
                self._maintaining = False

    def refresh_due(self) -> int:
        """Check again, in one query, the cached tokens used since their check and past half the bound;
        drop those no longer valid. Returns how many were checked."""
        now = self.clock()
        with self._lock:
            due = [d for d, c in self._cache.items() if c.used and now - c.checked >= self.bound / 2]
        if not due:
            return 0
        started, epoch = self.clock(), self._epoch
        found = self._reader.read(due)
        for digest in due:
            self._store(digest, found.get(digest), started, epoch)
        return len(due)

    def flush_last_used(self) -> None:
        """Write the ``last_used_at`` times queued by token checks."""
        with self._lock:
            pending, self._pending_use = self._pending_use, {}
        self._reader.mark_used(pending)

    def forget(self, token_id: str | None = None) -> None:
        """Drop cached token checks (one token's, or all) so that a revocation takes effect at once, here
        and (through the revocations file) in the server's other workers."""
        with self._lock:
            self._epoch += 1
            if token_id is None:
                self._cache.clear()
            else:
                for key in [k for k, v in self._cache.items() if v.token_id == token_id]:
                    del self._cache[key]
        self._announce_revocation()

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
        self.auth = AuthService(self.cases, settings or ApiSettings(), revocations=Path(home) / REVOCATIONS)

    def __enter__(self) -> Credentials:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the case database connection."""
        self.auth.close()
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
        info = self.cases.revoke_token(token_id, owner=None)
        self.auth.forget(str(info["id"]))  # a server on this home forgets the token at once
        return info

    def set_password(self, username: str, password: str) -> None:
        """Set a user's password (at least 12 characters); revokes their sessions."""
        self.auth.set_password(username, password)
