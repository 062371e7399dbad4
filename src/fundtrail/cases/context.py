"""The context of one case operation: one transaction, the acting user, the clock, the audit log.

Every service of the case layer takes a :class:`Context`. :func:`operation` opens it: one database
transaction, committed when the operation ends and rolled back (nothing written) when it fails, with
the acting user resolved by username. Every read and write of case data appends to the audit log
through :meth:`Context.audit`, in the same transaction.

:func:`snapshot_operation` is the service's read of case data: a snapshot transaction (no write lock,
always rolled back) whose audit records are kept in :attr:`Context.deferred` instead, for the caller to
append and commit before it discloses anything (:mod:`fundtrail.audit.batch`).

:func:`open_reading` is the one exception: a context over a read-only database connection, whose
transaction is always rolled back, that never appends to the audit log, never signs and never makes
the agency key. Only verification uses it (see :func:`fundtrail.cases.evidence.verify_evidence`): a
check that wrote would change what it checks.
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fundtrail.audit import log as audit_log
from fundtrail.audit.keys import AgencyKey, load_or_create
from fundtrail.cases.db import CaseDB
from fundtrail.cases.models import Assignment, Case, User
from fundtrail.domain.cases import Action, CaseNumber, Role, can_reach_case, check_permission
from fundtrail.errors import InputError, IntegrityError, NotFoundError

USER_ENV = "FUNDTRAIL_USER"


class CaseLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger with the case number bound: every message starts with it."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{self.extra['case'] if self.extra else '-'}] {msg}", kwargs


def case_logger(name: str, number: str) -> CaseLogger:
    """The logger ``name`` with ``number`` bound."""
    return CaseLogger(logging.getLogger(name), {"case": number})


def system_actor() -> str:
    """The actor recorded for operations run without a case-database user (the operating-system user)."""
    try:
        return f"system:{getpass.getuser()}"
    except (KeyError, OSError):
        return "system"


@dataclass
class Context:
    """One operation: its session (transaction), acting user, time, home and signing key."""

    db: CaseDB
    session: Session
    user: User | None
    now: datetime
    _key: AgencyKey | None = field(default=None, repr=False)
    written: list[Path] = field(default_factory=list)
    """Files and folders the operation wrote; removed when its transaction does not commit."""
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    """What to do once the transaction has committed (e.g. remove files of deleted records)."""
    read_only: bool = False
    """A verification context: nothing may be written, audited or signed."""
    deferred: list[audit_log.Entry] | None = None
    """A snapshot read's audit records, kept for the caller to commit (None: appended in the transaction)."""

    def discard_written(self) -> None:
        """Remove what the operation wrote (its transaction was rolled back)."""
        for path in reversed(self.written):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.written.clear()

    @property
    def home(self) -> Path:
        """The FundTrail home (evidence, keys, templates)."""
        return self.db.home

    @property
    def key(self) -> AgencyKey:
        """The agency's signing key (created on first use; never in a read-only context)."""
        if self.read_only:
            raise IntegrityError("a read-only operation does not use the agency's signing key")
        if self._key is None:
            self._key = load_or_create(self.home)
        return self._key

    @property
    def actor(self) -> str:
        """Who is acting, as the audit log records it."""
        return self.user.username if self.user is not None else system_actor()

    @property
    def role(self) -> Role:
        """The acting user's role."""
        return Role(self.acting_user.role)

    @property
    def acting_user(self) -> User:
        """The acting user; InputError when the operation runs without one."""
        if self.user is None:
            raise InputError(f"no acting user: pass --as USERNAME or set {USER_ENV}")
        return self.user

    def require(self, action: Action) -> User:
        """The acting user, when their role allows ``action``; PermissionDeniedError otherwise."""
        user = self.acting_user
        check_permission(user.username, Role(user.role), action)
        return user

    def audit(
        self,
        action: str,
        object_type: str,
        object_id: str | int | None = None,
        *,
        case: str | None = None,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Append an audit record for this operation (same transaction; a snapshot read keeps it in
        :attr:`deferred` for its caller to commit)."""
        if self.deferred is not None:
            self.deferred.append(audit_log.Entry(self.actor, action, object_type, object_id, case, reason,
                                                 details, self.now))
            return
        if self.read_only:
            raise IntegrityError(f"a read-only operation cannot append to the audit log ({action})")
        audit_log.append(
            self.session,
            self.actor,
            action,
            object_type,
            object_id,
            case_number=case,
            reason=reason,
            details=details,
            at=self.now,
            key=self.key,
        )

    def case(self, number: str, action: Action = Action.READ_CASE) -> Case:
        """The case ``number`` when the acting user may do ``action`` on it.

        A case out of the user's reach is reported exactly as one that does not exist.
        """
        user = self.require(action)
        key = str(CaseNumber.parse(number))
        case = self.session.execute(select(Case).where(Case.number == key)).scalar_one_or_none()
        if case is None:
            raise NotFoundError("case", key)
        assigned = any(a.user_id == user.id for a in case.assignments)
        if not can_reach_case(
            Role(user.role), user.unit, user.jurisdiction, case.unit, case.jurisdiction, assigned
        ):
            raise NotFoundError("case", key)
        return case

    def user_named(self, username: str) -> User:
        """The user ``username``; NotFoundError otherwise."""
        found = self.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if found is None:
            raise NotFoundError("user", username)
        return found

    def is_assigned(self, case: Case, user: User) -> bool:
        """True when ``user`` is assigned to ``case``."""
        return (
            self.session.execute(
                select(Assignment.id).where(Assignment.case_id == case.id, Assignment.user_id == user.id)
            ).first()
            is not None
        )


def acting_username(given: str | None) -> str | None:
    """The acting user: ``given`` (``--as``), else ``$FUNDTRAIL_USER``, else None."""
    name = given or os.environ.get(USER_ENV)
    return name.strip() if name and name.strip() else None


@contextmanager
def operation(
    db: CaseDB, username: str | None, *, now: datetime | None = None, user_required: bool = True
) -> Iterator[Context]:
    """One operation as ``username``: a transaction, committed at the end, rolled back on error."""
    ctx: Context | None = None
    try:
        with db.transaction() as session:
            user = None
            name = acting_username(username)
            if name is not None:
                user = session.execute(select(User).where(User.username == name)).scalar_one_or_none()
                if user is None or not user.active:
                    raise NotFoundError("user", name)
            elif user_required:
                raise InputError(f"no acting user: pass --as USERNAME or set {USER_ENV}")
            ctx = Context(db, session, user, now or datetime.now(UTC))
            yield ctx
    except BaseException:
        if ctx is not None:
            ctx.discard_written()
        raise
    for action in ctx.after_commit:
        action()


@contextmanager
def snapshot_operation(db: CaseDB, username: str, *, now: datetime | None = None) -> Iterator[Context]:
    """A read as ``username`` in a snapshot of the case database (:meth:`CaseDB.snapshot`): it takes no
    write lock and writes nothing; its audit records are left in :attr:`Context.deferred`, which the
    caller must commit before it discloses what the read found."""
    with db.snapshot() as session:
        user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None or not user.active:
            raise NotFoundError("user", username)
        yield Context(db, session, user, now or datetime.now(UTC), deferred=[])


@contextmanager
def open_operation(
    home: Path, username: str | None, *, now: datetime | None = None, user_required: bool = True
) -> Iterator[Context]:
    """Open the home's case database and run one operation on it."""
    db = CaseDB.open(home)
    try:
        with operation(db, username, now=now, user_required=user_required) as ctx:
            yield ctx
    finally:
        db.close()


@contextmanager
def open_reading(home: Path, username: str | None, *, now: datetime | None = None) -> Iterator[Context]:
    """A read-only operation as ``username`` on the home's case database: nothing is written.

    The database is opened read-only and the transaction rolled back at the end; the context refuses
    to audit or sign. For verification only: every other read of case data is audited.
    """
    db = CaseDB.open_read_only(home)
    try:
        with db.reading() as session:
            user = None
            name = acting_username(username)
            if name is None:
                raise InputError(f"no acting user: pass --as USERNAME or set {USER_ENV}")
            user = session.execute(select(User).where(User.username == name)).scalar_one_or_none()
            if user is None or not user.active:
                raise NotFoundError("user", name)
            yield Context(db, session, user, now or datetime.now(UTC), read_only=True)
    finally:
        db.close()
