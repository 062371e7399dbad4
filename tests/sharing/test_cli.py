"""The agreement, agency and share commands: exit codes, messages, JSON, and their documentation."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from fundtrail.cli.main import app
from fundtrail.sharing.models import SharedPackage

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, code: int = 0):
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def create(home: Path, name: str, key: str, *extra: str, code: int = 0):
    return run(
        "agreement",
        "create",
        name,
        "--partner",
        "Seychelles FIU",
        "--country",
        "SC",
        "--public-key",
        key,
        "--legal-basis",
        "Budapest Convention art. 29",
        "--categories",
        "addresses_and_transactions",
        "--home",
        str(home),
        *extra,
        code=code,
    )


def test_agency_key_shows_the_key_partners_need(pair) -> None:
    a, _ = pair
    doc = json.loads(run("agency", "key", "--home", str(a.home), "--format", "json").stdout)
    from fundtrail.audit.trust import fingerprint

    assert doc == {
        "key_id": a.key.key_id,
        "public_key": a.key.public_b64,
        "algorithm": "ed25519",
        "fingerprint": fingerprint(a.key.public_b64),
    }
    shown = json.loads(run("agency", "show", "--home", str(a.home), "--format", "json").stdout)
    assert shown["country"] == "EE" and shown["key_id"] == a.key.key_id


def test_agreement_create_list_show_revoke(pair) -> None:
    a, b = pair
    doc = json.loads(
        create(
            a.home,
            "ee-sc-2",
            b.key.public_b64,
            "--key-id",
            b.key.key_id,
            "--tlp",
            "TLP:GREEN",
            "--retention-days",
            "10",
            "--onward-sharing",
            "--deadline",
            "freeze=3",
            "--format",
            "json",
        ).stdout
    )
    assert doc["partner"]["key_id"] == b.key.key_id and doc["marking"] == {"tlp": "green", "pap": "amber"}
    assert doc["onward_sharing"] and doc["deadlines"] == {"freeze": 3} and doc["retention_days"] == 10
    assert (a.home / "keys" / "agreements" / "ee-sc-2.hmac").stat().st_mode & 0o777 == 0o600
    listed = json.loads(run("agreement", "list", "--home", str(a.home), "--format", "json").stdout)
    assert {d["name"] for d in listed} == {"ee-sc", "ee-sc-2"}
    shown = run("agreement", "show", "ee-sc-2", "--home", str(a.home)).stdout
    assert "TLP:GREEN" in shown and "onward        allowed" in shown
    run("agreement", "revoke", "ee-sc-2", "--reason", "superseded", "--home", str(a.home), "--as", "sue")
    refused = run(
        "share",
        "export",
        a.cases["ransom"],
        "--agreement",
        "ee-sc-2",
        "--format",
        "stix",
        "-o",
        str(a.home / "x.json"),
        "--home",
        str(a.home),
        "--as",
        "ivo",
        code=2,
    )
    assert "agreement 'ee-sc-2' §2 term" in refused.stderr


def test_agreement_create_refuses_bad_terms(pair) -> None:
    a, b = pair
    assert (
        "not match the public key"
        in create(a.home, "x1", b.key.public_b64, "--key-id", "0" * 16, code=2).stderr
    )
    assert "not base64" in create(a.home, "x2", "not a key!", code=2).stderr
    assert "own key" in create(a.home, "x3", a.key.public_b64, code=2).stderr
    assert "already exists" in create(a.home, "ee-sc", b.key.public_b64, code=2).stderr
    bad = run(
        "agreement",
        "create",
        "x4",
        "--partner",
        "P",
        "--country",
        "SC",
        "--public-key",
        b.key.public_b64,
        "--legal-basis",
        "x",
        "--categories",
        "secrets",
        "--home",
        str(a.home),
        code=2,
    )
    assert "data category 'secrets' is unknown" in bad.stderr
    assert (
        "may not create sharing agreements"
        in create(a.home, "x5", b.key.public_b64, "--as", "ivo", code=2).stderr
    )


def test_share_export_refusal_names_the_clause(pair, tmp_path) -> None:
    a, b = pair
    create(a.home, "ee-sc-min", b.key.public_b64)
    out = tmp_path / "bag"
    refused = run(
        "share",
        "export",
        a.cases["ransom"],
        "--agreement",
        "ee-sc-min",
        "--format",
        "bagit",
        "-o",
        str(out),
        "--home",
        str(a.home),
        "--as",
        "ivo",
        code=2,
    )
    assert "(forbidden by agreement 'ee-sc-min' §4 data categories)" in refused.stderr
    assert not out.exists() and a.count(SharedPackage) == 0


def test_share_export_and_import_through_the_cli(pair, tmp_path) -> None:
    a, b = pair
    out = tmp_path / "case.ftm.json"
    doc = json.loads(
        run(
            "share",
            "export",
            a.cases["ransom"],
            "--agreement",
            "ee-sc",
            "--format",
            "ftm",
            "-o",
            str(out),
            "--home",
            str(a.home),
            "--as",
            "ivo",
            "--print",
            "json",
        ).stdout
    )
    assert doc["envelope"] == str(tmp_path / "case.ftm.json.envelope.json")
    tampered = tmp_path / "tampered.ftm.json"
    tampered.write_text(out.read_text().replace("Northwind", "Nowhere"))
    (tmp_path / "tampered.ftm.json.envelope.json").write_text(
        (tmp_path / "case.ftm.json.envelope.json").read_text()
    )
    bad = run("share", "import", str(tampered), "--home", str(b.home), "--as", "lia", code=1)
    assert "payload does not match its signed envelope" in bad.stderr
    done = json.loads(
        run("share", "import", str(out), "--home", str(b.home), "--as", "lia", "--format", "json").stdout
    )
    assert done["package_id"] == doc["package_id"] and done["partner"] == a.name
    again = run("share", "import", str(out), "--home", str(b.home), "--as", "lia", code=2)
    assert "already received" in again.stderr
    listed = json.loads(run("share", "list", "--home", str(b.home), "--as", "lia", "--format", "json").stdout)
    assert [p["package_id"] for p in listed] == [doc["package_id"]]
    plan = json.loads(
        run("share", "retention", "--dry-run", "--home", str(b.home), "--format", "json").stdout
    )
    assert plan == {"dry_run": True, "packages": []}
    assert b.audit_actions().count("share.reject") == 2  # the tampered package, and the second import


def test_every_cooperation_command_is_documented() -> None:
    import typer.main

    docs = (ROOT / "docs" / "cooperation.md").read_text(encoding="utf-8")
    group = typer.main.get_group(app)
    missing = []
    for noun in ("agreement", "agency", "share"):
        for name in group.commands[noun].commands:
            if f"fundtrail {noun} {name}" not in docs:
                missing.append(f"{noun} {name}")
    assert missing == []


def test_retention_apply_covers_partner_packages(pair, tmp_path) -> None:
    from datetime import UTC, datetime, timedelta

    a, b = pair
    out = tmp_path / "case.stix.json"
    run(
        "share",
        "export",
        a.cases["ransom"],
        "--agreement",
        "ee-sc",
        "--format",
        "stix",
        "-o",
        str(out),
        "--home",
        str(a.home),
        "--as",
        "ivo",
    )
    run("share", "import", str(out), "--home", str(b.home), "--as", "lia")
    later = (datetime.now(UTC) + timedelta(days=31)).date().isoformat()
    plan = json.loads(
        run(
            "retention",
            "apply",
            "--dry-run",
            "--as-of",
            later,
            "--home",
            str(b.home),
            "--as",
            "admin",
            "--format",
            "json",
        ).stdout
    )
    assert [p["partner"] for p in plan["partner_packages"]] == [a.name]
    now = json.loads(
        run(
            "retention", "apply", "--dry-run", "--home", str(b.home), "--as", "admin", "--format", "json"
        ).stdout
    )
    assert now["partner_packages"] == []
