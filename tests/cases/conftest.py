"""Fixtures of the case layer: ``case_db`` runs every test on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from fundtrail.cases.db import DATABASE_URL_ENV, CaseDB
from fundtrail.cases.testing import fresh_postgres_schema, postgres_base_url, seed_users, sqlite_templates

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


@pytest.fixture()
def case_db(backend_url: str, home: Path) -> Iterator[CaseDB]:
    """An empty, migrated case database (SQLite, or PostgreSQL when configured)."""
    db = CaseDB.open(home, backend_url, auto_upgrade=True)
    yield db
    db.close()


@pytest.fixture()
def agency_db(case_db: CaseDB, sqlite_template) -> CaseDB:
    """A case database with the agency set and one user per role (admin, ana, ivo, sue, aud, lia)."""
    if case_db.engine.dialect.name == "sqlite":
        case_db.engine.dispose()
        shutil.copyfile(sqlite_template[1], case_db.home / "cases.sqlite")
    else:
        seed_users(case_db)
    return case_db


@pytest.fixture()
def ransom_trace(home: Path, tmp_path: Path) -> dict:
    """The home's chain store holds the small ransomware chain of ``fundtrail.cases.testing``; its trace."""
    from fundtrail.cases.evidence import run_trace
    from fundtrail.cases.testing import RANSOM, ransom_chain
    from fundtrail.store import ChainStore

    with ChainStore.open_home(home) as store:
        ransom_chain(store, tmp_path)
        return run_trace(store, "btc", [RANSOM], {})


@pytest.fixture()
def chain_store(home: Path, ransom_trace: dict):
    """The home's chain store (read-only), holding the ransomware chain."""
    from fundtrail.store import ChainStore

    with ChainStore.open_home(home, read_only=True) as store:
        yield store
