"""A write-write conflict in the chain store reaches the user as one line, never as a traceback."""

from __future__ import annotations

import duckdb
import pytest
import typer

from fundtrail.cli.common import handle_errors


def test_a_duckdb_write_conflict_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    @handle_errors
    def command() -> None:
        raise duckdb.TransactionException("TransactionContext Error: Conflict on update!\nmore detail")

    with pytest.raises(typer.Exit) as stopped:
        command()
    assert stopped.value.exit_code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "Conflict on update!" in err and "run it again" in err and "more detail" not in err


def test_other_errors_still_propagate() -> None:
    @handle_errors
    def command() -> None:
        raise duckdb.CatalogException("no such table")

    with pytest.raises(duckdb.CatalogException):
        command()
