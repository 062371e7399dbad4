"""Evidence: a trace frozen into a signed BagIt package; verification says what differs; retracing
reproduces it; custody is recorded; evidence is immutable (a change is a new version)."""

from __future__ import annotations

import base64
import json
import stat

import bagit
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import text

from fundtrail.cases import cases, evidence
from fundtrail.cases.context import operation
from fundtrail.cases.models import EvidenceItem
from fundtrail.cases.testing import EXCHANGE, EXCHANGE_NAME, RANSOM, REST, named_txid
from fundtrail.domain.custody import document_hash
from fundtrail.errors import InputError, IntegrityError


@pytest.fixture()
def preserved(agency_db, chain_store, ransom_trace):
    """A case with the ransom trace preserved (subjects added)."""
    with operation(agency_db, "ivo") as ctx:
        number = cases.open_case(ctx, "Ransomware").number
        result = evidence.preserve_trace(ctx, number, ransom_trace, chain_store, add_subjects=True)
    return number, result


def test_the_package_holds_the_trace_its_chain_records_tags_and_parameters(
    agency_db, home, preserved, ransom_trace
) -> None:
    number, result = preserved
    ev = result.item
    assert ev.id == f"{number}-E001-v1"
    root = home / "evidence" / ev.id
    bag = bagit.Bag(str(root))
    assert bag.validate() and bag.algorithms == ["sha256"]
    assert bag.info["External-Identifier"] == ev.id and bag.info["Bag-Group-Identifier"] == number
    assert json.loads((root / "data" / "trace.json").read_text()) == ransom_trace
    txs = [json.loads(line) for line in (root / "data" / "chain" / "txs.jsonl").read_text().splitlines()]
    assert {t["txid"] for t in txs} == {named_txid("hop"), named_txid("out")}
    outputs = [json.loads(x) for x in (root / "data" / "chain" / "outputs.jsonl").read_text().splitlines()]
    assert {(o["txid"], o["n"]) for o in outputs} >= {(named_txid("pay"), 0), (named_txid("out"), 0)}
    assert {o["value"] for o in outputs if o["address"] == EXCHANGE} == {"3000000"}  # exact, as text
    tags = [json.loads(x) for x in (root / "data" / "tags.jsonl").read_text().splitlines()]
    assert {(t["address"], t["label"]) for t in tags} == {
        (EXCHANGE, EXCHANGE_NAME),
        (RANSOM, "LockBit affiliate"),
    }
    params = json.loads((root / "data" / "parameters.json").read_text())
    assert params["seeds"] == [RANSOM] and params["parameters"]["policy"] == "haircut"
    assert params["software"]["name"] == "fundtrail" and params["chain_store"]["height"] == 4
    # the database keeps every file's hash, and the trace's canonical hash
    manifest = json.loads(ev.manifest)
    assert set(manifest) >= {"data/trace.json", "bagit.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt"}
    assert ev.trace_sha256 == document_hash(ransom_trace)


def test_the_signature_covers_the_tag_manifest_with_the_agency_key(home, preserved) -> None:
    ev = preserved[1].item
    key = home / "keys" / "agency-ed25519.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    public_b64 = (home / "keys" / f"{ev.key_id}.pub").read_text().strip()
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
    tagmanifest = (home / "evidence" / ev.id / "tagmanifest-sha256.txt").read_bytes()
    public.verify(base64.b64decode(ev.signature), tagmanifest)  # raises when invalid


def test_the_traced_addresses_become_subjects_linked_to_the_evidence(agency_db, preserved) -> None:
    number, result = preserved
    assert [(s["address"], s["role"]) for s in result.subjects] == [
        (RANSOM, "seed"),
        (EXCHANGE, "endpoint:service"),
        (REST, "endpoint:unspent"),
    ]
    with operation(agency_db, "ana") as ctx:
        subjects = {s.value: s for s in cases.show_case(ctx, number).subjects}
        assert subjects[EXCHANGE].label == EXCHANGE_NAME and subjects[EXCHANGE].amount == 3_000_000
        assert {s.evidence_id for s in subjects.values()} == {result.item.id}


def test_verify_then_tamper_a_file_names_it_with_both_hashes(agency_db, home, preserved) -> None:
    ev_id = preserved[1].item.id
    with operation(agency_db, "ana") as ctx:
        assert evidence.verify_evidence(ctx, ev_id).ok
    path = home / "evidence" / ev_id / "data" / "chain" / "outputs.jsonl"
    before = evidence.sha256_hex(path.read_bytes())
    path.write_text(path.read_text().replace("3000000", "2000000"))
    with operation(agency_db, "ana") as ctx:
        check = evidence.verify_evidence(ctx, ev_id, reason="before court")
    assert not check.ok and check.signature_ok  # the tag manifest is untouched, only a payload file changed
    assert [(d.path, d.problem, d.expected) for d in check.files] == [
        ("data/chain/outputs.jsonl", "changed", before)
    ]
    assert check.files[0].actual == evidence.sha256_hex(path.read_bytes())
    assert f"sha256 expected {before}" in check.summary()
    with operation(agency_db, "ana") as ctx:
        custody = [(c.event, c.actor.username, c.reason) for c in evidence.get_evidence(ctx, ev_id).custody]
    assert custody == [("created", "ivo", "preserve the trace as evidence")]  # verifying only reads


def test_a_rewritten_bag_fails_the_signature(agency_db, home, preserved) -> None:
    ev_id = preserved[1].item.id
    root = home / "evidence" / ev_id
    (root / "data" / "trace.json").write_text("{}")
    bag = bagit.Bag(str(root))
    bag.save(manifests=True)  # recompute the manifests: consistent, but no longer what was signed
    with operation(agency_db, "ana") as ctx:
        check = evidence.verify_evidence(ctx, ev_id)
    assert not check.signature_ok
    assert {d.path for d in check.files} >= {"data/trace.json", "tagmanifest-sha256.txt"}


