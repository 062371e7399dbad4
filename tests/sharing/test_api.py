"""Instance to instance over the API, in one process: signed calls, packages, PSI, the request workflow."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from fundtrail.sharing.models import SharedPackage, SharingAgreement
from fundtrail.sharing.signing import signed_headers

from .conftest import D1, D2, R1, R2, Q

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")


def signed(agency: Any, method: str, path: str, body: bytes, **kw: Any) -> dict[str, str]:
    headers = signed_headers(agency.key, method, path, body, **kw)
    headers["Content-Type"] = "application/json"
    return headers


def test_the_agency_identity_is_public(linked) -> None:
    answer = linked.http(linked.b).get("/api/cooperation/agency")
    assert answer.status_code == 200
    assert answer.json()["key_id"] == linked.b.key.key_id and answer.json()["country"] == "SC"


def test_only_signed_fresh_calls_of_a_partner_get_in(linked, tmp_path, chain_template) -> None:
    from .conftest import make_agency

    a, b = linked.a, linked.b
    http = linked.http(b)
    path = "/api/cooperation/requests"
    body = b"{}"
    assert http.post(path, content=body).status_code == 401  # not signed
    stranger = make_agency(tmp_path / "x", chain_template, "Stranger", "XX", "Unit")
    assert http.post(path, content=body, headers=signed(stranger, "POST", path, body)).status_code == 401
    old = datetime.now(UTC) - timedelta(minutes=10)
    assert http.post(path, content=body, headers=signed(a, "POST", path, body, now=old)).status_code == 401
    headers = signed(a, "POST", path, body)
    assert http.post(path, content=b'{"x": 1}', headers=headers).status_code == 401  # another body
    first = http.post(path, content=body, headers=headers)
    assert first.status_code == 422  # signed and fresh: in (the empty request itself is invalid)
    replay = http.post(path, content=body, headers=headers)
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]
    assert "cooperation.request.receive" not in b.audit_actions()


def test_a_package_sent_over_the_api_is_verified_then_stored(linked, tmp_path) -> None:
    from fundtrail.sharing.service import send_package

    a, b = linked.a, linked.b
    with a.op("ivo") as ctx:
        doc = send_package(ctx, a.cases["ransom"], "ee-sc", clients=linked.clients)
    assert doc["delivered"]["package_id"] == doc["package_id"]
    assert b.count(SharedPackage, direction="received", transport="api") == 1
    assert a.count(SharedPackage, direction="sent", transport="api") == 1
    with b.db() as db, db.session() as s:
        from fundtrail.audit.models import AuditRecord

        record = s.execute(select(AuditRecord).where(AuditRecord.action == "share.import")).scalar_one()
        assert record.actor == f"partner:{a.key.key_id}"


def test_a_tampered_package_posted_over_the_api_is_rejected(linked, tmp_path) -> None:
    from .test_packages import export

    a, b = linked.a, linked.b
    out = tmp_path / "case.json"
    export(a, "stix", out)
    bundle = json.loads(out.read_text())
    report = next(o for o in bundle["objects"] if o["type"] == "report")
    report["name"] = "something else"
    body = json.dumps(bundle).encode()
    path = "/api/cooperation/packages"
    answer = linked.http(b).post(path, content=body, headers=signed(a, "POST", path, body))
    assert answer.status_code == 409 and "do not match the signed envelope" in answer.json()["detail"]
    assert b.count(SharedPackage) == 0
    assert b.audit_actions()[-1] == "share.reject"


def test_deconfliction_finds_the_shared_addresses_and_nothing_else(linked) -> None:
    from fundtrail.sharing.psi import deconflict

    a, b = linked.a, linked.b
    with a.op("ivo") as ctx:
        found = deconflict(ctx, a.cases["ransom"], "ee-sc", clients=linked.clients)
    assert found["asked"] == 4 and found["partner_holds"] == 2  # A: R1 R2 D1 D2; B: D1 Q
    assert [(m["chain"], m["address"]) for m in found["matches"]] == [("btc", D1)]
    case = found["matches"][0]["cases"][0]
    assert case["case"] == b.cases["exchange"] and case["contact"]["name"] == "Ivo Investigator"
    assert case["contact"]["agency"] == b.name
    with b.db() as db, db.session() as s:
        from fundtrail.audit.models import AuditRecord

        rows = {r.action: json.loads(r.details) for r in s.execute(select(AuditRecord)).scalars()}
    assert rows["cooperation.psi.answer"]["client_items"] == 4
    revealed = rows["cooperation.psi.contacts"]["revealed"]
    assert [r["address"] for r in revealed] == [D1]
    log = json.dumps(rows)
    assert R1 not in log and R2 not in log and D2 not in log  # B never learns A's other addresses
    with a.db() as db, db.session() as s:
        from fundtrail.audit.models import AuditRecord

        query = s.execute(
            select(AuditRecord).where(AuditRecord.action == "cooperation.psi.query")
        ).scalar_one()
        assert json.loads(query.details)["addresses"] == [f"btc:{D1}"] and Q not in query.details


def test_contacts_need_an_open_query_of_the_same_partner(linked) -> None:
    from fundtrail.sharing.psi import start_query

    a = linked.a
    client = linked.clients(_row(a, "ee-sc"), a.key)
    with pytest.raises(Exception, match="no open deconfliction query"):
        client.call(
            "POST", "/psi/contacts", {"session": "made-up", "items": [{"chain": "btc", "address": D1}]}
        )
    query = start_query([("btc", D1)])
    answer = client.call("POST", "/psi", {"request": query.request})
    assert query.matches(answer["setup"], answer["response"]) == [("btc", D1)]
    items = [{"chain": "btc", "address": D1}, {"chain": "btc", "address": Q}]
    with pytest.raises(Exception, match="2 contacts asked for a query of 1"):
        client.call("POST", "/psi/contacts", {"session": answer["session"], "items": items})
    answer = client.call("POST", "/psi", {"request": query.request})
    client.call("POST", "/psi/contacts", {"session": answer["session"], "items": items[:1]})
    with pytest.raises(Exception, match="no open deconfliction query"):  # a session is used once
        client.call("POST", "/psi/contacts", {"session": answer["session"], "items": items[:1]})


def _row(agency: Any, name: str) -> SharingAgreement:
    with agency.db() as db, db.session() as s:
        row = s.execute(select(SharingAgreement).where(SharingAgreement.name == name)).scalar_one()
        s.expunge(row)
        return row


def draft_freeze(a: Any) -> str:
    """A's investigator drafts a freeze of the deposit addresses; the supervisor approves it."""
    from fundtrail.cases.models import Subject
    from fundtrail.cases.requests import draft_request, transition

    with a.op("ivo") as ctx:
        ids = [
            s.id for s in ctx.session.execute(select(Subject).where(Subject.value.in_([D1, D2]))).scalars()
        ]
        req = draft_request(
            ctx,
            a.cases["ransom"],
            "freeze",
            "Seychelles Financial Intelligence Unit",
            recipient_jurisdiction="SC",
            subject_ids=ids,
            measures="Freeze the balances of the accounts behind these deposit addresses.",
        )
        number = req.number
    with a.op("sue") as ctx:
        transition(ctx, number, "approve", reason="proportionate and urgent")
    return number


