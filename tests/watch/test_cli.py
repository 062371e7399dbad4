"""``fundtrail watch`` and ``fundtrail alerts``: the alert document, and bad input as one line with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fundtrail.cli.main import app

from .conftest import R1, R2, TX, Home, grow

runner = CliRunner()


def run(home: Home, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--home", str(home.path)], env={"FUNDTRAIL_USER": "ivo"})
    return result.exit_code, result.stdout, result.stderr


def test_add_run_and_list_alerts_as_the_design_document(home: Home) -> None:
    code, out, _ = run(
        home, "watch", "add", R1, f"{TX['t2']}:0", "--chain", "btc", "--case", home.case, "--format", "json"
    )
    assert code == 0, out
    assert json.loads(out)["targets"] == [R1, f"{TX['t2']}:0"]
    assert run(home, "watch", "run", "--once")[0] == 0
    with home.store() as store:
        grow(store)
    code, out, _ = run(home, "watch", "run", "--once")
    assert code == 0 and "freeze request" in out
    code, out, _ = run(home, "alerts", "list", "--format", "json")
    docs = json.loads(out)
    assert len(docs) == 5
    for doc in docs:
        assert {"kind", "chain", "txid", "address", "entity", "value", "watch", "case", "at"} <= set(doc)
        assert doc["kind"] in ("moved", "at_service", "sanctioned", "mixer", "bridge")
        assert doc["case"] == home.case and isinstance(doc["value"], str)
    code, out, _ = run(home, "watch", "list", "--format", "json")
    assert [w["id"] for w in json.loads(out)] == [1]
    assert run(home, "watch", "remove", "1")[0] == 0
    assert json.loads(run(home, "watch", "list", "--format", "json")[1]) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["watch", "add", "not-an-address", "--chain", "btc"], "neither a btc address nor an output"),
        (
            ["watch", "add", R2[:-1] + ("q" if R2[-1] != "q" else "p"), "--chain", "btc"],
            "neither a btc address",
        ),
        (["watch", "add", R1, "--chain", "btc", "--case", "EE-2026-0999"], "case"),
        (["watch", "add", R1, "--chain", "nochain"], "nochain"),
        (["watch", "remove", "42"], "watch"),
        (["alerts", "list", "--kind", "lost"], "unknown alert kind"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(home: Home, args: list[str], message: str) -> None:
    code, out, err = run(home, *args)
    assert code == 2, out + err
    assert len(err.strip().splitlines()) == 1 and message in err


def test_a_folder_without_exports_is_refused(home: Home, tmp_path: Path) -> None:
    empty = tmp_path / "exports"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing here")
    code, _, err = run(home, "watch", "run", "--once", "--source", str(empty))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no export files" in err
