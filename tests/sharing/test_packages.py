"""Exports in every format, validated by the ecosystem's own tools, and imported by the partner."""

from __future__ import annotations

import json
from pathlib import Path

import bagit
import pytest
import yaml

from fundtrail.domain.sharing import TLP_STIX_IDS, PackageFormat, Tlp, is_pseudonym
from fundtrail.sharing.models import SharedObject, SharedPackage
from fundtrail.sharing.service import export_case, import_package, read_package
from fundtrail.sharing.stix import CRYPTO_EXTENSION

from .conftest import D1, D2, R1, R2, TXIDS


def export(a, fmt: str, out: Path, agreement: str = "ee-sc", user: str = "ivo"):
    with (
        a.op(user) as ctx,
        __import__("fundtrail.store", fromlist=["ChainStore"]).ChainStore.open_home(
            a.home, read_only=True
        ) as store,
    ):
        return export_case(ctx, a.cases["ransom"], agreement, fmt, out, store=store)


def receive(b, path: Path, user: str = "lia", case: str | None = None):
    from fundtrail.store import ChainStore

    with b.op(user) as ctx:
        return import_package(
            ctx, read_package(path), store_opener=lambda: ChainStore.open_home(b.home), case=case
        )


def test_stix_bundle_passes_the_validator_and_carries_the_case(pair, tmp_path) -> None:
    from stix2validator import ValidationOptions, validate_instance

    a, b = pair
    out = tmp_path / "case.stix.json"
    result = export(a, "stix", out)
    bundle = json.loads(out.read_text())
    report = validate_instance(bundle, ValidationOptions(version="2.1"))
    assert report.is_valid, [str(e) for r in report.object_results for e in r.errors]
    objects = {o["id"]: o for o in bundle["objects"]}
    kinds = [o["type"] for o in bundle["objects"]]
    wallets = {o["value"]: o for o in bundle["objects"] if o["type"] == "cryptocurrency-wallet"}
    assert {R1, R2, D1, D2} <= set(wallets)
    assert TLP_STIX_IDS[Tlp.AMBER] in objects and objects[TLP_STIX_IDS[Tlp.AMBER]]["name"] == "TLP:AMBER"
    for o in bundle["objects"]:
        if o["type"] not in ("marking-definition", "fundtrail-package"):
            assert TLP_STIX_IDS[Tlp.AMBER] in o["object_marking_refs"], o["id"]
    assert "extension-definition" not in kinds  # see stix.extension_definitions
    txs = {o["value"]: o for o in bundle["objects"] if o["type"] == "cryptocurrency-transaction"}
    assert TXIDS["t3"] in txs
    report_obj = next(o for o in bundle["objects"] if o["type"] == "report")
    analysis = report_obj["extensions"][CRYPTO_EXTENSION]
    flows = analysis["flows"]
    assert all(isinstance(f["value"], str) and isinstance(f["tainted_value"], str) for f in flows)
    assert {"9980000"} <= {f["value"] for f in flows}
    d1 = next(w for w in analysis["wallets"] if w["wallet_ref"] == wallets[D1]["id"])
    assert d1["entity"] == "Northwind Exchange" and d1["amount"] == "9980000"
    assert any(r.startswith("endpoint") for r in d1["roles"])
    # SCOs carry only what identifies them: the same address is the same object in every package
    assert wallets[D1]["extensions"][CRYPTO_EXTENSION] == {
        "extension_type": "property-extension",
        "chain": "btc",
    }
    indicators = [o for o in bundle["objects"] if o["type"] == "indicator"]
    assert {i["pattern"] for i in indicators if "malicious-activity" in i["indicator_types"]} >= {
        f"[cryptocurrency-wallet:value = '{R1}']",
        f"[cryptocurrency-wallet:value = '{R2}']",
    }
    assert any("attribution" in i["indicator_types"] and R2 in i["pattern"] for i in indicators)  # sanctioned
    assert any(o["type"] == "identity" and o["name"] == "Northwind Exchange" for o in bundle["objects"])
    assert kinds.count("report") == 1 and kinds.count("fundtrail-package") == 1
    assert a.cases["ransom"] in report_obj["name"]
    assert "Ivan" not in out.read_text() and "NW-778812" not in out.read_text()  # no personal data in STIX
    assert result.envelope.marking.tlp is Tlp.AMBER and result.envelope_path is None

    stored = receive(b, out)
    assert stored.format is PackageFormat.STIX and stored.partner == a.name
    assert b.count(SharedPackage, direction="received") == 1
    assert b.count(SharedObject, kind="wallet") == len(wallets)


def test_the_stix_extension_definitions_validate() -> None:
    from stix2validator import ValidationOptions, validate_instance

    from fundtrail.sharing.stix import CRYPTO_EXTENSION, PACKAGE_EXTENSION, extension_definitions

    objects = extension_definitions()
    bundle = {"type": "bundle", "id": "bundle--6b1c7a3e-2d1e-4d44-9a55-1b7c7f0e9a12", "objects": objects}
    assert validate_instance(bundle, ValidationOptions(version="2.1")).is_valid
    assert {o["id"] for o in objects} >= {CRYPTO_EXTENSION, PACKAGE_EXTENSION}