def test_the_freeze_request_round_trips_between_the_agencies(linked) -> None:
    from fundtrail.cases.models import LedgerEntry, LegalRequest
    from fundtrail.domain.sharing import is_pseudonym
    from fundtrail.sharing.legal_requests import (
        FrozenItem,
        acknowledge,
        answer,
        inbox_doc,
        list_inbox,
        send_request,
    )

    a, b = linked.a, linked.b
    number = draft_freeze(a)
    with a.op("lia") as ctx:
        out = send_request(ctx, number, "ee-sc", clients=linked.clients)
        inbox_number = out.remote_number
    with b.op("lia") as ctx:
        (item,) = [inbox_doc(p) for p in list_inbox(ctx)]
    assert item["number"] == inbox_number and item["state"] == "received" and item["remote_number"] == number
    assert {s["value"] for s in item["subjects"]} == {D1, D2}
    assert item["answer_due"] is not None  # the earlier of A's deadline and the agreement's (5 days)
    assert item["answer_due"] <= datetime.now(UTC).date() + timedelta(days=5)

    with b.op("lia") as ctx:
        acknowledge(ctx, inbox_number, clients=linked.clients)
    with a.db() as db, db.session() as s:
        assert (
            s.execute(select(LegalRequest.state).where(LegalRequest.number == number)).scalar_one()
            == "acknowledged"
        )
    frozen = [
        FrozenItem(chain="btc", address=D1, amount="9980000", holder="Ivan Petrov", account="NW-778812")
    ]
    with b.op("lia") as ctx:
        answer(ctx, inbox_number, frozen=frozen, note="balance frozen for 30 days", clients=linked.clients)
    with a.db() as db, db.session() as s:
        req = s.execute(select(LegalRequest).where(LegalRequest.number == number)).scalar_one()
        assert req.state == "answered" and "9980000" in req.outcome
        entry = s.execute(select(LedgerEntry)).scalar_one()
    assert (entry.kind, entry.amount, entry.jurisdiction) == ("frozen", 9_980_000, "SC")
    assert is_pseudonym(entry.holder) and "Ivan" not in (entry.note or "")
    for agency, actions in (
        (
            a,
            [
                "cooperation.request.send",
                "request.acknowledge",
                "cooperation.request.acknowledged",
                "request.answer",
                "ledger.record",
                "cooperation.request.answered",
            ],
        ),
        (b, ["cooperation.request.receive", "cooperation.request.acknowledge", "cooperation.request.answer"]),
    ):
        done = agency.audit_actions()
        assert all(x in done for x in actions), set(actions) - set(done)
        assert agency.audit_intact()


