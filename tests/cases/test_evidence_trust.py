"""Evidence that holds up in court: signatures by trusted keys only, nothing unlisted in a bag, a
verification that only reads, and the audit log covering every item.

The attacker of these tests can write to the case database and to the home's evidence folder, but not
to ``HOME/keys/`` nor use the agency's private key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import bagit
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select, text

from fundtrail.audit import trust
from fundtrail.audit.models import AuditRecord
from fundtrail.cases import cases, evidence
from fundtrail.cases.context import operation
from fundtrail.cases.models import CustodyEvent, EvidenceItem


@pytest.fixture()
def preserved(agency_db, chain_store, ransom_trace) -> str:
    """A case with the ransom trace preserved; its evidence id."""
    with operation(agency_db, "ivo") as ctx:
        number = cases.open_case(ctx, "Ransomware").number
        return evidence.preserve_trace(ctx, number, ransom_trace, chain_store).item.id


@pytest.fixture()
def exported(agency_db, preserved, tmp_path) -> Path:
    """The evidence exported: OUT/<id>/ and OUT/<id>.signature.json."""
    with operation(agency_db, "lia") as ctx:
        return evidence.export_evidence(ctx, preserved, tmp_path / "out", reason="MLA to FR")


def _public_b64(private: Ed25519PrivateKey) -> str:
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def _sign_as(private: Ed25519PrivateKey, folder: Path, **override: str) -> str:
    """Re-sign an exported package with ``private`` (as an attacker would); returns its public key."""
    tag = (folder / evidence.TAGMANIFEST).read_bytes()
    public = _public_b64(private)
    sig_path = folder.parent / f"{folder.name}.signature.json"
    sig = json.loads(sig_path.read_text())
    sig.update(
        {
            "key_id": trust.key_id_for(public),
            "public_key": public,
            "signature": base64.b64encode(private.sign(tag)).decode("ascii"),
            "tagmanifest_sha256": hashlib.sha256(tag).hexdigest(),
        }
    )
    sig.update(override)
    sig_path.write_text(json.dumps(sig))
    return public


def _alter(folder: Path) -> None:
    """Change a payload file and make the bag consistent again (manifests recomputed)."""
    (folder / "data" / "tags.jsonl").write_text("")
    bagit.Bag(str(folder)).save(manifests=True)


def _verify_package(cli, folder: Path, home: Path, *extra: str) -> Any:
    return cli("evidence", "verify-package", str(folder), "--home", str(home), "--format", "json", *extra)


def test_an_exported_package_verifies_with_the_home_s_own_pinned_key(cli, home, exported) -> None:
    result = _verify_package(cli, exported, home)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] and doc["signer"]["owner"] == "agency"


def test_a_package_re_signed_with_another_key_fails_naming_its_fingerprint(cli, home, exported) -> None:
    _alter(exported)
    other = Ed25519PrivateKey.generate()
    public = _sign_as(other, exported)
    result = _verify_package(cli, exported, home)
    assert result.exit_code == 1
    assert trust.fingerprint(public) in result.stderr
    assert json.loads(result.stdout)["signature_ok"] is False
    # the user checked that fingerprint with the key's owner and chooses to trust it: it verifies
    given = _verify_package(cli, exported, home, "--public-key", public)
    assert given.exit_code == 0, given.output
    assert json.loads(given.stdout)["signer"]["owner"] == "given"


def test_a_signature_whose_key_id_does_not_match_its_key_fails(cli, home, exported, agency_db) -> None:
    with operation(agency_db, None, user_required=False) as ctx:
        agency_key_id = ctx.key.key_id
    _alter(exported)
    _sign_as(Ed25519PrivateKey.generate(), exported, key_id=agency_key_id)  # claims the agency's key id
    result = _verify_package(cli, exported, home)
    assert result.exit_code == 1 and "does not match its public key" in result.stderr


def test_the_agency_key_id_with_a_forged_signature_fails(cli, home, exported, agency_db) -> None:
    with operation(agency_db, None, user_required=False) as ctx:
        agency = ctx.key
    _alter(exported)
    forger = Ed25519PrivateKey.generate()
    tag = (exported / evidence.TAGMANIFEST).read_bytes()
    _sign_as(
        forger,
        exported,
        key_id=agency.key_id,
        public_key=agency.public_b64,
        signature=base64.b64encode(forger.sign(tag)).decode("ascii"),
    )
    result = _verify_package(cli, exported, home)
    assert result.exit_code == 1 and "is not valid" in result.stderr


@pytest.mark.parametrize("where", ["extra-tag-file.txt", "data/extra.json"])
def test_a_file_in_the_bag_but_not_in_its_manifests_fails(cli, home, exported, where) -> None:
    (exported / where).write_text("{}")
    result = _verify_package(cli, exported, home)
    assert result.exit_code == 1 and where in result.stderr


def test_a_tag_file_added_to_a_preserved_bag_fails_evidence_verify(cli, home, preserved) -> None:
    (home / "evidence" / preserved / "notes.txt").write_text("added later")
    result = cli("evidence", "verify", preserved, "--home", str(home), "--as", "ana")
    assert result.exit_code == 1 and "notes.txt" in result.stderr


def _home_digest(home: Path) -> dict[str, str]:
    return {
        p.relative_to(home).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() + oct(p.stat().st_mode)
        for p in sorted(home.rglob("*"))
        if p.is_file()
    }


def _database_digest(db: Any) -> str:
    """Every row of the tables verification could touch, hashed (the same for SQLite and PostgreSQL)."""
    h = hashlib.sha256()
    with db.engine.connect() as conn:
        for table in ("audit_records", "audit_head", "custody_events", "evidence_items", "signing_keys"):
            for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1")):  # noqa: S608
                h.update(repr(tuple(row)).encode())
    return h.hexdigest()


def test_evidence_verify_only_reads(cli, home, preserved, agency_db) -> None:
    files, rows = _home_digest(home), _database_digest(agency_db)
    with agency_db.session() as s:
        custody = s.execute(select(func.count()).select_from(CustodyEvent)).scalar_one()
        records = s.execute(select(func.count()).select_from(AuditRecord)).scalar_one()
    result = cli("evidence", "verify", preserved, "--home", str(home), "--as", "ana", "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] and doc["audit_log"] is True and doc["signer"]["owner"] == "agency"
    assert _home_digest(home) == files  # the SQLite file too, when it is the case database
    assert _database_digest(agency_db) == rows
    with agency_db.session() as s:
        assert s.execute(select(func.count()).select_from(CustodyEvent)).scalar_one() == custody
        assert s.execute(select(func.count()).select_from(AuditRecord)).scalar_one() == records


def test_evidence_verify_makes_no_key(cli, home, preserved) -> None:
    keys = home / "keys"
    for path in keys.iterdir():
        if path.name != trust.TRUST_FILE:
            path.rename(home / f"moved-{path.name}")
    result = cli("evidence", "verify", preserved, "--home", str(home), "--as", "ana")
    assert sorted(p.name for p in keys.iterdir()) == [trust.TRUST_FILE]  # no agency key was made
    assert result.exit_code == 0, result.output  # the pinned agency key is enough to verify


def test_a_key_only_in_signing_keys_is_not_trusted(cli, home, preserved, agency_db) -> None:
    attacker = Ed25519PrivateKey.generate()
    public = _public_b64(attacker)
    key_id = trust.key_id_for(public)
    root = home / "evidence" / preserved
    (root / "data" / "tags.jsonl").write_text("")
    bagit.Bag(str(root)).save(manifests=True)
    tag = (root / evidence.TAGMANIFEST).read_bytes()
    manifest = evidence._file_hashes(root)
    with agency_db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO signing_keys (key_id, algorithm, public_key, created_at) "
                "VALUES (:k, 'ed25519', :p, CURRENT_TIMESTAMP)"
            ),
            {"k": key_id, "p": public},
        )
        conn.execute(
            text(
                "UPDATE evidence_items SET key_id = :k, signature = :s, manifest = :m, "
                "manifest_sha256 = :mh, tagmanifest_sha256 = :th WHERE id = :id"
            ),
            {
                "k": key_id,
                "s": base64.b64encode(attacker.sign(tag)).decode("ascii"),
                "m": evidence.canonical_json(manifest).decode(),
                "mh": evidence.document_hash(manifest),
                "th": hashlib.sha256(tag).hexdigest(),
                "id": preserved,
            },
        )
    result = cli("evidence", "verify", preserved, "--home", str(home), "--as", "ana")
    assert result.exit_code == 1 and trust.fingerprint(public) in result.stderr


def _rewrite_record(db: Any, evidence_id: str, details: str) -> None:
    """Give the creation record of ``evidence_id`` other details, and re-hash the chain after it (as a
    careful attacker would): every stored hash is consistent again, only the signed heads are not."""
    from fundtrail.audit.verifier import RECORD_FIELDS, record_leaf

    columns = ", ".join(RECORD_FIELDS)
    with db.engine.begin() as conn:
        start = conn.execute(
            text("SELECT seq FROM audit_records WHERE action = 'evidence.create' AND object_id = :id"),
            {"id": evidence_id},
        ).scalar_one()
        rows = conn.execute(
            text(f"SELECT {columns} FROM audit_records WHERE seq >= :s ORDER BY seq"),  # noqa: S608
            {"s": start},
        ).mappings()
        prev = None
        for row in [dict(r) for r in rows]:
            if row["seq"] == start:
                row["details"] = details
            if prev is not None:
                row["prev_hash"] = prev
            prev = hashlib.sha256(record_leaf(row)).hexdigest()
            conn.execute(
                text(
                    "UPDATE audit_records SET details = :details, prev_hash = :prev_hash, hash = :h "
                    "WHERE seq = :seq"
                ),
                {**row, "h": prev},
            )
        conn.execute(text("UPDATE audit_head SET hash = :h"), {"h": prev})


def test_bag_row_and_creation_record_rewritten_together_are_caught(
    cli, home, agency_db, chain_store, ransom_trace
) -> None:
    """The attacker swaps item E001 for another bag the agency really signed (E002): bag, row and the
    creation record all agree and the signature is the agency's; only the signed audit log tells."""
    with operation(agency_db, "ivo") as ctx:
        number = cases.open_case(ctx, "Ransomware").number
        first = evidence.preserve_trace(ctx, number, ransom_trace, chain_store).item.id
    with operation(agency_db, "ivo") as ctx:
        second = evidence.preserve_trace(ctx, number, ransom_trace, chain_store, title="Other").item.id
    assert cli("evidence", "verify", first, "--home", str(home), "--as", "ana").exit_code == 0
    root, donor = home / "evidence" / first, home / "evidence" / second
    for path in sorted(root.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    for path in sorted(donor.rglob("*")):
        target = root / path.relative_to(donor)
        target.mkdir(parents=True) if path.is_dir() else target.write_bytes(path.read_bytes())
    with agency_db.session() as s:
        ev2 = s.get(EvidenceItem, second)
        assert ev2 is not None
        columns = {
            "manifest": ev2.manifest,
            "manifest_sha256": ev2.manifest_sha256,
            "tagmanifest_sha256": ev2.tagmanifest_sha256,
            "signature": ev2.signature,
        }
        details = s.execute(
            select(AuditRecord.details).where(
                AuditRecord.action == "evidence.create", AuditRecord.object_id == second
            )
        ).scalar_one()
    with agency_db.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE evidence_items SET manifest = :manifest, manifest_sha256 = :manifest_sha256, "
                "tagmanifest_sha256 = :tagmanifest_sha256, signature = :signature WHERE id = :id"
            ),
            {**columns, "id": first},
        )
    _rewrite_record(agency_db, first, details)
    result = cli("evidence", "verify", first, "--home", str(home), "--as", "ana", "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["signature_ok"] is True and doc["files"] == []  # bag, row and record agree ...
    assert doc["audit_log"] is False  # ... but the rewritten record is not under the signed head
    assert any("audit record" in p for p in doc["problems"]), doc


def test_two_demo_homes_with_the_same_seed_have_different_partner_keys(tmp_path) -> None:
    from fundtrail.scenarios.agency import step_agreement
    from fundtrail.scenarios.steps import DemoContext
    from fundtrail.sharing import demo

    publics = []
    for name in ("one", "two"):
        home = tmp_path / name
        home.mkdir()
        step_agreement(DemoContext(home=home, seed=7))
        key = demo.demo_partner_key(home)
        path = demo.demo_partner_key_path(home)
        assert "demo" in path.name and stat.S_IMODE(path.stat().st_mode) == 0o600
        pinned = trust.load(home)[key.key_id]
        assert pinned.owner == "partner:demo-partner" and pinned.public_key == key.public_b64
        publics.append(key.public_b64)
    assert publics[0] != publics[1]
    derived = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"demo-partner:7").digest())
    assert _public_b64(derived) not in publics  # the old derivation from the seed is gone
