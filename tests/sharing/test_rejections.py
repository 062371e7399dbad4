"""Packages that must not get in, and exports that must not get out: refused whole, naming why."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from fundtrail.cases.models import Subject
from fundtrail.errors import ConflictError, IntegrityError, PolicyViolationError
from fundtrail.sharing.models import SharedObject, SharedPackage
from fundtrail.sharing.retention import apply_retention
from fundtrail.sharing.service import export_case, import_package, read_package, record_rejection
from fundtrail.store import ChainStore

from .conftest import D1, R1, agree, make_agency, seed_ransom_case
from .test_packages import export, receive


def nothing_stored(b) -> None:
    assert b.count(SharedPackage, direction="received") == 0
    assert b.count(SharedObject) == 0
    assert b.tag_count() == 0
    assert not (b.home / "shared").exists() or not any((b.home / "shared").iterdir())


def rejected(b, path: Path, error: type[Exception], match: str) -> Exception:
    """Import ``path`` into ``b`` and expect a rejection (audited like the CLI does)."""
    received = None
    with pytest.raises(error, match=match) as caught:
        received = read_package(path)
        receive(b, path)
    with b.op() as ctx:
        record_rejection(ctx, str(path), caught.value, envelope=received.envelope if received else None)
    nothing_stored(b)
    assert b.audit_actions()[-1] == "share.reject"
    return caught.value


def test_a_tampered_stix_object_is_rejected(pair, tmp_path) -> None:
    a, b = pair
    out = tmp_path / "case.stix.json"
    export(a, "stix", out)
    bundle = json.loads(out.read_text())
    wallet = next(o for o in bundle["objects"] if o["type"] == "cryptocurrency-wallet" and o["value"] == D1)
    wallet["value"] = R1  # point the partner at another address
    out.write_text(json.dumps(bundle))
    rejected(b, out, IntegrityError, "do not match the signed envelope .changed")


def test_an_added_stix_object_is_rejected(pair, tmp_path) -> None:
    a, b = pair
    out = tmp_path / "case.stix.json"
    export(a, "stix", out)
    bundle = json.loads(out.read_text())
    bundle["objects"].append(
        {
            "type": "identity",
            "spec_version": "2.1",
            "id": "identity--" + "1" * 8 + "-1111-4111-8111-" + "1" * 12,
            "created": "2026-01-01T00:00:00Z",
            "modified": "2026-01-01T00:00:00Z",
            "name": "Innocent Bystander",
        }
    )
    out.write_text(json.dumps(bundle))
    rejected(b, out, IntegrityError, "not signed")


def test_a_tampered_envelope_fails_its_signature(pair, tmp_path) -> None:
    a, b = pair
    out = tmp_path / "case.stix.json"
    export(a, "stix", out)
    bundle = json.loads(out.read_text())
    package = next(o for o in bundle["objects"] if o["type"] == "fundtrail-package")
    package["envelope"]["retention_days"] = 3650  # keep it ten years instead
    out.write_text(json.dumps(bundle))
    rejected(b, out, IntegrityError, "signature of package .* is not valid")


@pytest.mark.parametrize("fmt", ["ftm", "tagpack"])
def test_a_changed_payload_file_is_rejected(pair, tmp_path, fmt) -> None:
    a, b = pair
    out = tmp_path / f"case.{fmt}"
    export(a, fmt, out)
    out.write_bytes(out.read_bytes().replace(b"Northwind", b"Southwind"))
    rejected(b, out, IntegrityError, "payload does not match its signed envelope")


def test_a_tampered_evidence_bag_is_rejected(pair, tmp_path) -> None:
    a, b = pair
    out = tmp_path / "bag"
    export(a, "bagit", out)
    trace = next((out / "data" / "evidence").glob("*/data/trace.json"))
    trace.write_bytes(trace.read_bytes().replace(b"9980000", b"1000000"))
    rejected(b, out, IntegrityError, "changed: data/evidence/.*/data/trace.json")


def test_a_package_without_its_envelope_is_rejected(pair, tmp_path) -> None:
    a, b = pair
    out = tmp_path / "case.ftm"
    export(a, "ftm", out)
    (tmp_path / "case.ftm.envelope.json").unlink()
    rejected(b, out, IntegrityError, "no signed envelope")


def test_a_package_from_an_agency_without_agreement_is_rejected(pair, tmp_path, chain_template) -> None:
    a, b = pair
    c = make_agency(tmp_path / "c", chain_template, "Police of Utopia", "UT", "Unit")
    c.cases["ransom"] = seed_ransom_case(c)
    agree(c, b, "ut-sc")
    out = tmp_path / "c.stix.json"
    export(c, "stix", out, agreement="ut-sc")
    rejected(b, out, IntegrityError, "not the key of any partner")


def test_a_forged_signature_is_rejected(pair, tmp_path, chain_template) -> None:
    """Someone signs with their own key a package claiming to come from A."""
    from fundtrail.sharing import envelope as env

    a, b = pair
    out = tmp_path / "case.ftm"
    export(a, "ftm", out)
    forger = make_agency(tmp_path / "f", chain_template, "Forger", "XX", "Unit").key
    sidecar = env.read_sidecar(out)
    forged = sidecar.model_copy(
        update={
            "signature": env.Signature(
                algorithm="ed25519", key_id=sidecar.sender.key_id, value=forger.sign(b"x")
            )
        }
    )
    env.write_sidecar(out, forged)
    rejected(b, out, IntegrityError, "signature .* is not valid")


def test_a_package_outside_the_agreement_is_rejected_naming_the_clause(pair, tmp_path) -> None:
    """B only accepts addresses from A; A's own agreement lets it send personal data."""
    from fundtrail.sharing.models import SharingAgreement

    a, b = pair
    with b.db() as db, db.transaction() as s:
        from sqlalchemy import update

        s.execute(
            update(SharingAgreement)
            .where(SharingAgreement.name == "sc-ee")
            .values(categories="addresses_and_transactions,traces")
        )
    out = tmp_path / "case.ftm"
    export(a, "ftm", out)
    error = rejected(b, out, PolicyViolationError, "personal_data")
    assert error.rule == "agreement 'sc-ee' §4 data categories"


