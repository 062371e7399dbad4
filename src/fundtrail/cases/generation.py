"""The case data's generation: one counter that every committed change of case data moves on.

Readers that keep what they built from case data (the service keeps case documents per worker) key it
by the generation they read in the same snapshot, so that a change by any process (another worker, the
CLI, an ingest) is seen by the next read. The counter lives in the case database (``case_data_generation``,
one row) and is raised in the committing transaction itself, so a snapshot that sees a change also sees
the raised counter.

Every engine made by :func:`fundtrail.cases.db.make_engine` is tracked (:func:`track`): a statement
that inserts, updates or deletes rows of a table not in :data:`UNTRACKED` marks its transaction, and a
marked transaction raises the counter just before it commits. The audit log's own tables are untracked,
so that the audit records every read appends do not count as changes; so are the API's tokens (their
last use is noted as they are checked) and the watcher's cursors.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Engine, Integer, event, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from fundtrail.db_base import Base

TABLE = "case_data_generation"

UNTRACKED = frozenset({
    TABLE, "audit_records", "audit_head", "audit_tree_heads", "audit_cosignatures", "audit_witnessed_heads",
    "api_tokens", "api_credentials", "watch_cursors", "alembic_version",
})
"""Tables whose changes leave the generation as it is (no case document shows them)."""

_CHANGED = "fundtrail.case_data_changed"
_READS = frozenset({"SELECT", "PRAGMA", "BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK", "COMMIT", "SET",
                    "SHOW", "EXPLAIN", "WITH"})
_WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
_DML = re.compile(r"""\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?"""
                  r"""|DELETE\s+FROM)\s+(?:ONLY\s+)?["`\[]?(?:\w+["`\]]?\.["`\[]?)?(\w+)""", re.IGNORECASE)


class CaseDataGeneration(Base):
    """The one row holding the case data's generation."""

    __tablename__ = TABLE

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(Integer, nullable=False)


def changes_case_data(statement: str) -> bool:
    """True when ``statement`` may change case data (a write to a tracked table, or DDL)."""
    words = statement.lstrip().split(None, 1)
    if not words:
        return False
    first = words[0].upper()
    if first in _READS:
        # a WITH ... INSERT/UPDATE/DELETE writes: judged by its DML
        return first == "WITH" and _WRITES.search(statement) is not None
    match = _DML.match(statement)
    return match is None or match.group(1).lower() not in UNTRACKED  # unknown statements count as changes


def track(engine: Engine) -> None:
    """Raise the generation in every transaction on ``engine`` that changes case data, as it commits."""

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.info.pop(_CHANGED, None)

    @event.listens_for(engine, "before_cursor_execute")
    def _statement(connection: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                   executemany: bool) -> None:
        if _CHANGED not in connection.info and changes_case_data(statement):
            connection.info[_CHANGED] = True

    @event.listens_for(engine, "commit")
    def _commit(connection: Any) -> None:
        if connection.info.pop(_CHANGED, None):
            _raise(connection, engine.dialect.name)

    @event.listens_for(engine, "rollback")
    def _rollback(connection: Any) -> None:
        connection.info.pop(_CHANGED, None)


def forget(connection: Any) -> None:
    """Leave the generation as it is when ``connection``'s transaction commits (schema migrations)."""
    connection.info.pop(_CHANGED, None)


def _raise(connection: Any, dialect: str) -> None:
    # On the DBAPI connection itself, inside the transaction about to commit (not seen by the listeners).
    cursor = connection.connection.dbapi_connection.cursor()
    try:
        if dialect == "sqlite":
            cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,))
        else:
            cursor.execute(f"SELECT 1 WHERE to_regclass('{TABLE}') IS NOT NULL")
        if cursor.fetchone() is None:  # a database before the counter's migration (or while migrating)
            return
        cursor.execute(f"UPDATE {TABLE} SET generation = generation + 1 WHERE id = 1")
    finally:
        cursor.close()


def current(session: Session) -> int | None:
    """The generation as ``session``'s transaction sees it (None when the database has no counter)."""
    value = session.execute(text(f"SELECT generation FROM {TABLE} WHERE id = 1")).scalar_one_or_none()
    return None if value is None else int(value)
