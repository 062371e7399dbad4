"""Audited case reads in snapshots: each read's records written once by the group commit before it answers,
nothing disclosed when they cannot be written, and kept case documents that every change (through the
API, or the CLI in another process) makes the next read rebuild."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings

import pytest
from sqlalchemy import func, select

from fundtrail.audit import log as audit_log
from fundtrail.audit.models import AuditTreeHead
from fundtrail.cases import generation

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")
    from fastapi.testclient import TestClient

FUNDTRAIL = [sys.executable, "-c", "from fundtrail.cli.main import run; run()"]


def _heads(agency) -> int:
    with agency.db.reading() as session:
        return int(session.execute(select(func.count()).select_from(AuditTreeHead)).scalar_one())


def _generation(agency) -> int | None:
    with agency.db.reading() as session:
        return generation.current(session)


def test_concurrent_reads_each_leave_their_records_once_in_a_valid_chain(agency) -> None:
    number = agency.cases["cyber"]
    headers = agency.headers("ivo", reason="weekly review")
    before = len(agency.audit())
    heads_before = _heads(agency)
    statuses: list[int] = []
    lock = threading.Lock()

    def reader() -> None:
        for _ in range(3):
            status = agency.client.get(f"/api/cases/{number}", headers=headers).status_code
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=reader) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert statuses == [200] * 36
    new = agency.audit()[before:]
    assert len(new) == 72
    assert sum(r["action"] == "api.get_case" for r in new) == 36
    assert sum(r["action"] == "case.read" for r in new) == 36
    assert all(r["actor"] == "ivo" and r["case"] == number and r["reason"] == "weekly review" for r in new)
    heads = _heads(agency) - heads_before
    assert 1 <= heads < len(new)  # at most one head per read, each read two records: fewer heads
    check = audit_log.verify_database(agency.db)
    assert check.intact, check.problems


def test_a_read_whose_records_cannot_be_written_discloses_nothing(agency, monkeypatch) -> None:
    number = agency.cases["cyber"]
    title = agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo")).json()["title"]
    before = len(agency.audit())

    def broken(*args, **kwargs):
        raise OSError("the disk is full")

    monkeypatch.setattr(audit_log, "append_prepared", broken)  # append_many goes through it too
    client = TestClient(agency.app, raise_server_exceptions=False)
    for path in (f"/api/cases/{number}", f"/api/cases/{number}/subjects", "/api/cases"):
        answer = client.get(path, headers=agency.headers("ivo"))
        assert answer.status_code == 500, path
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert title not in answer.text and number not in answer.text.replace(path, "")
    monkeypatch.undo()
    assert len(agency.audit()) == before
    assert agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo")).status_code == 200


def test_a_read_on_a_tampered_log_is_refused_and_discloses_nothing(agency) -> None:
    from sqlalchemy import text

    number = agency.cases["cyber"]
    title = agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo")).json()["title"]
    with agency.db.transaction() as session:
        session.execute(text("UPDATE audit_records SET actor = 'someone' WHERE seq = 2"))
        newest = session.execute(select(func.max(AuditTreeHead.id))).scalar_one()
        session.execute(text("DELETE FROM audit_tree_heads WHERE id = :id"), {"id": newest})
    before = len(agency.audit())
    answer = agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo"))
    assert answer.status_code == 409 and answer.json()["type"].endswith("integrity-failure")
    assert title not in answer.text
    assert len(agency.audit()) == before


def test_reads_keep_the_document_and_leave_the_generation_as_it_is(agency) -> None:
    number = agency.cases["cyber"]
    cases = agency.app.state.fundtrail.cases
    first = agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo"))
    generation_after_first = _generation(agency)
    second = agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo"))
    assert first.json() == second.json()
    assert _generation(agency) == generation_after_first  # the reads' audit records change no case data
    now = generation_after_first
    assert set(cases._facts) == {("case", number, now), ("user", "ivo", now)}
    # the access check still runs on every read: a user of another unit is refused, and it is recorded
    refused = agency.client.get(f"/api/cases/{number}", headers=agency.headers("oscar"))
    assert refused.status_code == 404 and "Ransomware" not in refused.text
    assert agency.audit()[-1]["action"] == "api.refused"


def test_a_change_through_the_api_is_seen_by_the_next_read(agency) -> None:
    number = agency.cases["cyber"]
    before = agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo")).json()
    changed = agency.client.patch(f"/api/cases/{number}", headers=agency.headers("ivo"),
                                  json={"title": "Changed through the API", "reason": "retitle"})
    assert changed.status_code == 200
    answer = agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo"))
    after = answer.json()
    assert after["title"] == "Changed through the API" and after["version"] == before["version"] + 1
    # the kept document is what the response model makes of the case, byte for byte
    assert answer.content == changed.content and answer.headers["content-type"] == "application/json"
    subject = agency.client.post(f"/api/cases/{number}/subjects", headers=agency.headers("ivo"),
                                 json={"kind": "person", "value": "Lock Bit", "reason": "lead"})
    assert subject.status_code == 201, subject.text
    listed = agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo")).json()
    assert "Lock Bit" in [s["value"] for s in listed["subjects"]]


def test_a_change_by_the_cli_in_another_process_is_seen_by_the_next_read(agency) -> None:
    number = agency.cases["cyber"]
    generation_before = _generation(agency)
    assert agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo")).json()["title"] != \
        "Changed from the CLI"
    env = {k: v for k, v in os.environ.items() if k != "FUNDTRAIL_DATABASE_URL"}
    done = subprocess.run([*FUNDTRAIL, "case", "edit", number, "--title", "Changed from the CLI",
                           "--reason", "retitle", "--home", str(agency.home), "--as", "ivo"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _generation(agency) == (generation_before or 0) + 1
    writer = agency.app.state.fundtrail.cases.audit_writer
    outdated = writer.stats.outdated
    after = agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo")).json()
    assert after["title"] == "Changed from the CLI"
    # the read began on the facts kept for the generation before; the group commit found it moved on
    assert writer.stats.outdated == outdated + 1


def test_a_case_read_records_what_show_case_records(agency) -> None:
    """The case read checks and records on its own (kept facts); its records are those of the other
    reads, which call the case layer's show_case."""
    number = agency.cases["cyber"]
    before = len(agency.audit())
    agency.client.get(f"/api/cases/{number}", headers=agency.headers("sue", reason="check"))
    agency.client.get(f"/api/cases/{number}/subjects", headers=agency.headers("sue", reason="check"))
    fast, generic = agency.audit()[before:before + 2], agency.audit()[before + 2:]
    assert [r["action"] for r in fast] == ["case.read", "api.get_case"]
    assert [r["action"] for r in generic] == ["case.read", "api.list_subjects"]
    same = ("actor", "action", "case", "reason", "object", "details")
    assert {k: fast[0][k] for k in same} == {k: generic[0][k] for k in same}
    assert fast[1]["details"] == generic[1]["details"].replace("/subjects", "")