def test_a_package_with_another_marking_is_rejected(pair, tmp_path) -> None:
    from fundtrail.sharing.models import SharingAgreement

    a, b = pair
    with a.db() as db, db.transaction() as s:
        from sqlalchemy import update

        s.execute(update(SharingAgreement).where(SharingAgreement.name == "ee-sc").values(tlp="red"))
    out = tmp_path / "case.stix.json"
    export(a, "stix", out)
    error = rejected(b, out, PolicyViolationError, "TLP:RED")
    assert error.rule == "agreement 'sc-ee' §5 marking"


def test_a_package_for_another_agency_is_rejected(pair, tmp_path, chain_template) -> None:
    a, b = pair
    c = make_agency(tmp_path / "c", chain_template, "Police of Utopia", "UT", "Unit")
    agree(a, c, "ee-ut")
    out = tmp_path / "case.stix.json"
    export(a, "stix", out, agreement="ee-ut")
    error = rejected(b, out, PolicyViolationError, "addressed to key")
    assert error.rule == "agreement 'sc-ee' §1 partner"


def test_the_same_package_is_stored_once(pair, tmp_path) -> None:
    a, b = pair
    out = tmp_path / "case.stix.json"
    export(a, "stix", out)
    receive(b, out)
    with pytest.raises(ConflictError, match="already received"):
        receive(b, out)
    assert b.count(SharedPackage, direction="received") == 1


def test_an_export_the_agreement_forbids_is_refused_naming_the_clause(pair, tmp_path) -> None:
    a, b = pair
    agree(a, b, "ee-sc-addresses", categories=frozenset({"addresses_and_transactions"}))
    for fmt, missing in (("bagit", "evidence"), ("tagpack", "attribution_tags")):
        out = tmp_path / f"refused.{fmt}"
        with pytest.raises(PolicyViolationError, match=missing) as refused:
            export(a, fmt, out, agreement="ee-sc-addresses")
        assert refused.value.rule == "agreement 'ee-sc-addresses' §4 data categories"
        assert not out.exists()
    assert a.count(SharedPackage) == 0


def test_partner_data_does_not_travel_on_to_a_third_party(pair, tmp_path, chain_template) -> None:
    """B keeps A's addresses in its case; exporting that case to C is refused, back to A allowed."""
    a, b = pair
    out = tmp_path / "from-a.stix.json"
    export(a, "stix", out)
    receive(b, out, user="ivo", case=b.cases["exchange"])
    c = make_agency(tmp_path / "c", chain_template, "Police of Utopia", "UT", "Unit")
    agree(b, c, "sc-ut")
    with pytest.raises(PolicyViolationError) as refused, b.op("ivo") as ctx:
        export_case(ctx, b.cases["exchange"], "sc-ut", "stix", tmp_path / "to-c.json")
    assert refused.value.rule == "agreement 'sc-ee' §8 onward sharing"
    assert not (tmp_path / "to-c.json").exists()
    with b.op("ivo") as ctx:
        export_case(ctx, b.cases["exchange"], "sc-ee", "stix", tmp_path / "back-to-a.json")


