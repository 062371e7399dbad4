"""domain/ holds pure rules: it may not import anything that does I/O."""

from __future__ import annotations

import ast
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "src" / "fundtrail" / "domain"

FORBIDDEN = {
    "duckdb", "sqlalchemy", "fastapi", "httpx", "requests", "pyspark", "socket", "sqlite3", "urllib",
    "subprocess", "os", "pathlib", "shutil", "io", "tempfile", "http", "psycopg", "pyarrow", "alembic",
    "uvicorn", "yaml", "bagit", "docx", "reportlab", "matplotlib", "typer", "rich",
}
ALLOWED_FUNDTRAIL = ("fundtrail.domain", "fundtrail.errors")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_domain_modules_do_no_io() -> None:
    offenders = []
    for path in sorted(DOMAIN.rglob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if top in FORBIDDEN:
                offenders.append(f"{path.name}: {name}")
            if top == "fundtrail" and not name.startswith(ALLOWED_FUNDTRAIL):
                offenders.append(f"{path.name}: {name} (domain may only import domain and errors)")
    assert offenders == []


def test_purity_check_catches_an_io_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import duckdb\nfrom fundtrail.store import ChainStore\n")
    assert _imports(bad) == ["duckdb", "fundtrail.store"]