def test_a_case_read_checks_the_user_as_the_database_holds_them_now(agency) -> None:
    from fundtrail.cases.context import operation
    from fundtrail.cases.models import User

    number = agency.cases["cyber"]
    assert agency.client.get(f"/api/cases/{number}", headers=agency.headers("ana")).status_code == 200
    with operation(agency.db, "admin") as ctx:  # moved to another unit (the token stays valid)
        ctx.session.execute(select(User).where(User.username == "ana")).scalar_one().unit = "Fraud Unit"
    answer = agency.client.get(f"/api/cases/{number}", headers=agency.headers("ana"))
    assert answer.status_code == 404 and "Ransomware" not in answer.text
    assert agency.audit()[-1]["action"] == "api.refused"
    with operation(agency.db, "admin") as ctx:
        ctx.session.execute(select(User).where(User.username == "ana")).scalar_one().active = False
    assert agency.client.get(f"/api/cases/{number}", headers=agency.headers("ana")).status_code in (401, 404)


def test_a_user_just_assigned_reads_the_case_at_once(agency) -> None:
    from fundtrail.cases import cases as service
    from fundtrail.cases.context import operation

    number = agency.cases["cyber"]
    assert agency.client.get(f"/api/cases/{number}", headers=agency.headers("ivo")).status_code == 200
    assert agency.client.get(f"/api/cases/{number}", headers=agency.headers("oscar")).status_code == 404
    with operation(agency.db, "sue") as ctx:
        service.assign(ctx, number, "oscar", reason="joint investigation")
    # the facts kept for the previous generation would refuse: a refusal is confirmed on what is stored
    answer = agency.client.get(f"/api/cases/{number}", headers=agency.headers("oscar"))
    assert answer.status_code == 200 and "oscar" in [a["username"] for a in answer.json()["assignees"]]


@pytest.mark.parametrize("path", ["/api/cases/{number}/subjects", "/api/cases/{number}/evidence",
                                  "/api/cases/{number}/ledger", "/api/requests", "/api/cases"])
def test_other_reads_of_case_data_are_audited_through_the_group_commit(agency, path: str) -> None:
    number = agency.cases["cyber"]
    writer = agency.app.state.fundtrail.cases.audit_writer
    before, groups = len(agency.audit()), writer.stats.groups
    answer = agency.client.get(path.format(number=number), headers=agency.headers("sue"))
    assert answer.status_code == 200, answer.text
    new = agency.audit()[before:]
    assert new and new[-1]["action"].startswith("api.") and writer.stats.groups == groups + 1


def test_reads_go_on_after_the_app_was_shut_down_and_started_again(agency) -> None:
    """A test client's shutdown closes the app's state (the audit writer among it); the app may serve
    again, as the schema tests do, and its reads must not wait for a writer that is gone."""
    number = agency.cases["cyber"]
    with TestClient(agency.app) as other:
        assert other.get(f"/api/cases/{number}", headers=agency.headers("ivo")).status_code == 200
    for path in (f"/api/cases/{number}", f"/api/cases/{number}/subjects"):
        assert agency.client.get(path, headers=agency.headers("ivo")).status_code == 200
