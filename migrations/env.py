"""Alembic environment for ``alembic`` run from the repository root: the one shipped in the package.

The revisions live in ``src/fundtrail/cases/migrations/versions`` (``versions`` here links there) so
that the installed package can run them too (``fundtrail db upgrade``).
"""

import runpy
from pathlib import Path

runpy.run_path(
    str(Path(__file__).resolve().parents[1] / "src" / "fundtrail" / "cases" / "migrations" / "env.py"),
    run_name="__alembic_env__",
)
