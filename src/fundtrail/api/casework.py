"""The case database as the service uses it: users and their credentials, and the case services.

:class:`CaseWork` opens the home's case database (:class:`fundtrail.cases.db.CaseDB`) and offers what
the routes need in the service's terms (principals, token records). Case operations themselves are the
case layer's services, called with the acting user; this module only turns the service's user into a
:class:`~fundtrail.api.access.Principal` and back.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select, update

from fundtrail.api.access import Principal
from fundtrail.api.models import ApiCredential, ApiToken
from fundtrail.cases.context import Context, operation
from fundtrail.cases.db import CaseDB
from fundtrail.cases.models import User
from fundtrail.errors import NotFoundError, PermissionDeniedError

log = logging.getLogger(__name__)

LAST_USED_EVERY = timedelta(minutes=1)
T = TypeVar("T")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def principal_of(user: User) -> Principal:
    """The principal of a case-database user."""
    return Principal(user_id=user.id, username=user.username, role=user.role, unit=user.unit,
                     jurisdiction=user.jurisdiction, display_name=user.display_name)


def token_info(token: ApiToken, username: str) -> dict[str, Any]:
    """A token as listed: never its secret."""
    now = datetime.now(UTC)
    return {"id": token.id, "name": token.name, "kind": token.kind, "username": username,
            "prefix": token.prefix, "created_at": _iso(token.created_at),
            "expires_at": _iso(token.expires_at),
            "revoked_at": _iso(token.revoked_at), "last_used_at": _iso(token.last_used_at),
            "active": token.revoked_at is None and token.expires_at > now}


class CaseWork:
    """Users, credentials and case services on one case database."""

    def __init__(self, db: CaseDB) -> None:
        self.db = db
        # SQLite takes one writer at a time and makes the others wait with growing sleeps, which starves
        # some of them under load; every case operation writes (its audit record), so the service queues
        # them itself. PostgreSQL serialises only what conflicts (the audit chain head).
        self._one_writer = threading.Lock() if db.engine.dialect.name == "sqlite" else None

    @classmethod
    def open(cls, home: Path, url: str | None = None, *, wal: bool = False) -> CaseWork:
        """Open (and for SQLite bring up to date) the home's case database; ``wal`` puts a SQLite
        database in write-ahead-log mode (kept in the file), where a commit costs one sync instead of
        rewriting pages through a rollback journal."""
        db = CaseDB.open(home, url)
        if wal and db.engine.dialect.name == "sqlite":
            raw = db.engine.raw_connection()
            try:
                mode = raw.cursor().execute("PRAGMA journal_mode=WAL").fetchone()
                log.info("case database journal mode: %s", mode[0] if mode else "?")
            finally:
                raw.close()
        return cls(db)

    @contextmanager
    def _writer(self) -> Iterator[None]:
        if self._one_writer is None:
            yield
            return
        with self._one_writer:
            yield

    def close(self) -> None:
        """Release the database connections."""
        self.db.close()

    # ------------------------------------------------------------------ users

    def _user(self, session: Any, username: str) -> User | None:
        user: User | None = session.scalar(select(User).where(User.username == username))
        return user

    def user(self, username: str) -> Principal | None:
        """The active user named ``username``, as a principal; None when unknown or inactive."""
        with self.db.session() as session:
            user = self._user(session, username)
            return principal_of(user) if user is not None and user.active else None

    def users(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        """A page of users with whether they have a password."""
        with self.db.session() as session:
            total = session.scalar(select(func.count()).select_from(User)) or 0
            rows = session.execute(
                select(User, ApiCredential.user_id).outerjoin(ApiCredential, ApiCredential.user_id == User.id)
                .order_by(User.username).limit(limit).offset(offset)).all()
            return [{"username": u.username, "display_name": u.display_name, "role": u.role, "unit": u.unit,
                     "jurisdiction": u.jurisdiction, "active": u.active, "has_password": cred is not None}
                    for u, cred in rows], total

    # ------------------------------------------------------------------ passwords

    def password_hash(self, username: str) -> str | None:
        """The stored password hash of an active user, or None."""
        with self.db.session() as session:
            row = session.execute(
                select(ApiCredential.password_hash).join(User, User.id == ApiCredential.user_id)
                .where(User.username == username, User.active.is_(True))).first()
            return row[0] if row else None

    def set_password_hash(self, username: str, password_hash: str) -> None:
        """Store a user's password hash (replacing the old one)."""
        with self.db.transaction() as session:
            user = self._user(session, username)
            if user is None:
                raise NotFoundError("user", username)
            credential = session.get(ApiCredential, user.id)
            if credential is None:
                session.add(ApiCredential(user_id=user.id, password_hash=password_hash,
                                          updated_at=datetime.now(UTC)))
            else:
                credential.password_hash = password_hash
                credential.updated_at = datetime.now(UTC)

    # ------------------------------------------------------------------ tokens

    def add_token(self, username: str, *, name: str, kind: str, token_hash: str, prefix: str,
                  expires_at: datetime) -> dict[str, Any]:
        """Store a new token's hash for ``username``; returns the token's listing."""
        with self.db.transaction() as session:
            user = self._user(session, username)
            if user is None or not user.active:
                raise NotFoundError("user", username)
            token = ApiToken(id=secrets.token_hex(8), user_id=user.id, kind=kind, name=name,
                             token_hash=token_hash, prefix=prefix, created_at=datetime.now(UTC),
                             expires_at=expires_at)
            session.add(token)
            session.flush()
            return token_info(token, username)

    def token_principal(self, token_hash: str) -> tuple[Principal, str, datetime] | None:
        """The principal, token id and expiry of a valid (known, unexpired, unrevoked) token."""
        now = datetime.now(UTC)
        with self.db.session() as session:
            row = session.execute(
                select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == token_hash)).first()
            if row is None:
                return None
            token, user = row
            if token.revoked_at is not None or token.expires_at <= now or not user.active:
                return None
            principal, token_id, expires = principal_of(user), token.id, token.expires_at
            stale = token.last_used_at is None or now - token.last_used_at > LAST_USED_EVERY
        if stale:
            with self.db.transaction() as session:
                session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))
        return principal, token_id, expires

    def revoke_token(self, token_id: str, *, owner: str | None) -> dict[str, Any]:
        """Revoke a token (of ``owner`` when given: others' answer NotFound)."""
        with self.db.transaction() as session:
            row = session.execute(select(ApiToken, User).join(User, User.id == ApiToken.user_id)
                                  .where(ApiToken.id == token_id)).first()
            if row is None or (owner is not None and row[1].username != owner):
                raise NotFoundError("token", token_id)
            token, user = row
            if token.revoked_at is None:
                token.revoked_at = datetime.now(UTC)
            return token_info(token, user.username)

    def revoke_sessions(self, username: str) -> int:
        """Revoke every open session of a user (after a password change); returns how many."""
        with self.db.transaction() as session:
            user = self._user(session, username)
            if user is None:
                return 0
            result = session.execute(
                update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.kind == "session",
                                       ApiToken.revoked_at.is_(None)).values(revoked_at=datetime.now(UTC)))
            return int(getattr(result, "rowcount", 0) or 0)

    def list_tokens(self, username: str | None, *, limit: int, offset: int
                    ) -> tuple[list[dict[str, Any]], int]:
        """A page of the tokens of ``username`` (every user's when None), newest first."""
        with self.db.session() as session:
            query = select(ApiToken, User.username).join(User, User.id == ApiToken.user_id)
            count = select(func.count()).select_from(ApiToken).join(User, User.id == ApiToken.user_id)
            if username is not None:
                query = query.where(User.username == username)
                count = count.where(User.username == username)
            total = session.scalar(count) or 0
            rows = session.execute(query.order_by(ApiToken.created_at.desc(), ApiToken.id)
                                   .limit(limit).offset(offset)).all()
            return [token_info(t, name) for t, name in rows], total

    # ------------------------------------------------------------------ case operations

    @staticmethod
    def next_deadlines(ctx: Context, case_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Per case, the earliest due date of its open requests (see :func:`next_deadlines`)."""
        return next_deadlines(ctx, case_ids)

    @staticmethod
    def audit_trail(ctx: Context, case_number: str, *, limit: int, offset: int
                    ) -> tuple[list[dict[str, Any]], int]:
        """A page of a case's audit records (see :func:`audit_trail`)."""
        return audit_trail(ctx, case_number, limit=limit, offset=offset)

    def run(self, principal: Principal, call: CaseCall, work: Callable[[Context], T]) -> T:
        """Run ``work`` as one case operation of ``principal`` and record the call in the audit log.

        ``work`` calls the case layer's services with the operation's context and returns plain values
        (it runs inside the transaction). The call's audit record (``api.<operation id>``, with the
        reason) is written in the same transaction: both are kept, or neither. A refused call (not found,
        not allowed) is recorded as ``api.refused`` in a transaction of its own.
        """
        try:
            with self._writer(), operation(self.db, principal.username) as ctx:
                result = work(ctx)
                ctx.audit(f"api.{call.operation_id}", "api", call.path, case=call.case, reason=call.reason,
                          details=call.details())
                return result
        except (NotFoundError, PermissionDeniedError) as error:
            self._refused(principal, call, error)
            raise

    def _refused(self, principal: Principal, call: CaseCall, error: Exception) -> None:
        status = 404 if isinstance(error, NotFoundError) else 403
        try:
            with self._writer(), operation(self.db, principal.username) as ctx:
                ctx.audit("api.refused", "api", call.path, reason=call.reason,
                          details=call.details(operation=call.operation_id, status=status))
        except Exception:  # the refusal is answered even when its record cannot be written
            log.exception("could not record a refused call to %s", call.path)



class CaseCall:
    """What the audit record of one API call on case data says: the route, the reason, the channel."""

    def __init__(self, operation_id: str, method: str, path: str, via: str, reason: str | None,
                 case: str | None = None) -> None:
        self.operation_id = operation_id
        self.method = method
        self.path = path
        self.via = via
        self.reason = reason
        self.case = case

    def details(self, **extra: Any) -> dict[str, Any]:
        """The audit details: method, path, channel."""
        return {"method": self.method, "path": self.path, "via": self.via, **extra}


OPEN_REQUEST_STATES = ("draft", "approved", "sent", "acknowledged")


def next_deadlines(ctx: Context, case_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per case: the earliest due date (answer due, hold until) of its open requests, and if it is past."""
    from fundtrail.cases.models import LegalRequest

    if not case_ids:
        return {}
    rows = ctx.session.execute(
        select(LegalRequest.case_id, LegalRequest.answer_due, LegalRequest.hold_until)
        .where(LegalRequest.case_id.in_(case_ids), LegalRequest.state.in_(OPEN_REQUEST_STATES))).all()
    today = ctx.now.date()
    out: dict[int, dict[str, Any]] = {}
    for case_id, answer_due, hold_until in rows:
        for due in (answer_due, hold_until):
            if due is None:
                continue
            current = out.get(case_id)
            if current is None or due.isoformat() < current["next_deadline"]:
                out[case_id] = {"next_deadline": due.isoformat(), "overdue": due < today}
    return out


def audit_trail(ctx: Context, case_number: str, *, limit: int, offset: int
                ) -> tuple[list[dict[str, Any]], int]:
    """A page of the audit records of a case, oldest first, and how many there are."""
    from fundtrail.audit.models import AuditRecord

    where = AuditRecord.case_number == case_number
    total = ctx.session.execute(select(func.count()).select_from(AuditRecord).where(where)).scalar_one()
    rows = ctx.session.execute(select(AuditRecord).where(where).order_by(AuditRecord.seq)
                               .limit(limit).offset(offset)).scalars().all()
    return [{"seq": r.seq, "at": r.at, "actor": r.actor, "action": r.action, "object_type": r.object_type,
             "object_id": r.object_id, "case_number": r.case_number, "reason": r.reason,
             "details": r.details} for r in rows], int(total)
