"""The pure cooperation rules: markings, agreement clauses, onward sharing, pseudonyms, signed requests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from fundtrail.domain.sharing import (
    Agreement,
    DataCategory,
    ExportContent,
    Origin,
    PackageFormat,
    PackageTerms,
    Pap,
    PartnerAgency,
    Tlp,
    check_fresh,
    check_onward,
    is_pseudonymised,
    pseudonym,
    pseudonymise_fields,
    request_payload,
)
from fundtrail.errors import InputError, PolicyViolationError

PARTNER = PartnerAgency("Seychelles FIU", "SC", "A" * 43 + "=", "0123456789abcdef", "http://127.0.0.1:1")
KEY = b"k" * 32


def agreement(**changes) -> Agreement:
    base = dict(
        name="ee-sc",
        partner=PARTNER,
        legal_basis="Budapest Convention art. 29",
        categories=frozenset({DataCategory.ADDRESSES_AND_TRANSACTIONS, DataCategory.TRACES}),
        tlp=Tlp.AMBER,
        pap=Pap.AMBER,
        pseudonymise=True,
        retention_days=90,
        onward_sharing=False,
    )
    base.update(changes)
    return Agreement(**base)


def terms(**changes) -> PackageTerms:
    base = dict(
        sender_key_id=PARTNER.key_id,
        format=PackageFormat.STIX,
        tlp=Tlp.AMBER,
        pap=Pap.AMBER,
        categories=frozenset({DataCategory.ADDRESSES_AND_TRANSACTIONS}),
        retention_days=30,
        onward_sharing=False,
        pseudonymised=True,
    )
    base.update(changes)
    return PackageTerms(**base)


TODAY = date(2026, 5, 1)


def test_tlp_levels_parse_and_order() -> None:
    assert Tlp.parse("TLP:AMBER+STRICT") is Tlp.AMBER_STRICT
    assert Tlp.parse("amber-strict") is Tlp.AMBER_STRICT and Tlp.parse("white") is Tlp.CLEAR
    assert [t.rank for t in (Tlp.CLEAR, Tlp.GREEN, Tlp.AMBER, Tlp.AMBER_STRICT, Tlp.RED)] == [0, 1, 2, 3, 4]
    assert Tlp.GREEN.allows_onward_sharing and not Tlp.AMBER.allows_onward_sharing
    assert Pap.parse("PAP:RED") is Pap.RED and Tlp.AMBER.label == "TLP:AMBER"
    with pytest.raises(InputError):
        Tlp.parse("orange")


def test_an_export_of_a_category_the_agreement_lacks_is_refused_naming_the_clause() -> None:
    a = agreement()
    with pytest.raises(PolicyViolationError) as refused:
        a.check_export(ExportContent(PackageFormat.BAGIT, frozenset({DataCategory.EVIDENCE})), TODAY)
    assert refused.value.rule == "agreement 'ee-sc' §4 data categories"
    assert "evidence" in str(refused.value)
    with pytest.raises(PolicyViolationError, match="personal_data"):
        a.check_export(
            ExportContent(
                PackageFormat.FTM,
                frozenset({DataCategory.ADDRESSES_AND_TRANSACTIONS, DataCategory.PERSONAL_DATA}),
            ),
            TODAY,
        )
    a.check_export(
        ExportContent(PackageFormat.STIX, frozenset({DataCategory.ADDRESSES_AND_TRANSACTIONS})), TODAY
    )


def test_a_revoked_or_ended_agreement_allows_nothing() -> None:
    content = ExportContent(PackageFormat.STIX, frozenset({DataCategory.ADDRESSES_AND_TRANSACTIONS}))
    with pytest.raises(PolicyViolationError, match="§2 term"):
        agreement(active=False).check_export(content, TODAY)
    with pytest.raises(PolicyViolationError, match="ended on 2026-04-30"):
        agreement(valid_until=date(2026, 4, 30)).check_export(content, TODAY)
    agreement(valid_until=TODAY).check_export(content, TODAY)


def test_the_optional_categories_of_a_format_follow_the_agreement() -> None:
    assert agreement().allowed_for(PackageFormat.STIX) == {
        DataCategory.ADDRESSES_AND_TRANSACTIONS,
        DataCategory.TRACES,
    }
    assert agreement().allowed_for(PackageFormat.FTM) == {
        DataCategory.ADDRESSES_AND_TRANSACTIONS,
        DataCategory.TRACES,
    }


def test_import_checks_each_clause() -> None:
    a = agreement()
    a.check_import(terms(), TODAY)
    cases = [
        (terms(sender_key_id="f" * 16), "§1 partner"),
        (terms(tlp=Tlp.RED), "§5 marking"),
        (terms(pap=Pap.CLEAR), "§5 marking"),
        (
            terms(
                categories=frozenset({DataCategory.PERSONAL_DATA, DataCategory.ADDRESSES_AND_TRANSACTIONS})
            ),
            "§4 data categories",
        ),
        (
            terms(format=PackageFormat.TAGPACK, categories=frozenset({DataCategory.ATTRIBUTION_TAGS})),
            "§4 data categories",
        ),
    ]
    for bad, clause in cases:
        with pytest.raises(PolicyViolationError, match=clause):
            a.check_import(bad, TODAY)
    personal = agreement(
        categories=frozenset({DataCategory.ADDRESSES_AND_TRANSACTIONS, DataCategory.PERSONAL_DATA})
    )
    with pytest.raises(PolicyViolationError, match="§6 pseudonymisation"):
        personal.check_import(
            terms(categories=frozenset({DataCategory.PERSONAL_DATA}), pseudonymised=False), TODAY
        )


def test_the_receiver_keeps_data_no_longer_than_either_side_allows() -> None:
    assert agreement(retention_days=90).retention_for(terms(retention_days=30)) == 30
    assert agreement(retention_days=10).retention_for(terms(retention_days=30)) == 10


def test_onward_sharing_goes_back_to_the_sender_only_unless_allowed() -> None:
    other = PartnerAgency("Police of France", "FR", "B" * 43 + "=", "fedcba9876543210")
    to_france = agreement(name="ee-fr", partner=other)
    back_home = agreement()
    closed = Origin("ee-sc", PARTNER.key_id, "pkg-1", Tlp.AMBER, onward_sharing=False)
    check_onward(closed, back_home)
    with pytest.raises(PolicyViolationError) as refused:
        check_onward(closed, to_france)
    assert refused.value.rule == "agreement 'ee-sc' §8 onward sharing"
    amber_open = Origin("ee-sc", PARTNER.key_id, "pkg-2", Tlp.AMBER, onward_sharing=True)
    with pytest.raises(PolicyViolationError, match="§5 marking"):
        check_onward(amber_open, to_france)
    check_onward(Origin("ee-sc", PARTNER.key_id, "pkg-3", Tlp.GREEN, onward_sharing=True), to_france)
    with pytest.raises(PolicyViolationError, match="onward sharing"):
        to_france.check_export(
            ExportContent(
                PackageFormat.STIX, frozenset({DataCategory.ADDRESSES_AND_TRANSACTIONS}), (closed,)
            ),
            TODAY,
        )


def test_pseudonyms_match_repeats_without_revealing_the_value() -> None:
    first = pseudonym(KEY, "name", "Ivan  Petrov")
    assert first == pseudonym(KEY, "name", "ivan petrov")  # normalised: case and spaces
    assert first != pseudonym(b"x" * 32, "name", "Ivan Petrov")  # another agreement, another pseudonym
    assert first != pseudonym(KEY, "idNumber", "Ivan Petrov")  # scoped by field
    assert "ivan" not in first.lower() and first.startswith("ps1:") and len(first) == 36
    with pytest.raises(InputError):
        pseudonym(b"short", "name", "x")
    fields = pseudonymise_fields(
        KEY,
        {
            "name": ["Ivan Petrov"],
            "email": ["i@example.org"],
            "birthDate": ["1990-01-02"],
            "nationality": ["ru"],
        },
    )
    assert fields == {"name": [first], "nationality": ["ru"]}
    assert is_pseudonymised(fields) and not is_pseudonymised({"name": ["Ivan Petrov"]})
    assert not is_pseudonymised({"name": [first], "email": ["i@example.org"]})


def test_agreements_validate_their_terms() -> None:
    with pytest.raises(InputError):
        agreement(name="Bad Name")
    with pytest.raises(InputError):
        agreement(categories=frozenset())
    with pytest.raises(InputError):
        agreement(retention_days=0)
    with pytest.raises(InputError):
        PartnerAgency("x", "Seychelles", "k", "0123456789abcdef")
    with pytest.raises(InputError, match="unknown"):
        DataCategory.parse_many(["addresses_and_transactions,secrets"])
    assert DataCategory.parse_many(["traces, evidence", "personal-data"]) == {
        DataCategory.TRACES,
        DataCategory.EVIDENCE,
        DataCategory.PERSONAL_DATA,
    }


def test_signed_request_payload_and_replay_window() -> None:
    payload = request_payload(
        "post", "/cooperation/psi?x=1", "2026-05-01T12:00:00Z", "n" * 32, "ab" * 32, "0123456789abcdef"
    )
    assert payload.split(b"\n")[:3] == [b"ft-ed25519-v1", b"POST", b"/cooperation/psi?x=1"]
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    check_fresh("2026-05-01T12:04:00Z", now)
    check_fresh("2026-05-01T11:56:00.5Z", now)
    with pytest.raises(InputError, match="replay"):
        check_fresh("2026-05-01T12:06:00Z", now)
    with pytest.raises(InputError):
        check_fresh((now - timedelta(hours=1)).isoformat(), now)
    with pytest.raises(InputError):
        check_fresh("2026-05-01T12:00:00", now)  # no time zone
