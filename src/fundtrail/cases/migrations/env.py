"""Alembic environment of the case database.

Run programmatically by :func:`fundtrail.cases.db.upgrade` (which passes an open connection in
``config.attributes["connection"]``), or by ``alembic`` with the repository's ``alembic.ini``; then the
database is ``-x url=...``, else ``$FUNDTRAIL_DATABASE_URL``, else ``sqlalchemy.url`` of the ini file.
"""

from __future__ import annotations

import os

from alembic import context

import fundtrail.api.models
import fundtrail.audit.models
import fundtrail.sharing.models
import fundtrail.watch.models  # noqa: F401  (with the three above: every layer's tables join the metadata)
from fundtrail.db_base import Base

# Every layer keeps its tables in its own models module on the one declarative Base (fundtrail.db_base),
# with its migrations in this same chain. This environment is the schema's composition root: Alembic runs
# it as a script (it is not part of the package's import graph), and it imports every layer's tables so
# that autogenerate compares the whole schema.
MODEL_MODULES = ("fundtrail.api.models", "fundtrail.audit.models", "fundtrail.sharing.models",
                 "fundtrail.watch.models")

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("FUNDTRAIL_DATABASE_URL")
    url = url or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database: pass -x url=..., set FUNDTRAIL_DATABASE_URL, or sqlalchemy.url")
    return url


def run_offline() -> None:
    """Emit the SQL instead of running it (``alembic upgrade head --sql``)."""
    url = _url()
    context.configure(
        url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=url.startswith("sqlite")
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run the migrations on a connection (given, or made from the URL)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    from fundtrail.cases.db import make_engine

    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            context.configure(
                connection=conn,
                target_metadata=target_metadata,
                render_as_batch=conn.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