def test_retention_deletes_received_data_when_the_partner_says(pair, tmp_path) -> None:
    from fundtrail.cases.context import open_operation

    a, b = pair
    stix_out, tags_out = tmp_path / "case.stix.json", tmp_path / "case.yaml"
    export(a, "stix", stix_out)
    export(a, "tagpack", tags_out)
    first = receive(b, stix_out, user="ivo", case=b.cases["exchange"])
    receive(b, tags_out)
    assert b.tag_count() > 0 and b.count(Subject, role="partner") > 0
    assert first.retain_until - timedelta(days=30) < first.retain_until  # 30 days, the agreement's term

    def opener():
        return ChainStore.open_home(b.home)

    with open_operation(
        b.home, None, user_required=False, now=first.retain_until - timedelta(hours=1)
    ) as ctx:
        assert apply_retention(ctx, store_opener=opener) == []
    with open_operation(
        b.home, None, user_required=False, now=first.retain_until + timedelta(hours=1)
    ) as ctx:
        done = apply_retention(ctx, store_opener=opener)
    assert len(done) == 2
    assert b.count(SharedObject) == 0 and b.tag_count() == 0 and b.count(Subject, role="partner") == 0
    assert not any((b.home / "shared").iterdir())
    assert b.count(SharedPackage, direction="received") == 2  # tombstones: who sent what, when; no content
    assert b.audit_actions().count("share.retention") == 2 and b.audit_intact()


def test_import_runs_only_for_roles_that_handle_requests(pair, tmp_path) -> None:
    from fundtrail.errors import PermissionDeniedError

    a, b = pair
    out = tmp_path / "case.stix.json"
    export(a, "stix", out)
    with pytest.raises(PermissionDeniedError):
        receive(b, out, user="ana")  # an analyst
    nothing_stored(b)


def test_a_received_package_on_file_is_kept_as_received(pair, tmp_path) -> None:
    a, b = pair
    out = tmp_path / "case.ftm"
    export(a, "ftm", out)
    stored = receive(b, out)
    kept = b.home / "shared" / stored.package_id
    assert (kept / "case.ftm").read_bytes() == out.read_bytes()
    assert (kept / "case.ftm.envelope.json").is_file()


def test_import_package_needs_the_chain_store_for_tags(pair, tmp_path) -> None:
    from fundtrail.errors import InputError

    a, b = pair
    out = tmp_path / "case.yaml"
    export(a, "tagpack", out)
    with pytest.raises(InputError, match="chain store"), b.op("lia") as ctx:
        import_package(ctx, read_package(out))
    nothing_stored(b)


def test_a_partner_key_found_only_in_the_database_is_refused(pair, tmp_path, chain_template) -> None:
    """Someone who can write to B's database swaps the agreement's key for his own: his packages are
    refused, because his key is not pinned in B's trust file."""
    from sqlalchemy import update

    from fundtrail.sharing.models import SharingAgreement

    a, b = pair
    mallory = make_agency(tmp_path / "m", chain_template, a.name, a.country, "Cybercrime Bureau")
    mallory.cases["ransom"] = seed_ransom_case(mallory)
    agree(mallory, b, "ee-sc")
    with b.db() as db, db.transaction() as s:
        s.execute(
            update(SharingAgreement)
            .where(SharingAgreement.name == "sc-ee")
            .values(partner_key_id=mallory.key.key_id, partner_public_key=mallory.key.public_b64)
        )
    out = tmp_path / "case.stix.json"
    export(mallory, "stix", out)
    rejected(b, out, IntegrityError, f"partner key {mallory.key.key_id} .* is not pinned")


def test_an_agreement_whose_key_is_unpinned_accepts_nothing_until_pinned(pair, tmp_path, cli) -> None:
    from fundtrail.audit import trust

    a, b = pair
    assert trust.unpin(b.home, a.key.key_id)  # as if the agreement was recorded before keys were pinned
    out = tmp_path / "case.bagit"
    export(a, "bagit", out)
    rejected(b, out, IntegrityError, "not pinned.*fundtrail agreement pin sc-ee")
    fingerprint = trust.fingerprint(a.key.public_b64)
    refused = cli("agreement", "pin", "sc-ee", "--home", str(b.home), input="n\n")
    assert refused.exit_code == 2 and fingerprint in refused.stderr
    wrong = cli("agreement", "pin", "sc-ee", "--fingerprint", "SHA256:0000", "--home", str(b.home))
    assert wrong.exit_code == 2 and a.key.key_id not in trust.load(b.home)
    pinned = cli("agreement", "pin", "sc-ee", "--home", str(b.home), "--format", "json", input="y\n")
    assert pinned.exit_code == 0, pinned.output
    answer = pinned.stdout[pinned.stdout.index("{") :]  # the test runner echoes the typed answer
    assert json.loads(answer)["fingerprint"] == fingerprint
    assert trust.load(b.home)[a.key.key_id].owner == "partner:sc-ee"
    assert "agreement.pin" in b.audit_actions()
    receive(b, out)  # now it gets in


def test_a_file_added_to_an_evidence_bag_is_rejected(pair, tmp_path) -> None:
    a, b = pair
    out = tmp_path / "case.bagit"
    export(a, "bagit", out)
    inner = next(p for p in (out / "data" / "evidence").iterdir() if p.is_dir())
    (inner / "notes.txt").write_text("added on the way")
    rejected(b, out, IntegrityError, "notes.txt")
