"""Fixtures of the audit tests: ``case_db`` on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from fundtrail.cases.db import DATABASE_URL_ENV, CaseDB
from fundtrail.cases.testing import fresh_postgres_schema, postgres_base_url, seed_users, sqlite_templates


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> tuple[Path, Path]:
    """Migrated SQLite databases (empty, seeded), made once per session and copied by each test."""
    return sqlite_templates(tmp_path_factory.mktemp("case-db-templates"))  # type: ignore[return-value]


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def backend_url(request, home: Path, monkeypatch, sqlite_template) -> Iterator[str]:
    """HOME/cases.sqlite, or a fresh PostgreSQL schema (FUNDTRAIL_DATABASE_URL set for the CLI)."""
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
    """An empty, migrated case database."""
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