def test_a_manifest_edited_in_the_database_is_caught(agency_db, preserved) -> None:
    ev_id = preserved[1].item.id
    with agency_db.engine.begin() as conn:
        conn.execute(
            text("UPDATE evidence_items SET manifest_sha256 = :h WHERE id = :id"),
            {"h": "0" * 64, "id": ev_id},
        )
    with operation(agency_db, "ana") as ctx:
        check = evidence.verify_evidence(ctx, ev_id)
    assert not check.ok and any("database edited" in p for p in check.problems)


def test_retrace_reproduces_the_preserved_trace(agency_db, preserved, chain_store) -> None:
    with operation(agency_db, "ana") as ctx:
        result = evidence.retrace(ctx, preserved[1].item.id, chain_store)
    assert result.reproduced and result.differences == {}


def test_retrace_notices_a_different_result(agency_db, home, preserved, chain_store) -> None:
    ev = preserved[1].item
    with agency_db.engine.begin() as conn:  # pretend the preserved trace had another hash
        conn.execute(
            text("UPDATE evidence_items SET parameters = parameters, trace_sha256 = :h WHERE id = :id"),
            {"h": "1" * 64, "id": ev.id},
        )
    with operation(agency_db, "ana") as ctx:
        result = evidence.retrace(ctx, ev.id, chain_store)
    assert not result.reproduced and result.expected_sha256 == "1" * 64


def test_a_trace_whose_transactions_are_not_stored_is_refused_and_nothing_is_written(
    agency_db, home, chain_store, ransom_trace
) -> None:
    bad = json.loads(json.dumps(ransom_trace))
    bad["flows"][0]["txid"] = "ff" * 32
    with operation(agency_db, "ivo") as ctx:
        number = cases.open_case(ctx, "x").number
    with pytest.raises(InputError, match=f"transaction {'ff' * 32} of the trace is not in the chain store"):
        with operation(agency_db, "ivo") as ctx:
            evidence.preserve_trace(ctx, number, bad, chain_store)
    assert not (home / "evidence").exists() or not any((home / "evidence").iterdir())
    with agency_db.transaction() as s:
        assert s.query(EvidenceItem).count() == 0


def test_a_failure_after_the_package_is_written_removes_it(
    agency_db, home, chain_store, ransom_trace
) -> None:
    with operation(agency_db, "ivo") as ctx:
        number = cases.open_case(ctx, "x").number
    with pytest.raises(RuntimeError):
        with operation(agency_db, "ivo") as ctx:
            evidence.preserve_trace(ctx, number, ransom_trace, chain_store)
            assert any((home / "evidence").iterdir())
            raise RuntimeError("crash before commit")
    assert list((home / "evidence").iterdir()) == []


def test_evidence_is_immutable_and_changes_make_a_new_version(agency_db, home, preserved) -> None:
    v1 = preserved[1].item.id
    with operation(agency_db, "ivo") as ctx:
        with pytest.raises(InputError, match="immutable"):
            item = evidence.get_evidence(ctx, v1)
            item.title = "changed"
            ctx.session.flush()
    before = (home / "evidence" / v1 / "bag-info.txt").read_text()
    with operation(agency_db, "ivo") as ctx:
        v2 = evidence.new_version(
            ctx, v1, reason="clearer title for the court", title="Ransom trace, exhibit 4"
        )
        assert (
            v2.id.endswith("-E001-v2")
            and v2.supersedes_id == v1
            and v2.trace_sha256 == preserved[1].item.trace_sha256
        )
    assert (home / "evidence" / v1 / "bag-info.txt").read_text() == before
    with operation(agency_db, "ana") as ctx:
        assert evidence.get_evidence(ctx, v1.rsplit("-v", 1)[0]).id == v2.id  # latest without a version
        assert evidence.verify_evidence(ctx, v1).ok and evidence.verify_evidence(ctx, v2.id).ok
        assert [c.event for c in evidence.get_evidence(ctx, v1).custody][-1] == "superseded"


def test_export_is_a_custody_event_and_the_package_verifies_on_its_own(
    agency_db, preserved, tmp_path
) -> None:
    ev_id = preserved[1].item.id
    with operation(agency_db, "lia") as ctx:
        path = evidence.export_evidence(
            ctx, ev_id, tmp_path / "out", reason="MLA to FR", recipient="FR OCLCTIC"
        )
    keys = evidence.trusted_keys(agency_db.home)
    assert evidence.verify_package(path, keys=keys).ok
    (path / "data" / "tags.jsonl").write_text("")
    check = evidence.verify_package(path, keys=keys)
    assert not check.ok and [d.path for d in check.files] == ["data/tags.jsonl"]
    with operation(agency_db, "ana") as ctx:
        last = evidence.get_evidence(ctx, ev_id).custody[-1]
        assert (last.event, last.actor.username, json.loads(last.details)["to"]) == (
            "transferred",
            "lia",
            "FR OCLCTIC",
        )


def test_export_refuses_evidence_that_does_not_verify(agency_db, home, preserved, tmp_path) -> None:
    ev_id = preserved[1].item.id
    (home / "evidence" / ev_id / "data" / "parameters.json").write_text("{}")
    with pytest.raises(IntegrityError, match="data/parameters.json: sha256 expected"):
        with operation(agency_db, "lia") as ctx:
            evidence.export_evidence(ctx, ev_id, tmp_path / "out", reason="MLA")


def test_a_trace_file_that_is_not_a_trace_is_bad_input(tmp_path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"chain": "btc"}))
    with pytest.raises(InputError, match="not a trace document"):
        evidence.load_trace_file(path)
