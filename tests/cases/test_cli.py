"""The case commands' contract: JSON on stdout, one line on stderr and exit 2 for bad input, unknown
objects or forbidden actions, exit 1 for tampered evidence; nothing half-written."""

from __future__ import annotations

import json

import pytest

from fundtrail.cases.testing import RANSOM


@pytest.fixture()
def run(cli, home, agency_db):
    """``run(*args, as_=user, code=0)`` on a home with the agency and one user per role."""

    def invoke(*args: str, as_: str | None = "ivo", code: int = 0):
        argv = [*args, "--home", str(home)] + (["--as", as_] if as_ else [])
        result = cli(*argv)
        assert result.exit_code == code, (argv, result.stdout, result.stderr)
        if code == 0 and "--format" in args:
            return json.loads(result.stdout)
        if code:
            assert result.stdout == "" and len(result.stderr.strip().splitlines()) >= 1
        return result

    return invoke


def test_bad_input_unknown_objects_and_forbidden_actions_exit_2_with_one_line(run) -> None:
    number = run("case", "open", "--title", "T", "--format", "json")["number"]
    for args, as_, message in [
        (("case", "show", "EE-2026-9999"), "ivo", "case 'EE-2026-9999' not found"),
        (("case", "show", "not-a-number"), "ivo", "is not a case number"),
        (("case", "show", number), None, "no acting user: pass --as USERNAME or set FUNDTRAIL_USER"),
        (("case", "show", number), "nobody", "user 'nobody' not found"),
        (("case", "open", "--title", "T"), "ana", "may not case.open"),
        (("case", "add-task", number, "x", "--due", "tomorrow"), "ivo", "--due: 'tomorrow' is not a date"),
        (("case", "add-subject", number, "xyz", "--chain", "btc"), "ivo", "not a valid btc address"),
        (("case", "edit", number, "--title", "New", "--version", "7"), "ivo", "is at version"),
        (("case", "close", number, "--reason", "done"), "ivo", "may not case.close"),
        (("request", "approve", "EE-2026-0001-R09"), "sue", "request 'EE-2026-0001-R09' not found"),
        (("request", "draft", number, "--type", "bail", "--to", "X"), "ivo", "unknown request type 'bail'"),
        (("ledger", "add", number, "--kind", "frozen", "--amount", "5"), "ivo", "needs its legal basis"),
        (("evidence", "show", "EE-2026-0001-E005"), "ivo", "not found"),
        (
            ("user", "add", "eve", "--name", "Eve", "--role", "admin", "--unit", "U", "--jurisdiction", "EE"),
            "ivo",
            "may not users.manage",
        ),
        (("audit", "log"), "ivo", "may not audit.read"),
    ]:
        result = run(*args, as_=as_, code=2)
        assert message in result.stderr, (args, result.stderr)


def test_list_items_carry_the_number_and_show_is_one_document(run) -> None:
    first = run("case", "open", "--title", "One", "--format", "json")
    second = run("case", "open", "--title", "Two", "--severity", "critical", "--format", "json")
    listed = run("case", "list", "--format", "json", as_="sue")
    assert [c["number"] for c in listed] == [second["number"], first["number"]]
    shown = run("case", "show", first["number"], "--format", "json")
    assert shown["number"] == first["number"] and shown["assignees"][0]["username"] == "ivo"
    assert first["number"] in run("case", "list", as_="sue").stdout


def test_tampered_evidence_exits_1_naming_the_file(run, home, ransom_trace, tmp_path) -> None:
    number = run("case", "open", "--title", "T", "--format", "json")["number"]
    ev = run("case", "preserve", number, "--trace-seed", RANSOM, "--chain", "btc", "--format", "json")
    assert ev["trace_sha256"]
    run("evidence", "verify", ev["id"], as_="ana")
    target = home / "evidence" / ev["id"] / "data" / "trace.json"
    target.write_text(target.read_text().replace("haircut", "poison"))
    result = run("evidence", "verify", ev["id"], as_="ana", code=1)
    assert "data/trace.json: sha256 expected" in result.stderr
    shown = run("evidence", "show", ev["id"], "--format", "json", as_="ana")
    assert [c["event"] for c in shown["custody"]] == ["created", "viewed"]  # verifying records nothing
    assert (
        "does not verify"
        in run(
            "evidence", "export", ev["id"], "--out", str(tmp_path), "--reason", "x", as_="lia", code=1
        ).stderr
    )


def test_export_and_verify_package(run, ransom_trace, tmp_path) -> None:
    number = run("case", "open", "--title", "T", "--format", "json")["number"]
    ev = run("case", "preserve", number, "--trace-seed", RANSOM, "--format", "json")
    out = run(
        "evidence",
        "export",
        ev["id"],
        "--out",
        str(tmp_path / "x"),
        "--reason",
        "MLA",
        "--to",
        "FR",
        "--format",
        "json",
        as_="lia",
    )
    assert run("evidence", "verify-package", out["path"], "--format", "json", as_=None)["ok"] is True
    amended = run(
        "evidence", "amend", ev["id"], "--reason", "title", "--title", "Exhibit 4", "--format", "json"
    )
    assert amended["id"].endswith("-v2") and amended["supersedes"] == ev["id"]


def test_preserve_needs_exactly_one_source(run) -> None:
    number = run("case", "open", "--title", "T", "--format", "json")["number"]
    assert "either --trace-seed" in run("case", "preserve", number, code=2).stderr


def test_db_and_user_commands(cli, home, case_db, tmp_path) -> None:
    def go(*args: str, code: int = 0):
        result = cli(*args, "--home", str(home))
        assert result.exit_code == code, result.stderr
        return result

    current = json.loads(go("db", "current", "--format", "json").stdout)
    assert current["up_to_date"] is True and current["revision"] == current["head"]
    assert "agency not set" in go("db", "agency").stdout
    assert (
        "first user must be an admin"
        in go(
            "user",
            "add",
            "ivo",
            "--name",
            "I",
            "--role",
            "investigator",
            "--unit",
            "U",
            "--jurisdiction",
            "EE",
            code=2,
        ).stderr
    )
    go("user", "add", "root", "--name", "R", "--role", "admin", "--unit", "U", "--jurisdiction", "EE")
    users = json.loads(go("user", "list", "--as", "root", "--format", "json").stdout)
    assert [u["username"] for u in users] == ["root"]
    instruments = json.loads(go("request", "instruments", "--format", "json").stdout)
    assert instruments["defaults"]["preservation"] == "budapest-art29"
    assert {"en", "fr", "es"} <= set(instruments["languages"])


def test_retention_and_hold_commands(run) -> None:
    number = run("case", "open", "--title", "T", "--format", "json")["number"]
    assert (
        run("case", "hold", number, "--reason", "appeal", "--format", "json", as_="sue")["legal_hold"] is True
    )
    plan = run("retention", "apply", "--dry-run", "--as-of", "2090-01-01", "--format", "json", as_="admin")
    assert plan == {"dry_run": True, "deleted": [], "held": [], "partner_packages": []}
    assert (
        "--as-of only plans" in run("retention", "apply", "--as-of", "2090-01-01", as_="admin", code=2).stderr
    )