def test_a_request_cannot_be_acknowledged_by_another_partner(linked, tmp_path, chain_template) -> None:
    from fundtrail.cases.models import LegalRequest
    from fundtrail.sharing.legal_requests import send_request

    from .conftest import agree, make_agency

    a = linked.a
    number = draft_freeze(a)
    with a.op("lia") as ctx:
        send_request(ctx, number, "ee-sc", clients=linked.clients)
    c = make_agency(tmp_path / "c", chain_template, "Police of Utopia", "UT", "Unit")
    agree(a, c, "ee-ut")  # C is a partner of A, but the request went to B
    path = f"/api/cooperation/requests/{number}/acknowledgement"
    answer = linked.http(a).post(path, content=b"{}", headers=signed(c, "POST", path, b"{}"))
    assert answer.status_code == 404
    answer = linked.http(a).post(path, content=b"{}", headers=signed(a, "POST", path, b"{}"))
    assert answer.status_code == 401  # A's own key is no partner of A
    with a.db() as db, db.session() as s:
        assert (
            s.execute(select(LegalRequest.state).where(LegalRequest.number == number)).scalar_one() == "sent"
        )


def test_a_failed_delivery_leaves_the_request_as_it_was(linked) -> None:
    from fundtrail.cases.models import LegalRequest
    from fundtrail.errors import SourceUnavailableError
    from fundtrail.sharing.legal_requests import send_request
    from fundtrail.sharing.partners import http_client

    a = linked.a
    number = draft_freeze(a)
    with a.db() as db, db.transaction() as s:
        s.execute(update(SharingAgreement).values(partner_endpoint="http://127.0.0.1:9"))
    with pytest.raises(SourceUnavailableError), a.op("lia") as ctx:
        send_request(ctx, number, "ee-sc", clients=http_client)
    with a.db() as db, db.session() as s:
        assert (
            s.execute(select(LegalRequest.state).where(LegalRequest.number == number)).scalar_one()
            == "approved"
        )


def test_the_inbox_is_listed_for_users_who_handle_requests(linked) -> None:
    from datetime import timedelta as td

    from fundtrail.sharing.legal_requests import send_request

    a, b = linked.a, linked.b
    number = draft_freeze(a)
    with a.op("lia") as ctx:
        send_request(ctx, number, "ee-sc", clients=linked.clients)
    auth = linked.apps["http://b.test"].state.fundtrail.auth
    token, _ = auth.issue("lia", name="tests", lifetime=td(days=1))
    inbox = linked.http(b).get("/api/cooperation/inbox", headers={"Authorization": f"Bearer {token}"})
    assert inbox.status_code == 200 and [i["remote_number"] for i in inbox.json()] == [number]
    analyst, _ = auth.issue("ana", name="tests", lifetime=td(days=1))
    denied = linked.http(b).get("/api/cooperation/inbox", headers={"Authorization": f"Bearer {analyst}"})
    assert denied.status_code == 403


def test_a_partner_key_only_in_the_database_does_not_get_in(linked, tmp_path, chain_template) -> None:
    """Someone who can write to B's database adds his key to an agreement: his signed calls are refused
    (401), because only keys pinned in B's trust file are trusted; A's own key, once unpinned, too."""
    from fundtrail.audit import trust

    from .conftest import make_agency

    a, b = linked.a, linked.b
    http = linked.http(b)
    path, body = "/api/cooperation/requests", b"{}"
    assert http.post(path, content=body, headers=signed(a, "POST", path, body)).status_code == 422  # in
    mallory = make_agency(tmp_path / "m", chain_template, "Mallory", "XX", "Unit")
    with b.db() as db, db.transaction() as s:
        s.execute(
            update(SharingAgreement)
            .where(SharingAgreement.name == "sc-ee")
            .values(partner_key_id=mallory.key.key_id, partner_public_key=mallory.key.public_b64)
        )
    refused = http.post(path, content=body, headers=signed(mallory, "POST", path, body))
    assert refused.status_code == 401
    with b.db() as db, db.transaction() as s:  # put A's key back, but unpin it
        s.execute(
            update(SharingAgreement)
            .where(SharingAgreement.name == "sc-ee")
            .values(partner_key_id=a.key.key_id, partner_public_key=a.key.public_b64)
        )
    assert trust.unpin(b.home, a.key.key_id)
    assert http.post(path, content=body, headers=signed(a, "POST", path, body)).status_code == 401
    assert "cooperation.request.receive" not in b.audit_actions()


def test_a_signed_body_nested_deeply_is_bad_input_not_a_crash(linked) -> None:
    a, b = linked.a, linked.b
    http = linked.http(b)
    path = "/api/cooperation/packages"
    for depth in (150, 100_000):
        body = b"[" * depth + b"]" * depth
        answer = http.post(path, content=body, headers=signed(a, "POST", path, body))
        assert answer.status_code == 422, answer.text
        assert "nest" in answer.json()["detail"]
