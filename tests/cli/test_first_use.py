"""What a new user meets first: the demo under any setting, the README's commands, 80-column output."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from fundtrail.cli.main import app
from fundtrail.domain.assets import show_amount
from fundtrail.scenarios.agency import USERS

ROOT = Path(__file__).resolve().parents[2]
DEMO_USERS = {u for u, _, _ in USERS}


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run the CLI in-process with 80 columns."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "80", **(env or {})})


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A small demo home, built with ``FUNDTRAIL_USER`` set to a name the new home does not have yet."""
    home = tmp_path_factory.mktemp("demo") / "home"
    before = os.environ.get("FUNDTRAIL_USER")
    os.environ["FUNDTRAIL_USER"] = "investigator"
    try:
        result = run("demo", "--home", str(home), "--size", "600", "--format", "json")
        assert os.environ.get("FUNDTRAIL_USER") == "investigator"  # given back as it was
    finally:
        if before is None:
            os.environ.pop("FUNDTRAIL_USER", None)
        else:
            os.environ["FUNDTRAIL_USER"] = before
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"], [s for s in doc["steps"] if s["status"] == "failed"]
    yield home


def test_the_demo_ignores_an_outside_fundtrail_user(demo_home: Path) -> None:
    listed = run("case", "list", "--home", str(demo_home), "--as", "investigator", "--format", "json")
    assert [c["title"] for c in json.loads(listed.stdout)] == ["Demo ransomware campaign"]


def test_the_demo_without_the_api_extra_says_which_extra_to_install(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "argon2", None)  # as after `pip install fundtrail` without extras
    result = run("demo", "--home", str(home / "new"), "--size", "600")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: the demo (step 'logins') needs the 'api' extra (argon2 is not installed): "
        "pip install 'fundtrail[api]'"]
    assert not (home / "new").exists()  # checked before anything is built


# ------------------------------------------------------------------------------------------- README


def readme_commands() -> list[list[str]]:
    """The ``fundtrail`` commands of the README's "Everyday use" block, as argument lists."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Everyday use", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        line = line.split(" # ")[0].split(" > ")[0].strip()
        line = re.sub(r"<[^>]+>", lambda m: m.group(0).replace(" ", "_"), line)  # one word per placeholder
        if line.startswith(".venv/bin/fundtrail "):
            commands.append(shlex.split(line)[1:])
    return commands


def test_every_readme_command_parses_and_acts_as_a_demo_user() -> None:
    commands = readme_commands()
    assert len(commands) > 15
    root = typer.main.get_command(app)
    for args in commands:
        if "--as" in args:
            assert args[args.index("--as") + 1] in DEMO_USERS, args
        command, rest, name = root, [re.sub(r"<[^>]+>", "X", a) for a in args], "fundtrail"
        with root.make_context("fundtrail", [], resilient_parsing=True) as parent:
            while hasattr(command, "get_command") and rest and command.get_command(parent, rest[0]):
                name, *rest = rest
                command = command.get_command(parent, name)
            assert name == args[-1 - len(rest)] or not rest, args
            command.make_context(name, rest, parent=parent)  # raises on an unknown option, a missing argument


def test_readme_everyday_commands_run_against_the_demo_home(demo_home: Path, tmp_path: Path) -> None:
    case = json.loads(run("case", "list", "--home", str(demo_home), "--as", "investigator", "--format",
                          "json").stdout)[0]["number"]
    trace = json.loads((demo_home / "reports" / "ransomware-trace.json").read_text())
    places = {"<case>": case, "<address>": trace["seeds"][0], "<address_or_txid:n>": trace["seeds"][0]}
    needs_outside_data = ("ingest", "tags", "sanctions", "serve")
    ran = []
    for args in readme_commands():
        if args[0] in needs_outside_data or (args[0], args[1]) in (("share", "import"), ("watch", "run")):
            continue  # outside data, a partner's package, a node to follow
        if "<request>" in args:
            drafted = json.loads(run("request", "list", "--home", str(demo_home), "--as", "investigator",
                                     "--format", "json").stdout)
            places["<request>"] = [r["number"] for r in drafted if r["state"] == "draft"][-1]
        args = [places.get(a, a) for a in args]
        args = [str(tmp_path / a) if a.endswith((".json", "/")) else a for a in args]
        result = run(*args, "--home", str(demo_home))
        assert result.exit_code == 0, (args, result.output)
        ran.append(" ".join(args[:2]))
    assert {"case open", "case preserve", "request draft", "request approve", "request due",
            "report recovery", "audit verify", "share export"} <= set(ran)


# ---------------------------------------------------------------------------------- 80 columns


def test_amounts_show_their_unit_and_identifiers_are_never_cut_at_80_columns(demo_home: Path) -> None:
    assert show_amount(19_500_000_000, "btc") == "195.00000000 BTC"
    assert show_amount(1_500_000_000_000_000_000, "eth") == "1.500000000000000000 ETH"
    usdt = "0xdac17f958d2ee523a2206206994597c13d831ec7"
    assert show_amount(1_250_500_000, "eth", usdt) == "1,250.500000 USDT"
    assert show_amount(1_234_567, "eth", "0x" + "12" * 20) == "1,234,567 base units"
    home = ["--home", str(demo_home)]
    trace = json.loads((demo_home / "reports" / "ransomware-trace.json").read_text())
    seed = trace["seeds"][0]
    out = run("trace", seed, *home).stdout
    first_column = "".join(line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│"))
    for e in json.loads(run("trace", seed, *home, "--format", "json").stdout)["endpoints"]:
        assert (e["address"] or e["txid"]) in first_column  # folded onto more lines, never shortened
        assert show_amount(int(e["tainted_value"]), "btc") in out
    assert "…" not in out and all(len(line) <= 80 for line in out.splitlines())
    address = run("address", seed, *home).stdout
    assert re.search(r"\d\.\d{8} BTC", address) and "…" not in address
    due = run("request", "due", "--within", "400", *home, "--as", "investigator").stdout
    requests = json.loads(run("request", "list", *home, "--as", "investigator", "--format", "json").stdout)
    for r in requests:
        if r["answer_due"]:
            assert r["number"] in due and str(r["answer_due"]) in due  # whole, on one line
    listed = run("request", "list", *home, "--as", "investigator").stdout
    assert all(r["number"] in listed for r in requests) and "…" not in listed
    ledger = run("ledger", "list", requests[0]["number"].rsplit("-", 1)[0], *home, "--as", "investigator")
    assert re.search(r"\d\.\d{8} BTC", ledger.stdout), ledger.output
    for text in (due, listed, ledger.stdout, address):
        assert all(len(line) <= 80 for line in text.splitlines())


def test_exporting_a_case_with_nothing_shareable_is_one_line_exit_2(demo_home: Path, tmp_path: Path) -> None:
    home = ["--home", str(demo_home)]
    opened = run("case", "open", "--title", "Nothing yet", *home, "--as", "investigator", "--format", "json")
    number = json.loads(opened.stdout)["number"]
    for fmt in ("stix", "ftm", "tagpack"):
        out = tmp_path / f"package.{fmt}"
        result = run("share", "export", number, "--agreement", "demo-partner", "--format", fmt,
                     "-o", str(out), *home, "--as", "investigator")
        assert result.exit_code == 2, result.output
        assert len(result.stderr.strip().splitlines()) == 1 and "holds nothing" in result.stderr
        assert not out.exists()
