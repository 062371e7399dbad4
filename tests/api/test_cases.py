"""Cases, subjects, requests and evidence through the API: reach by unit, reasons, audit records."""

from __future__ import annotations

import pytest


def test_case_list_shows_only_the_users_unit(agency) -> None:
    cyber, fraud = agency.cases["cyber"], agency.cases["fraud"]
    mine = agency.client.get("/api/cases", headers=agency.headers("ana")).json()
    assert [c["number"] for c in mine["items"]] == [cyber] and mine["total"] == 1
    theirs = agency.client.get("/api/cases", headers=agency.headers("oscar")).json()
    assert [c["number"] for c in theirs["items"]] == [fraud]
    # auditors see the whole jurisdiction; an auditor of another jurisdiction sees nothing
    audited = agency.client.get("/api/cases", headers=agency.headers("aud")).json()
    assert {c["number"] for c in audited["items"]} == {cyber, fraud}
    assert agency.client.get("/api/cases", headers=agency.headers("paul")).json()["total"] == 0


def test_a_case_of_another_unit_is_not_found_like_a_missing_one(agency) -> None:
    fraud = agency.cases["fraud"]
    other = agency.client.get(f"/api/cases/{fraud}", headers=agency.headers("ivo"))
    missing = agency.client.get("/api/cases/EE-2001-0999", headers=agency.headers("ivo"))
    assert other.status_code == missing.status_code == 404
    assert other.json()["title"] == missing.json()["title"] == "Not found"
    assert agency.client.get(f"/api/cases/{fraud}", headers=agency.headers("oscar")).status_code == 200
    # admins see no case content: their role may not read cases at all (403, whichever the case)
    assert agency.client.get(f"/api/cases/{fraud}", headers=agency.headers("admin")).status_code == 403
    assert agency.client.get("/api/cases/EE-2001-0999", headers=agency.headers("admin")).status_code == 403


def test_reading_a_case_is_audited_with_user_and_reason(agency) -> None:
    cyber = agency.cases["cyber"]
    before = len(agency.audit())
    r = agency.client.get(f"/api/cases/{cyber}", headers=agency.headers("ana", reason="weekly review"))
    assert r.status_code == 200
    doc = r.json()
    assert doc["number"] == cyber and len(doc["subjects"]) == 2
    new = agency.audit()[before:]
    assert {"actor": "ana", "action": "api.get_case", "case": cyber, "reason": "weekly review"}.items() <= \
        next(x for x in new if x["action"] == "api.get_case").items()
    assert any(x["action"] == "case.read" and x["reason"] == "weekly review" for x in new)


def test_refused_calls_are_audited(agency) -> None:
    fraud = agency.cases["fraud"]
    before = len(agency.audit())
    agency.client.get(f"/api/cases/{fraud}", headers=agency.headers("ivo", reason="curious"))
    refused = [x for x in agency.audit()[before:] if x["action"] == "api.refused"]
    assert len(refused) == 1 and refused[0]["actor"] == "ivo" and refused[0]["reason"] == "curious"
    assert '"status":404' in refused[0]["details"].replace(" ", "")


def test_open_and_change_a_case_needs_a_reason(agency) -> None:
    h = agency.headers("ivo")
    no_reason = agency.client.post("/api/cases", headers=h, json={"title": "Phishing kit"})
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    r = agency.client.post("/api/cases", headers=h, json={"title": "Phishing kit", "severity": "low",
                                                      "reason": "report from a bank"})
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["unit"] == "Cybercrime Unit" and case["status"] == "open"
    change = {"severity": "high", "expected_version": case["version"], "status": "active"}
    r = agency.client.patch(f"/api/cases/{case['number']}",
                            headers=agency.headers("ivo", reason="more victims"),
                            json=change)
    assert r.status_code == 200, r.text
    assert (r.json()["severity"], r.json()["status"]) == ("high", "active")
    stale = agency.client.patch(f"/api/cases/{case['number']}", headers=h,
                                json={"title": "x", "expected_version": case["version"], "reason": "edit"})
    assert stale.status_code == 409
    writes = [x for x in agency.audit() if x["action"] in ("api.create_case", "api.update_case")]
    assert [x["reason"] for x in writes] == ["report from a bank", "more victims"]


def test_analysts_may_not_open_cases(agency) -> None:
    r = agency.client.post("/api/cases", headers=agency.headers("ana"), json={"title": "x", "reason": "y"})
    assert r.status_code == 403
    assert r.json()["type"] == "urn:fundtrail:problem:forbidden"


