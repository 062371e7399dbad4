"""Shared fixtures: the real data folder, temporary homes and stores, and a CLI runner."""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from typer.testing import CliRunner

from fundtrail.cases.db import DATABASE_URL_ENV, CaseDB
from fundtrail.cases.testing import fresh_postgres_schema, postgres_base_url, seed_users, sqlite_templates
from fundtrail.store import ChainStore

ROOT = Path(__file__).resolve().parents[1]

# Property tests explore new random examples on every local run; CI (HYPOTHESIS_PROFILE=ci) runs a fixed,
# reproducible set so that its verdict depends on the code alone.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _shared_data() -> Path:
    env = os.environ.get("FUNDTRAIL_SHARED_DATA")
    if env:
        return Path(env)
    for candidate in (ROOT.parent / "shared" / "data", ROOT / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return ROOT.parent / "shared" / "data"


SHARED_DATA = _shared_data()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data set (../shared/data); CI always has it, so a missing folder fails there."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real data folder {SHARED_DATA} is missing")
        pytest.skip(f"real data folder {SHARED_DATA} is missing")
    return SHARED_DATA


@pytest.fixture()
def store() -> Iterator[ChainStore]:
    """An empty in-memory chain store."""
    s = ChainStore(":memory:")
    yield s
    s.close()


@pytest.fixture()
def home(tmp_path: Path) -> Path:
    """An empty FundTrail home directory."""
    h = tmp_path / "home"
    h.mkdir()
    return h


@pytest.fixture()
def cli():
    """Run the ``fundtrail`` CLI in-process: ``cli("address", "1A...", "--home", str(home))``."""
    from fundtrail.cli.main import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return invoke


# ------------------------------------------------------------------------------------------------
# The case database: every test that asks for it runs on SQLite and, when configured, PostgreSQL

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> tuple[Path, Path]:
    """Migrated SQLite databases (empty, seeded), made once per session and copied by each test."""
    return sqlite_templates(tmp_path_factory.mktemp("case-db-templates"))  # type: ignore[return-value]


@pytest.fixture(params=BACKENDS)
def backend_url(request, home: Path, monkeypatch, sqlite_template) -> Iterator[str]:
    """The case database URL of the test: HOME/cases.sqlite, or a fresh PostgreSQL schema.

    Sets ``FUNDTRAIL_DATABASE_URL`` accordingly, so that CLI commands run with ``--home`` use it too.
    """
    if request.param == "sqlite":
        monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
        shutil.copyfile(sqlite_template[0], home / "cases.sqlite")
        yield f"sqlite:///{home / 'cases.sqlite'}"
        return
    base = postgres_base_url()
    if base is None:
        pytest.skip("PostgreSQL tests need FUNDTRAIL_TEST_POSTGRES_URL")
    with fresh_postgres_schema(base) as url:
        monkeypatch.setenv(DATABASE_URL_ENV, url)
        yield url


@pytest.fixture(scope="session")
def postgres_migration_sql(tmp_path_factory) -> str | None:
    """The migrations up to head as one PostgreSQL script (alembic's offline mode), so that each test's
    fresh schema is brought up to date in one round trip instead of running every migration again.

    It is used only when a schema made with it is the same, table for table, column for column,
    constraint for constraint, index for index and row for row, as a schema migrated the ordinary
    way; otherwise (None) the tests migrate each schema themselves.
    """
    import io

    from alembic import command

    from fundtrail.cases.db import _alembic_config

    base = postgres_base_url()
    if base is None:
        return None
    out = io.StringIO()
    config = _alembic_config()
    config.output_buffer = out
    config.set_main_option("sqlalchemy.url", base)
    command.upgrade(config, "head", sql=True)
    script = out.getvalue()
    home = tmp_path_factory.mktemp("postgres-migration-check")
    with fresh_postgres_schema(base) as migrated, fresh_postgres_schema(base) as replayed:
        CaseDB.open(home, migrated, auto_upgrade=True).close()
        _run_script(replayed, script)
        same = _postgres_catalog(migrated) == _postgres_catalog(replayed)
    return script if same else None


def _run_script(url: str, script: str) -> None:
    """Run an SQL script that has its own BEGIN and COMMIT."""
    from sqlalchemy import create_engine

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(script)
    finally:
        engine.dispose()


_CATALOG_QUERIES = {
    "columns": """SELECT table_name, column_name, ordinal_position, data_type, character_maximum_length,
                         numeric_precision, numeric_scale, is_nullable, column_default, is_identity
                  FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, 3""",
    "constraints": """SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
                      FROM pg_constraint WHERE connamespace = current_schema()::regnamespace ORDER BY 1, 2""",
    "indexes": """SELECT tablename, indexname, indexdef FROM pg_indexes
                  WHERE schemaname = current_schema() ORDER BY 1, 2""",
    "sequences": """SELECT sequence_name, data_type, start_value, increment FROM information_schema.sequences
                    WHERE sequence_schema = current_schema() ORDER BY 1""",
    "triggers": """SELECT event_object_table, trigger_name, event_manipulation, action_statement
                   FROM information_schema.triggers WHERE trigger_schema = current_schema()
                   ORDER BY 1, 2, 3""",
}


def _postgres_catalog(url: str) -> dict[str, list]:
    """What a schema holds: tables, columns, constraints, indexes, sequences and every row."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()

            def rows(sql: str) -> list:
                return [tuple(str(v).replace(f'"{schema}".', "").replace(f"{schema}.", "") for v in row)
                        for row in conn.execute(text(sql))]

            out = {name: rows(sql) for name, sql in _CATALOG_QUERIES.items()}
            for (table,) in rows("SELECT table_name FROM information_schema.tables "
                                 "WHERE table_schema = current_schema() ORDER BY 1"):
                out[f"rows of {table}"] = rows(f'SELECT * FROM "{table}" ORDER BY 1')
            return out
    finally:
        engine.dispose()


@pytest.fixture()
def case_db(backend_url: str, home: Path, request) -> Iterator[CaseDB]:
    """An empty, migrated case database (SQLite, or PostgreSQL when configured)."""
    if backend_url.startswith("postgresql"):
        script = request.getfixturevalue("postgres_migration_sql")
        if script is not None:
            _run_script(backend_url, script)
    db = CaseDB.open(home, backend_url, auto_upgrade=True)
    yield db
    db.close()


@pytest.fixture()
def agency_db(case_db: CaseDB, sqlite_template) -> CaseDB:
    """A case database with the agency set and one user per role (admin, ana, ivo, sue, aud, lia)."""
    if case_db.engine.dialect.name == "sqlite":
        case_db.engine.dispose()
        shutil.copyfile(sqlite_template[1], case_db.home / "cases.sqlite")
        # the seeded log's tree heads are signed by the template home's key: the copy trusts it too
        shutil.copytree(sqlite_template[1].parent / "keys", case_db.home / "keys", dirs_exist_ok=True)
    else:
        seed_users(case_db)
    return case_db


def pytest_collection_finish(session) -> None:
    """Move what exists once the tests are collected (the modules of every layer, the test items) out of
    the garbage collector's reach: it all lives until the end of the run, and each full collection during
    the tests would otherwise walk through it again."""
    gc.collect()
    gc.freeze()
