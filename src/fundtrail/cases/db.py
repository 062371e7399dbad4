"""Opening the case database, running its migrations, and one transaction per operation.

The database is ``HOME/cases.sqlite`` unless ``FUNDTRAIL_DATABASE_URL`` names another (PostgreSQL in
production). Its schema comes only from the Alembic migrations shipped in
``fundtrail/cases/migrations``: :func:`upgrade` runs them (``fundtrail db upgrade``). The embedded
SQLite file is upgraded on first use; a PostgreSQL database that is behind is an error telling to run
``fundtrail db upgrade``, so that production schema changes happen on purpose.

SQLite transactions begin with ``BEGIN IMMEDIATE``: every operation writes (at least its audit
record), so taking the write lock up front avoids two writers deadlocking on a lock upgrade.

:meth:`CaseDB.open_read_only` is the exception, for verification that must change nothing: SQLite is
opened read-only (``mode=ro``, ``query_only``, deferred transactions that take no write lock) and
every PostgreSQL transaction is ``READ ONLY``; it never creates nor upgrades the database.

:meth:`CaseDB.snapshot` is the service's read of case data: a transaction on a second engine that takes
no write lock (SQLite: ``BEGIN DEFERRED`` with ``query_only``, a consistent snapshot in WAL mode beside a
writer; PostgreSQL: ``REPEATABLE READ, READ ONLY``), always rolled back. The audit records of such a
read are written apart, by :mod:`fundtrail.audit.batch`. Every engine tracks the case data's generation
(:mod:`fundtrail.cases.generation`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from fundtrail.cases import generation
from fundtrail.errors import ConflictError, InputError, SourceUnavailableError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DATABASE_URL_ENV = "FUNDTRAIL_DATABASE_URL"


def database_url(home: Path) -> str:
    """``$FUNDTRAIL_DATABASE_URL``, else the SQLite file ``HOME/cases.sqlite``."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    return f"sqlite:///{Path(home).resolve() / 'cases.sqlite'}"


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported as given, it holds no parsed password
        return url.split("@")[-1]


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, a busy timeout and immediate transactions."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        generation.track(engine)
        return engine
    engine = create_engine(url, pool_pre_ping=True)
    generation.track(engine)
    return engine


CHECKPOINT_EVERY = 0.5
"""Seconds between the checkpoints of :meth:`CaseDB.checkpoint_apart`."""

SNAPSHOT_POOL = 16
"""Connections the snapshot engine keeps open (more are opened, and closed again, under load)."""


def _sqlite_reader(engine: Engine, *pragmas: str) -> Engine:
    """Make ``engine``'s SQLite connections readers: ``pragmas`` run on each new connection, and each
    transaction begins DEFERRED (no write lock; its snapshot starts at its first read)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN DEFERRED")

    return engine


def make_snapshot_engine(url: str) -> Engine:
    """An engine for consistent reads beside a writer: no write lock taken, writes refused."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                               pool_size=SNAPSHOT_POOL, max_overflow=4 * SNAPSHOT_POOL)
        return _sqlite_reader(engine, "PRAGMA foreign_keys=ON", "PRAGMA busy_timeout=60000",
                              "PRAGMA query_only=ON")
    engine = create_engine(url, pool_pre_ping=True, pool_size=SNAPSHOT_POOL, max_overflow=SNAPSHOT_POOL)

    @event.listens_for(engine, "begin")
    def _begin_pg(connection: Any) -> None:
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    return engine


def _read_only_sqlite_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    path = parsed.database or ""
    if not path or path == ":memory:":
        raise InputError("a read-only case database needs a database file")
    if not Path(path).is_file():
        raise InputError(f"the case database {path} does not exist")
    return f"sqlite:///file:{Path(path).resolve().as_posix()}?mode=ro&uri=true"


def make_read_only_engine(url: str) -> Engine:
    """An engine for ``url`` that cannot write: a read-only SQLite file, or READ ONLY PostgreSQL."""
    if url.startswith("sqlite"):
        engine = create_engine(_read_only_sqlite_url(url), connect_args={"timeout": 60})
        return _sqlite_reader(engine, "PRAGMA query_only=ON", "PRAGMA busy_timeout=60000")
    engine = create_engine(url, pool_pre_ping=True)

    @event.listens_for(engine, "begin")
    def _begin_pg(connection: Any) -> None:
        connection.exec_driver_sql("SET TRANSACTION READ ONLY")

    return engine