def test_ftm_entities_load_in_followthemoney_and_people_are_pseudonymised(pair, tmp_path) -> None:
    from followthemoney import model

    a, b = pair
    out = tmp_path / "case.ftm.json"
    result = export(a, "ftm", out)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    proxies = [model.get_proxy(x, cleaned=False) for x in lines]
    by_schema: dict[str, list] = {}
    for p in proxies:
        by_schema.setdefault(p.schema.name, []).append(p)
    assert {"CryptoWallet", "Company", "UnknownLink", "Person", "UserAccount"} <= set(by_schema)
    wallets = {p.first("publicKey"): p for p in by_schema["CryptoWallet"]}
    assert wallets[D1].first("managingExchange") == "Northwind Exchange"
    assert wallets[D1].first("amount") == "0.0998"  # exact: 9,980,000 satoshi
    person = by_schema["Person"][0]
    assert all(is_pseudonym(v) for v in person.get("name") + person.get("idNumber"))
    assert not person.get("email") and not person.get("birthDate")
    text = out.read_text()
    assert "Ivan" not in text and "AB123456" not in text and "NW-778812" not in text
    assert result.envelope.pseudonymised
    # the same person exported twice gets the same pseudonym and entity id: the partner can match repeats
    again = export(a, "ftm", tmp_path / "again.ftm.json")
    assert again.package_id != result.package_id
    people = [
        json.loads(x)
        for x in (tmp_path / "again.ftm.json").read_text().splitlines()
        if json.loads(x)["schema"] == "Person"
    ]
    assert people[0]["id"] == person.id and people[0]["properties"]["name"] == person.get("name")

    stored = receive(b, out)
    assert "personal_data" in stored.categories and stored.counts["wallet"] == len(wallets)


def _schema_check(document: dict, schema: dict) -> list[str]:
    """Check a TagPack against GraphSense's tagpack_schema.yaml: mandatory fields (header or tag), types."""
    problems = []
    header = {k: v for k, v in document.items() if k != "tags"}
    for name, rule in schema["header"].items():
        if rule.get("mandatory") and name not in document:
            problems.append(f"header: {name} missing")
    for i, tag in enumerate(document["tags"]):
        merged = {**{k: v for k, v in header.items() if k in schema["tag"]}, **tag}
        for name, rule in schema["tag"].items():
            if rule.get("mandatory") and name not in merged:
                problems.append(f"tag {i}: {name} missing")
        for name, value in tag.items():
            if name not in schema["tag"]:
                problems.append(f"tag {i}: unknown field {name}")
            elif schema["tag"][name]["type"] == "text" and not isinstance(value, str):
                problems.append(f"tag {i}: {name} must be text")
    return problems


def test_tagpack_validates_against_the_graphsense_schema(pair, tmp_path, shared_data) -> None:
    a, b = pair
    out = tmp_path / "case.yaml"
    export(a, "tagpack", out)
    document = yaml.safe_load(out.read_text())
    schema = yaml.safe_load(
        (shared_data / "graphsense_tagpacks" / "taxonomy" / "tagpack_schema.yaml").read_text()
    )
    assert _schema_check(document, schema) == []
    tags = {(t["address"], t["label"]) for t in document["tags"]}
    assert (D1, "Northwind Exchange") in tags
    assert any(t["address"] == R1 and t.get("abuse") == "ransomware" for t in document["tags"])
    _tagpack_tool(out)

    stored = receive(b, out)
    assert stored.tags == len(document["tags"]) == b.tag_count()


def _tagpack_tool(path: Path) -> None:
    """GraphSense's own validator, when installed beside (see docs/cooperation.md)."""
    import os
    import shutil
    import subprocess

    tool = os.environ.get("FUNDTRAIL_TAGPACK_TOOL") or shutil.which("tagpack-tool")
    if not tool:
        return
    run = subprocess.run(
        [tool, "tagpack", "validate", str(path)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and "PASSED" in run.stdout, run.stdout + run.stderr


def test_bagit_package_validates_and_records_the_transfer_of_custody(pair, tmp_path) -> None:
    from fundtrail.cases.models import CustodyEvent

    a, b = pair
    out = tmp_path / "evidence-bag"
    export(a, "bagit", out)
    bagit.Bag(str(out)).validate()
    evidence = [p for p in (out / "data" / "evidence").iterdir() if p.is_dir()]
    assert len(evidence) == 1
    bagit.Bag(str(evidence[0])).validate()
    custody = json.loads((out / "data" / "custody.json").read_text())
    events = custody[evidence[0].name]
    assert [e["event"] for e in events][-1] == "transferred"
    assert "Seychelles" in json.dumps(events[-1]["details"])
    assert a.count(CustodyEvent, event="transferred") == 1

    stored = receive(b, out)
    assert stored.counts["evidence"] == 1
    assert (b.home / "shared" / stored.package_id / out.name / "bagit.txt").is_file()


def test_import_adds_partner_addresses_to_a_case_with_their_provenance(pair, tmp_path) -> None:
    from fundtrail.cases.models import Subject

    a, b = pair
    out = tmp_path / "case.stix.json"
    result = export(a, "stix", out)
    receive(b, out, user="ivo", case=b.cases["exchange"])
    with b.db() as db, db.session() as s:
        from sqlalchemy import select

        subjects = s.execute(select(Subject).where(Subject.role == "partner")).scalars().all()
        assert {x.value for x in subjects} >= {R1, R2}
        assert all(x.source.startswith(f"package {result.package_id}") for x in subjects)


@pytest.mark.parametrize("fmt", ["stix", "ftm"])
def test_export_and_import_are_audited(pair, tmp_path, fmt) -> None:
    a, b = pair
    out = tmp_path / f"case.{fmt}"
    export(a, fmt, out)
    receive(b, out)
    assert "share.export" in a.audit_actions() and "share.import" in b.audit_actions()
    assert a.audit_intact() and b.audit_intact()
