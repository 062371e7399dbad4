"""The case database as the service uses it: users and their credentials, and the case services.

:class:`CaseWork` opens the home's case database (:class:`fundtrail.cases.db.CaseDB`) and offers what
the routes need in the service's terms (principals, token records). Case operations themselves are the
case layer's services, called with the acting user; this module only turns the service's user into a
:class:`~fundtrail.api.access.Principal` and back.

A change (:meth:`CaseWork.run`) is one write transaction with its audit records. A read
(:meth:`CaseWork.read`) runs in a snapshot that takes no write lock, so that reads run side by side;
its audit records are appended by the process's group commit (:class:`fundtrail.audit.batch.GroupCommit`:
the records of every read waiting at that moment in one transaction with one signed tree head), and the
read answers only once they are committed. Case documents are kept per process by case and by the case
data's generation (:mod:`fundtrail.cases.generation`), which any change of case data by any process
moves on, and which the audit records of reads leave as it is; every read still checks the user's role
and reach of the case in its snapshot.

The case read itself (``GET /cases/{number}``, :meth:`CaseWork.read_case`) goes further, as it is the
busiest: what its checks need (the user's role, unit, jurisdiction and whether they are active; the
case's unit, jurisdiction and assignees) and the encoded document are kept by the generation, so that a
read asks the database only for the generation, checks the user's role and reach of the case with the
case layer's rules (:func:`~fundtrail.domain.cases.check_permission`,
:func:`~fundtrail.domain.cases.can_reach_case`) on what the database held at that generation, writes
the same audit records as :func:`fundtrail.cases.cases.show_case` and the call's own through the group
commit, and answers the kept bytes, all without a thread of its own.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select, update

from fundtrail.api.access import Principal
from fundtrail.api.models import ApiCredential, ApiToken
from fundtrail.audit.batch import GroupCommit
from fundtrail.audit.log import Entry
from fundtrail.cases import generation
from fundtrail.cases.context import Context, operation, snapshot_operation
from fundtrail.cases.db import CaseDB
from fundtrail.cases.models import Assignment, Case, User
from fundtrail.domain.cases import Action, CaseNumber, Role, can_reach_case, check_permission
from fundtrail.errors import NotFoundError, PermissionDeniedError

log = logging.getLogger(__name__)

LAST_USED_EVERY = timedelta(minutes=1)
GROUP_PAUSE = 0.001
"""Seconds the audit writer waits after a group when more reads wait, so that the writer of another
worker, waiting for the case database, takes its turn (the lock between processes is not fair)."""
CASE_DOCUMENTS = 512
"""Case documents kept per process (the least recently used go first)."""
T = TypeVar("T")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class _UserFacts:
    """What the checks of a read need of the acting user, as of one generation."""

    id: int
    username: str
    role: str
    unit: str
    jurisdiction: str
    active: bool


@dataclass(frozen=True)
class _CaseFacts:
    """What the checks of a read need of a case, and its encoded document, as of one generation."""

    number: str
    unit: str
    jurisdiction: str
    assigned: frozenset[int]
    body: bytes


_Loaded = tuple[int | None, _UserFacts | None, _CaseFacts | None]
"""A generation and the user's and case's facts read at it."""


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
        self.audit_writer = GroupCommit(db, self._writer, data_generation=generation.current,
                                        pause=GROUP_PAUSE if self._one_writer is not None else 0.0)
        self._documents: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self._documents_guard = threading.Lock()
        self._facts: OrderedDict[tuple[str, str, int], _UserFacts | _CaseFacts] = OrderedDict()
        self._loading: dict[tuple[int, str, str], asyncio.Future[Any]] = {}

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
            if mode and str(mode[0]).lower() == "wal":
                db.checkpoint_apart()  # audit group commits never wait for a checkpoint
        return cls(db)

    @contextmanager
    def _writer(self) -> Iterator[None]:
        if self._one_writer is None:
            yield
            return
        with self._one_writer:
            yield

    def close(self) -> None:
        """Write the audit records still queued, then release the database connections."""
        self.audit_writer.close()
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

    def read(self, principal: Principal, call: CaseCall, work: Callable[[Context], T]) -> T:
        """Run ``work`` as one read of ``principal`` in a snapshot (:func:`snapshot_operation`) and
        return its result once its audit records are committed.

        The records ``work`` makes (``ctx.audit``) and the call's own (``api.<operation id>``, with the
        reason) go to the group commit; when they cannot be written the call fails with that error and
        its result is dropped. ``work`` must not write: the snapshot refuses writes. A refused call is
        recorded as ``api.refused``, as by :meth:`run`.
        """
        try:
            with snapshot_operation(self.db, principal.username) as ctx:
                result = work(ctx)
                entries = ctx.deferred or []
                entries.append(Entry(ctx.actor, f"api.{call.operation_id}", "api", call.path, call.case,
                                     call.reason, call.details(), ctx.now))
        except (NotFoundError, PermissionDeniedError) as error:
            self._refused(principal, call, error)
            raise
        self.audit_writer.commit(entries)
        return result

    def case_document(self, ctx: Context, case: Any) -> dict[str, Any]:
        """The document of ``case`` (:func:`fundtrail.cases.cases.case_doc`), kept between reads while
        the case data's generation stays the same. Only reads keep documents (a change builds it from
        what its own transaction sees). The document is shared: callers must not change it."""
        from fundtrail.cases.cases import case_doc

        if ctx.deferred is None:
            return case_doc(ctx, case)
        current = generation.current(ctx.session)
        if current is None:
            return case_doc(ctx, case)
        key = (case.number, current)
        with self._documents_guard:
            doc = self._documents.get(key)
            if doc is not None:
                self._documents.move_to_end(key)
                return doc
        doc = case_doc(ctx, case)
        with self._documents_guard:
            self._documents[key] = doc
            while len(self._documents) > CASE_DOCUMENTS:
                self._documents.popitem(last=False)
        return doc

    async def read_case(self, principal: Principal, call: CaseCall, number: str, reason: str | None) -> bytes:
        """The document of case ``number`` as JSON (as ``GET /cases/{number}`` answers it), once the audit
        records of the read are committed: ``case.read`` (as :func:`fundtrail.cases.cases.show_case`
        writes it) and the call's own. Refused reads are recorded as by :meth:`run`.

        The user's and the case's facts are those kept for the generation the newest group commit saw
        (or read in a snapshot when none are kept); the records go to the group commit with that
        generation, and are written only if the case data is still at it in the writing transaction.
        When it has moved on, the read is made again in a snapshot and answered once its records are
        written, as every other read is. A refusal on kept facts is confirmed in a snapshot first.
        """
        from starlette.concurrency import run_in_threadpool

        username = principal.username
        try:
            check_permission(username, Role(principal.role), Action.READ_CASE)
            key = str(CaseNumber.parse(number))  # a malformed number is bad input, as in show_case
            seen = self.audit_writer.generation
            user, case = self._kept(username, key, seen)
            fresh = False
            if user is None or case is None:  # one load for every read that misses them at once
                (seen, user, case), fresh = await self._load_once(username, key)
            refusal = _refusal(username, key, user, case)
            if refusal is not None and not fresh:  # kept facts may lag: refuse on what is stored now
                seen, user, case = await run_in_threadpool(self._load_facts, username, key)
                fresh, refusal = True, _refusal(username, key, user, case)
            while True:
                if refusal is not None:
                    raise refusal
                assert user is not None and case is not None
                now = datetime.now(UTC)
                entries = [Entry(user.username, "case.read", "case", case.number, case.number, reason, None,
                                 now),
                           Entry(user.username, f"api.{call.operation_id}", "api", call.path, call.case,
                                 call.reason, call.details(), now)]
                if await self.audit_writer.commit_async(entries, generation=None if fresh else seen):
                    return case.body
                # the case data changed since the kept facts: read again, as a snapshot read
                seen, user, case = await run_in_threadpool(self._load_facts, username, key)
                fresh, refusal = True, _refusal(username, key, user, case)
        except (NotFoundError, PermissionDeniedError) as error:
            await run_in_threadpool(self._refused, principal, call, error)
            raise

    async def _load_once(self, username: str, number: str) -> tuple[_Loaded, bool]:
        """:meth:`_load_facts` in the thread pool, once for all the reads of this event loop that ask at
        the same time; True when this read made the snapshot itself (the others' snapshot may have begun
        before they came, so their records are written only at its generation)."""
        from starlette.concurrency import run_in_threadpool

        loop = asyncio.get_running_loop()
        key = (id(loop), username, number)
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending), False
        loading: asyncio.Future[_Loaded] = loop.create_future()
        self._loading[key] = loading
        try:
            result = await run_in_threadpool(self._load_facts, username, number)
            loading.set_result(result)
            return result, True
        except BaseException as error:
            loading.set_exception(error)
            loading.exception()  # retrieved: waiters, if any, raise it too
            raise
        finally:
            self._loading.pop(key, None)

    def _kept(self, username: str, number: str, current: int | None
              ) -> tuple[_UserFacts | None, _CaseFacts | None]:
        """The user's and the case's facts kept for generation ``current`` (None where none are)."""
        if current is None:
            return None, None
        with self._documents_guard:
            user = self._facts.get(("user", username, current))
            case = self._facts.get(("case", number, current))
        return (user if isinstance(user, _UserFacts) else None,
                case if isinstance(case, _CaseFacts) else None)

    def _load_facts(self, username: str, number: str
                    ) -> tuple[int | None, _UserFacts | None, _CaseFacts | None]:
        """The generation, the user's and the case's facts, read in one snapshot; kept by the generation."""
        from fundtrail.cases.cases import case_doc

        with self.db.snapshot() as session:
            current = generation.current(session)
            user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
            found = session.execute(select(Case).where(Case.number == number)).scalar_one_or_none()
            user_facts = None if user is None else _UserFacts(user.id, user.username, user.role, user.unit,
                                                                user.jurisdiction, user.active)
            case_facts = None
            if found is not None:
                assigned = frozenset(session.execute(
                    select(Assignment.user_id).where(Assignment.case_id == found.id)).scalars())
                ctx = Context(self.db, session, user, datetime.now(UTC), deferred=[])
                case_facts = _CaseFacts(found.number, found.unit, found.jurisdiction, assigned,
                                        _case_json(case_doc(ctx, found)))
        if current is not None:
            with self._documents_guard:
                for kind, name, facts in (("user", username, user_facts), ("case", number, case_facts)):
                    if facts is not None:
                        self._facts[(kind, name, current)] = facts
                while len(self._facts) > 2 * CASE_DOCUMENTS:
                    self._facts.popitem(last=False)
        return current, user_facts, case_facts

    def _refused(self, principal: Principal, call: CaseCall, error: Exception) -> None:
        status = 404 if isinstance(error, NotFoundError) else 403
        try:
            with self._writer(), operation(self.db, principal.username) as ctx:
                ctx.audit("api.refused", "api", call.path, reason=call.reason,
                          details=call.details(operation=call.operation_id, status=status))
        except Exception:  # the refusal is answered even when its record cannot be written
            log.exception("could not record a refused call to %s", call.path)



def _refusal(username: str, number: str, user: _UserFacts | None, case: _CaseFacts | None
             ) -> NotFoundError | PermissionDeniedError | None:
    """Why ``user`` may not read ``case``, by the case layer's rules (as :func:`operation` and
    :meth:`Context.case` decide it); None when they may."""
    if user is None or not user.active:
        return NotFoundError("user", username)
    role = Role(user.role)
    try:
        check_permission(user.username, role, Action.READ_CASE)
    except PermissionDeniedError as error:
        return error
    if case is None or not can_reach_case(role, user.unit, user.jurisdiction, case.unit, case.jurisdiction,
                                          user.id in case.assigned):
        return NotFoundError("case", number)
    return None


def _case_json(doc: dict[str, Any]) -> bytes:
    """``doc`` as the route answers it: validated and dumped by its response model, encoded as
    :class:`~fastapi.responses.JSONResponse` encodes it."""
    from fastapi.responses import JSONResponse
    from pydantic import TypeAdapter

    from fundtrail.api.schemas import CaseDocument

    adapter = TypeAdapter(CaseDocument)
    content = adapter.dump_python(adapter.validate_python(doc, from_attributes=True), mode="json",
                                  by_alias=True)
    return bytes(JSONResponse(content).body)


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