def _alembic_config(connection: Any = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration revision this code ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Run the migrations up to ``revision``; returns (revision before, revision after)."""
    from alembic import command

    before = current_revision(engine)
    with engine.begin() as connection:
        command.upgrade(_alembic_config(connection), revision)
        generation.forget(connection)  # the schema moved on, not the case data
    after = current_revision(engine)
    log.info("case database upgraded from %s to %s", before, after)
    return before, after or ""


def downgrade(engine: Engine, revision: str) -> None:
    """Run the migrations down to ``revision`` (``base`` for an empty database)."""
    from alembic import command

    with engine.begin() as connection:
        command.downgrade(_alembic_config(connection), revision)
        generation.forget(connection)


class CaseDB:
    """The case database: an engine and a session factory."""

    def __init__(self, engine: Engine, home: Path) -> None:
        self.engine = engine
        self.home = Path(home)
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._snapshot_engine: Engine | None = None
        self._snapshots: sessionmaker[Session] | None = None
        self._snapshot_guard = threading.Lock()
        self._checkpointer: tuple[threading.Thread, threading.Event, Callable[..., None]] | None = None

    @classmethod
    def open(cls, home: Path, url: str | None = None, *, auto_upgrade: bool | None = None) -> CaseDB:
        """Open the home's case database, checking (or, for SQLite, bringing) its schema up to date."""
        url = url or database_url(home)
        engine = make_engine(url)
        try:
            current = current_revision(engine)
        except OperationalError as error:
            engine.dispose()
            raise SourceUnavailableError(
                redact(url), f"cannot open the case database: {error.orig}"
            ) from None
        head = head_revision()
        if current != head:
            if auto_upgrade is None:
                auto_upgrade = engine.dialect.name == "sqlite"
            if not auto_upgrade:
                engine.dispose()
                raise InputError(
                    f"the case database {redact(url)} is at revision {current or 'none (empty)'}, "
                    f"this version needs {head}: run `fundtrail db upgrade`"
                )
            upgrade(engine)
        return cls(engine, home)

    @classmethod
    def open_read_only(cls, home: Path, url: str | None = None) -> CaseDB:
        """Open the home's case database for reading only: nothing is created, upgraded or written."""
        url = url or database_url(home)
        engine = make_read_only_engine(url)
        try:
            current = current_revision(engine)
        except OperationalError as error:
            engine.dispose()
            raise SourceUnavailableError(
                redact(url), f"cannot open the case database: {error.orig}"
            ) from None
        if current != head_revision():
            engine.dispose()
            raise InputError(
                f"the case database {redact(url)} is at revision {current or 'none (empty)'}, this "
                f"version needs {head_revision()}: run `fundtrail db upgrade` first (reading never upgrades)"
            )
        return cls(engine, home)

    def session(self) -> Session:
        """A new session (the caller manages its transaction)."""
        return self._sessions()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """One transaction that is always rolled back: for reads that must leave no trace."""
        session = self._sessions()
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """One read-only transaction that takes no write lock and is always rolled back (see above)."""
        sessions = self._snapshots
        if sessions is None:
            with self._snapshot_guard:
                if self._snapshots is None:
                    url = self.engine.url.render_as_string(hide_password=False)
                    self._snapshot_engine = make_snapshot_engine(url)
                    self._snapshots = sessionmaker(self._snapshot_engine, expire_on_commit=False)
                sessions = self._snapshots
        session = sessions()
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back (nothing written) on any error."""
        session = self._sessions()
        try:
            with session.begin():
                yield session
        except StaleDataError:
            raise ConflictError(
                "the record was changed by someone else meanwhile; reload it and try again"
            ) from None
        except SAIntegrityError as error:
            raise ConflictError(f"conflicting write: {error.orig}") from None
        finally:
            session.close()

    def checkpoint_apart(self, every: float = CHECKPOINT_EVERY) -> None:
        """SQLite in WAL mode: copy the log into the database file from a thread of its own, every
        ``every`` seconds, instead of in whichever commit grows the log past its threshold. A commit
        then never waits for that copy and its sync while it holds the write lock (and the writers of
        other processes wait for it); a passive checkpoint takes no lock that readers or writers wait
        for. Other processes (the CLI) still checkpoint as they commit."""
        if self.engine.dialect.name != "sqlite" or self._checkpointer is not None:
            return
        path = self.engine.url.database
        if not path or path == ":memory:":
            return

        def _no_autocheckpoint(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

        event.listen(self.engine, "connect", _no_autocheckpoint)
        self.engine.dispose()  # connections made before keep checkpointing at commit: open new ones
        stop = threading.Event()

        def run() -> None:
            import sqlite3

            connection = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
            try:
                while not stop.wait(every):
                    try:
                        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    except sqlite3.Error as error:  # the next round tries again
                        log.warning("checkpoint of the case database failed: %s", error)
            finally:
                connection.close()

        thread = threading.Thread(target=run, name="fundtrail-checkpoint", daemon=True)
        self._checkpointer = (thread, stop, _no_autocheckpoint)
        thread.start()

    def close(self) -> None:
        """Release the engines' connections (and stop the checkpoint thread)."""
        if self._checkpointer is not None:  # commits checkpoint again (an engine opens connections anew)
            thread, stop, listener = self._checkpointer
            stop.set()
            thread.join()
            event.remove(self.engine, "connect", listener)
            self._checkpointer = None
        self.engine.dispose()
        if self._snapshot_engine is not None:
            self._snapshot_engine.dispose()

    def __enter__(self) -> CaseDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ping(engine: Engine) -> None:
    """Run a trivial query (connectivity check)."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
