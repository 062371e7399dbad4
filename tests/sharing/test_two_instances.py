"""End to end: two FundTrail instances (two `fundtrail serve` processes, their own homes, databases and keys)
and an OASIS medallion TAXII server, all on 127.0.0.1.

Agency A (Estonia) runs the demo: it traces the demo ransom to, among others, Coral Reef Trading, an
exchange in the Seychelles. Agency B (the Seychelles FIU) holds a case on that exchange. Under an amber
agreement A publishes the case to the TAXII hub and B pulls, verifies and stores it; a tampered package
and one outside the agreement are rejected with nothing stored; A's freeze request for the exchange's
deposit addresses travels to B's inbox, is acknowledged and answered, and A's case and recovery ledger
follow; PSI tells A which of its addresses B holds in a case, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fundtrail.domain.addresses import segwit_address

from .taxii_servers import free_port, medallion, stop, wait_for

CATEGORIES = "addresses_and_transactions,attribution_tags,traces,evidence,personal_data"
LEGAL_BASIS = "Budapest Convention on Cybercrime, arts. 29-31; Egmont principles"


class Cli:
    """The ``fundtrail`` CLI, in this process."""

    def __init__(self) -> None:
        from fundtrail.cli.main import app

        self.app = app
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(self.app, list(args), catch_exceptions=False)
        assert result.exit_code == code, f"fundtrail {' '.join(args)} -> {result.exit_code}: {result.output}"
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args).stdout)


@pytest.fixture(scope="module")
def cli() -> Cli:
    return Cli()


def serve(home: Path, port: int, log: Path) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "fundtrail"
    out = log.open("w")
    return subprocess.Popen(
        [
            str(exe),
            "serve",
            "--home",
            str(home),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "FUNDTRAIL_USER": ""},
    )


@pytest.fixture(scope="module")
def agencies(tmp_path_factory, cli) -> Iterator[dict[str, Any]]:
    from fundtrail.scenarios.demo import run_demo

    root = tmp_path_factory.mktemp("two-instances")
    a, b = root / "ee", root / "sc"
    run = run_demo(a, size="small")
    assert run.ok, [s for s in run.steps if s.status != "done"]
    coral = next(x for x in run.summary["exchanges"] if x["jurisdiction"] == "SC")
    # B: the Seychelles FIU, its users, and its case on the exchange
    cli(
        "db",
        "agency",
        "--name",
        "Seychelles Financial Intelligence Unit",
        "--jurisdiction",
        "SC",
        "--email",
        "fiu@sc.invalid",
        "--home",
        str(b),
    )
    cli(
        "user",
        "add",
        "admin",
        "--name",
        "Sam Admin",
        "--role",
        "admin",
        "--unit",
        "Analysis",
        "--jurisdiction",
        "SC",
        "--home",
        str(b),
    )
    for user, name, role in (("lia", "Lea Liaison", "liaison"), ("ivo", "Ivy Analyst", "investigator")):
        cli(
            "user",
            "add",
            user,
            "--name",
            name,
            "--role",
            role,
            "--unit",
            "Analysis",
            "--jurisdiction",
            "SC",
            "--email",
            f"{user}@sc.invalid",
            "--home",
            str(b),
            "--as",
            "admin",
        )
    case_b = cli.json(
        "case",
        "open",
        "--title",
        f"{coral['name']}: deposits of concern",
        "--home",
        str(b),
        "--as",
        "ivo",
        "--format",
        "json",
    )["number"]
    unrelated = [
        segwit_address("btc", 0, hashlib.sha256(f"unrelated-{i}".encode()).digest()[:20]) for i in (1, 2)
    ]
    for address in [*coral["addresses"], *unrelated]:
        cli(
            "case",
            "add-subject",
            case_b,
            address,
            "--chain",
            "btc",
            "--role",
            "deposit",
            "--home",
            str(b),
            "--as",
            "ivo",
        )
    port_a, port_b = free_port(), free_port()
    key_a = cli.json("agency", "key", "--home", str(a), "--format", "json")
    key_b = cli.json("agency", "key", "--home", str(b), "--format", "json")
    for home, name, partner, country, key, port in (
        (a, "ee-sc", "Seychelles Financial Intelligence Unit", "SC", key_b, port_b),
        (b, "sc-ee", "Demo Police Cybercrime Bureau", "EE", key_a, port_a),
    ):
        cli(
            "agreement",
            "create",
            name,
            "--partner",
            partner,
            "--country",
            country,
            "--public-key",
            key["public_key"],
            "--key-id",
            key["key_id"],
            "--endpoint",
            f"http://127.0.0.1:{port}",
            "--legal-basis",
            LEGAL_BASIS,
            "--categories",
            CATEGORIES,
            "--tlp",
            "amber",
            "--pap",
            "amber",
            "--retention-days",
            "30",
            "--no-onward-sharing",
            "--deadline",
            "freeze=5",
            "--home",
            str(home),
        )
    servers = [serve(a, port_a, root / "a.log"), serve(b, port_b, root / "b.log")]
    try:
        for port, process in zip((port_a, port_b), servers, strict=True):
            wait_for(f"http://127.0.0.1:{port}/api/cooperation/agency", seconds=60, process=process)
        with medallion(root / "medallion") as hub:
            yield {
                "a": a,
                "b": b,
                "case_a": _case_number(cli, a),
                "case_b": case_b,
                "coral": coral,
                "unrelated": unrelated,
                "hub": hub,
                "root": root,
            }
    finally:
        for process in servers:
            stop(process)


def _case_number(cli: Cli, home: Path) -> str:
    (case,) = cli.json("case", "list", "--home", str(home), "--as", "investigator", "--format", "json")
    return case["number"]


def received(cli: Cli, home: Path) -> list[dict[str, Any]]:
    return cli.json(
        "share", "list", "--direction", "received", "--home", str(home), "--as", "lia", "--format", "json"
    )


def test_two_agencies_cooperate_end_to_end(agencies, cli, tmp_path) -> None:
    a, b, hub = agencies["a"], agencies["b"], agencies["hub"]
    case_a, case_b, coral = agencies["case_a"], agencies["case_b"], agencies["coral"]
    taxii = ["--taxii", hub.collection, "--taxii-user", hub.user, "--taxii-password", hub.password]

    # 1. A publishes its case under the amber agreement; B pulls it from the hub, verifies and stores it
    published = cli.json(
        "share",
        "publish",
        case_a,
        "--agreement",
        "ee-sc",
        *taxii,
        "--home",
        str(a),
        "--as",
        "investigator",
        "--format",
        "json",
    )
    assert published["marking"] == {"tlp": "amber", "pap": "amber"} and published["taxii"]["added"] > 0
    pulled = cli.json("share", "pull", *taxii, "--home", str(b), "--as", "lia", "--format", "json")
    assert [p["package_id"] for p in pulled["imported"]] == [published["package_id"]] and not pulled[
        "rejected"
    ]
    (stored,) = received(cli, b)
    assert stored["partner"] == "Demo Police Cybercrime Bureau" and stored["case"] == case_a
    assert stored["marking"]["tlp"] == "amber" and stored["retain_until"] and stored["received_at"]
    found = cli.json(
        "share",
        "lookup",
        coral["addresses"][0],
        "--chain",
        "btc",
        "--home",
        str(b),
        "--as",
        "lia",
        "--format",
        "json",
    )
    assert found and found[0]["package_id"] == published["package_id"]

    # 2. a tampered package is rejected whole: nothing of it is stored
    bundle = json.loads((a / "shared" / "outbox" / f"{published['package_id']}.json").read_text())
    report = next(o for o in bundle["objects"] if o["type"] == "report")
    report["description"] += " Nothing to see here."  # an object changed after signing
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(bundle))
    refused = cli("share", "import", str(tampered), "--home", str(b), "--as", "lia", code=1)
    assert "do not match the signed envelope" in refused.stderr
    assert len(received(cli, b)) == 1

    # 3. a package outside the agreement (TLP:RED where B agreed to amber) is refused naming the clause
    key_b = cli.json("agency", "key", "--home", str(b), "--format", "json")
    cli(
        "agreement",
        "create",
        "ee-sc-red",
        "--partner",
        "Seychelles Financial Intelligence Unit",
        "--country",
        "SC",
        "--public-key",
        key_b["public_key"],
        "--legal-basis",
        LEGAL_BASIS,
        "--categories",
        CATEGORIES,
        "--tlp",
        "red",
        "--home",
        str(a),
        "--as",
        "supervisor",
    )
    red = tmp_path / "red.stix.json"
    cli(
        "share",
        "export",
        case_a,
        "--agreement",
        "ee-sc-red",
        "--format",
        "stix",
        "-o",
        str(red),
        "--home",
        str(a),
        "--as",
        "investigator",
    )
    refused = cli("share", "import", str(red), "--home", str(b), "--as", "lia", code=2)
    assert "agreement 'sc-ee' §5 marking" in refused.stderr and "TLP:RED" in refused.stderr
    assert len(received(cli, b)) == 1

    # 4. the freeze request for the exchange's deposit addresses goes to B and comes back answered
    subjects = cli.json("case", "show", case_a, "--home", str(a), "--as", "investigator", "--format", "json")[
        "subjects"
    ]
    ids = [str(s["id"]) for s in subjects if s["value"] in coral["addresses"]]
    assert ids
    draft = cli.json(
        "request",
        "draft",
        case_a,
        "--type",
        "freeze",
        "--to",
        coral["name"],
        "--to-jurisdiction",
        "SC",
        *[x for i in ids for x in ("--subject", i)],
        "--measures",
        "Freeze the accounts behind these deposit addresses.",
        "--home",
        str(a),
        "--as",
        "investigator",
        "--format",
        "json",
    )
    number = draft["number"]
    cli(
        "request",
        "approve",
        number,
        "--home",
        str(a),
        "--as",
        "supervisor",
        "--reason",
        "urgent: funds at risk",
    )
    cli("share", "send-request", number, "--agreement", "ee-sc", "--home", str(a), "--as", "liaison")
    (item,) = cli.json("share", "inbox", "--home", str(b), "--as", "lia", "--format", "json")
    assert item["remote_number"] == number and item["state"] == "received" and item["answer_due"]
    assert {s["value"] for s in item["subjects"]} == set(coral["addresses"])
    cli("share", "acknowledge", item["number"], "--home", str(b), "--as", "lia")
    assert _request(cli, a, number)["state"] == "acknowledged"
    frozen = [x for address in coral["addresses"] for x in ("--frozen", f"btc:{address}=1500000")]
    cli(
        "share",
        "answer",
        item["number"],
        *frozen,
        "--holder",
        "Jane Roe",
        "--account",
        "CRT-55012",
        "--note",
        "balances frozen",
        "--home",
        str(b),
        "--as",
        "lia",
    )
    assert _request(cli, a, number)["state"] == "answered"
    ledger = cli.json("ledger", "list", case_a, "--home", str(a), "--as", "investigator", "--format", "json")
    entries = [e for e in ledger if e["request"] == number]
    assert [(e["kind"], e["amount"], e["jurisdiction"]) for e in entries] == [
        ("frozen", "1500000", "SC")
    ] * len(coral["addresses"])
    assert all(e["holder"].startswith("ps1:") and "Jane" not in json.dumps(e) for e in entries)

    # 5. deconfliction: A learns which of its addresses B holds in a case (and whom to call), nothing else
    result = cli.json(
        "share",
        "deconflict",
        case_a,
        "--agreement",
        "ee-sc",
        "--home",
        str(a),
        "--as",
        "investigator",
        "--format",
        "json",
    )
    assert sorted(m["address"] for m in result["matches"]) == sorted(coral["addresses"])
    assert result["partner_holds"] == len(coral["addresses"]) + 2  # its own subjects, not what A sent it
    assert {c["case"] for m in result["matches"] for c in m["cases"]} == {case_b}
    assert not set(agencies["unrelated"]) & {m["address"] for m in result["matches"]}

    # 6. both audit logs are intact and hold every step
    for home in (a, b):
        cli("audit", "verify", "--home", str(home))


def _request(cli: Cli, home: Path, number: str) -> dict[str, Any]:
    return cli.json(
        "request", "show", number, "--home", str(home), "--as", "investigator", "--format", "json"
    )
