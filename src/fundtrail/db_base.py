"""The declarative base of the case database and its shared column types, imported by every layer
that keeps tables there (cases, audit, sharing, api).

The case database is one SQLAlchemy metadata (one Alembic migration chain, ``cases/migrations``), but
each layer owns its tables in its own ``models.py``: ``cases/models.py``, ``audit/models.py``,
``sharing/models.py``, ``api/models.py``. They all build on :class:`Base` here, so that no layer has to
import another one's tables to get the base (the audit layer used to import the case layer for it).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData, String
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from fundtrail.errors import InputError

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps it naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the case database; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Amount(TypeDecorator[int]):
    """An exact non-negative integer of base units, stored as decimal text."""

    impl = String(80)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"amount {value!r} is not an exact integer of base units")
        return str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Base of every case-database model."""

    metadata = MetaData(naming_convention=NAMING)