@pytest.mark.parametrize("user", ["ivo", "sue", "oscar"])
def test_cases_are_opened_only_in_ones_own_unit_and_jurisdiction(agency, user) -> None:
    own = "Fraud Unit" if user == "oscar" else "Cybercrime Unit"
    other = "Cybercrime Unit" if user == "oscar" else "Fraud Unit"
    before = agency.client.get("/api/cases", headers=agency.headers("aud")).json()["total"]
    for where in ({"unit": other}, {"jurisdiction": "FR"}, {"unit": other, "jurisdiction": "FR"}):
        r = agency.client.post("/api/cases", headers=agency.headers(user),
                               json={"title": "Someone else's case", "reason": "tip-off", **where})
        assert r.status_code == 403, r.text
        assert r.json()["type"] == "urn:fundtrail:problem:forbidden" and "may not open a case" in r.text
    assert agency.client.get("/api/cases", headers=agency.headers("aud")).json()["total"] == before
    r = agency.client.post("/api/cases", headers=agency.headers(user),
                           json={"title": "Ours", "reason": "tip-off", "unit": own, "jurisdiction": "EE"})
    assert r.status_code == 201, r.text
    assert (r.json()["unit"], r.json()["jurisdiction"]) == (own, "EE")


def test_subjects_with_deconfliction(agency, world) -> None:
    cyber, fraud = agency.cases["cyber"], agency.cases["fraud"]
    r = agency.client.post(f"/api/cases/{fraud}/subjects",
                           headers=agency.headers("oscar", reason="victim paid"),
                           json={"kind": "address", "chain": "btc", "value": world.S})
    assert r.status_code == 201, r.text
    assert [d["case"] for d in r.json()["deconfliction"]] == [cyber]
    bad = agency.client.post(f"/api/cases/{fraud}/subjects", headers=agency.headers("oscar", reason="x"),
                             json={"kind": "address", "chain": "btc", "value": "not-an-address"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "value"
    page = agency.client.get(f"/api/cases/{cyber}/subjects?limit=1", headers=agency.headers("ana")).json()
    assert page["total"] == 2 and len(page["items"]) == 1 and page["next_offset"] == 1


def test_request_workflow_draft_approve_send_answer(agency) -> None:
    cyber = agency.cases["cyber"]
    r = agency.client.post(f"/api/cases/{cyber}/requests", headers=agency.headers("ivo"),
                           json={"type": "freeze", "recipient": "Northwind Exchange",
                                 "reason": "funds arrived"})
    assert r.status_code == 201, r.text
    number = r.json()["number"]
    assert r.json()["state"] == "draft" and r.json()["actions"] == ["approve"]
    # the author may not approve (ivo is no supervisor anyway); an analyst may not either
    assert agency.client.post(f"/api/requests/{number}/approve", headers=agency.headers("ana"),
                              json={"reason": "ok"}).status_code == 403
    approved = agency.client.post(f"/api/requests/{number}/approve", headers=agency.headers("sue"),
                                  json={"reason": "grounds are sound"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["approved_by"] == "sue"
    lia = agency.headers("lia")
    sent = agency.client.post(f"/api/requests/{number}/send", headers=lia, json={"reason": "sent"})
    assert sent.status_code == 200 and sent.json()["answer_due"] is not None
    wrong = agency.client.post(f"/api/requests/{number}/send", headers=lia, json={"reason": "again"})
    assert wrong.status_code == 409
    answered = agency.client.post(f"/api/requests/{number}/answer", headers=agency.headers("lia"),
                                  json={"reason": "reply received", "outcome": "frozen 0.05 BTC"})
    assert answered.json()["state"] == "answered" and answered.json()["outcome"] == "frozen 0.05 BTC"
    history = [(h["to"], h["by"], h["reason"]) for h in answered.json()["history"]]
    assert history == [("draft", "ivo", "funds arrived"), ("approved", "sue", "grounds are sound"),
                       ("sent", "lia", "sent"), ("answered", "lia", "reply received")]


def test_supervisor_never_approves_their_own_request(agency) -> None:
    cyber = agency.cases["cyber"]
    r = agency.client.post(f"/api/cases/{cyber}/requests", headers=agency.headers("sue", reason="urgent"),
                           json={"type": "preservation", "recipient": "Northwind Exchange"})
    own = agency.client.post(f"/api/requests/{r.json()['number']}/approve", headers=agency.headers("sue"),
                             json={"reason": "mine"})
    assert own.status_code == 403
    assert "drafted it" in own.json()["detail"]


def test_evidence_preserve_view_verify(agency, world) -> None:
    cyber = agency.cases["cyber"]
    r = agency.client.post(f"/api/cases/{cyber}/evidence", headers=agency.headers("ivo"),
                           json={"chain": "btc", "seeds": [world.R], "max_hops": 3,
                                 "reason": "freeze the trail"})
    assert r.status_code == 201, r.text
    evidence_id = r.json()["id"]
    listed = agency.client.get(f"/api/cases/{cyber}/evidence", headers=agency.headers("ana")).json()
    assert [e["id"] for e in listed["items"]] == [evidence_id]
    shown = agency.client.get(f"/api/evidence/{evidence_id}", headers=agency.headers("aud", reason="audit"))
    assert shown.status_code == 200
    assert [c["event"] for c in shown.json()["custody"]][-1] == "viewed"
    check = agency.client.post(f"/api/evidence/{evidence_id}/verify", headers=agency.headers("ana"),
                               json={"reason": "before court"})
    assert check.status_code == 200 and check.json()["ok"] is True
    # tamper with a file of the package: verification says what differs
    bag = agency.home / shown.json()["path"] / "data" / "trace.json"
    bag.write_text(bag.read_text().replace("haircut", "poison"))
    check = agency.client.post(f"/api/evidence/{evidence_id}/verify", headers=agency.headers("ana"),
                               json={"reason": "again"}).json()
    assert check["ok"] is False and check["files"]


def test_recovery_ledger_and_public_report(agency) -> None:
    cyber = agency.cases["cyber"]
    h = agency.headers("ivo", reason="exchange froze the funds")
    no_basis = agency.client.post(f"/api/cases/{cyber}/ledger", headers=h,
                                  json={"kind": "frozen", "chain": "btc", "amount": "5000000"})
    assert no_basis.status_code == 422
    r = agency.client.post(f"/api/cases/{cyber}/ledger", headers=h,
                           json={"kind": "frozen", "chain": "btc", "amount": "5000000",
                                 "court_order": "TLN-1/26"})
    assert r.status_code == 201, r.text
    assert r.json()["amount"] == "5000000"
    assert agency.client.post(f"/api/cases/{cyber}/ledger", headers=agency.headers("ana", reason="x"),
                              json={"kind": "frozen", "chain": "btc", "amount": "1",
                                    "court_order": "x"}).status_code == 403
    ledger = agency.client.get(f"/api/cases/{cyber}/ledger", headers=agency.headers("ana")).json()
    assert [e["kind"] for e in ledger["items"]] == ["frozen"]
    report = agency.client.get("/api/reports/recovery", headers=agency.headers("aud")).json()
    assert report["items"][0]["amount_display"] == "0.05 BTC" and report["items"][0]["cases"] == 1


def test_audit_verification_and_case_trail_for_auditors(agency) -> None:
    cyber = agency.cases["cyber"]
    agency.client.get(f"/api/cases/{cyber}", headers=agency.headers("ana", reason="review"))
    verified = agency.client.get("/api/audit/verify", headers=agency.headers("aud"))
    assert verified.status_code == 200 and verified.json()["intact"] is True
    trail = agency.client.get(f"/api/cases/{cyber}/audit?limit=500", headers=agency.headers("aud")).json()
    assert any(r["actor"] == "ana" and r["action"] == "api.get_case" and r["reason"] == "review"
               for r in trail["items"])
    assert all(r["case_number"] == cyber for r in trail["items"])
    assert agency.client.get("/api/audit/verify", headers=agency.headers("ana")).status_code == 403
    assert agency.client.get(f"/api/cases/{cyber}/audit", headers=agency.headers("paul")).status_code == 404


def test_tampered_audit_log_is_reported_with_the_first_bad_record(agency) -> None:
    from sqlalchemy import text

    agency.client.get(f"/api/cases/{agency.cases['cyber']}", headers=agency.headers("ana", reason="review"))
    with agency.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_records SET reason = 'edited' WHERE seq = 3"))
    doc = agency.client.get("/api/audit/verify", headers=agency.headers("aud")).json()
    assert doc["intact"] is False and doc["first_bad_record"] == 3
