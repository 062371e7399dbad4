"""The cooperation tables come from their own migrations, follow the models, and go away cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import fundtrail.api.models  # noqa: F401  (registers the API's tables)
import fundtrail.sharing.models  # noqa: F401  (registers the cooperation tables)
import fundtrail.watch.models  # noqa: F401  (registers the watch tables)
from fundtrail.cases.db import CaseDB, downgrade, upgrade
from fundtrail.cases.models import Base
from fundtrail.cases.testing import fresh_postgres_schema, postgres_base_url

TABLES = {"sharing_agreements", "shared_packages", "shared_objects", "partner_requests", "outbound_requests"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cases.sqlite'}"
        return
    base = postgres_base_url()
    if base is None:
        pytest.skip("PostgreSQL tests need FUNDTRAIL_TEST_POSTGRES_URL")
    with fresh_postgres_schema(base) as schema_url:
        yield schema_url


def test_migrations_create_exactly_the_modelled_tables_and_downgrade(tmp_path: Path, url: str) -> None:
    db = CaseDB.open(tmp_path, url, auto_upgrade=True)
    try:
        assert TABLES <= set(inspect(db.engine).get_table_names())
        with db.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        downgrade(db.engine, "0002_api_credentials")
        assert not TABLES & set(inspect(db.engine).get_table_names())
        upgrade(db.engine)
        assert TABLES <= set(inspect(db.engine).get_table_names())
    finally:
        db.close()
