"""A full case from the command line, as a prosecutor would later read it back: open, the traced
addresses as subjects, preserved evidence, a freeze request to the exchange found (approved by a
supervisor, refused to its author), its letter, the freeze in the ledger, the public report, and an
audit log that verifies, then fails naming the record edited by direct SQL.
On SQLite, and on PostgreSQL when FUNDTRAIL_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import io
import json

import pytest
from docx import Document
from pypdf import PdfReader
from sqlalchemy import create_engine, text

from fundtrail.cases.db import database_url
from fundtrail.cases.testing import EXCHANGE, EXCHANGE_NAME, HOP, RANSOM, REST, ransom_chain
from fundtrail.store import ChainStore


@pytest.fixture()
def run(cli, home, backend_url):
    """``run(*args, as_=user, code=0)``: one command on the test's home; its JSON when --format json."""

    def invoke(*args: str, as_: str | None = None, code: int = 0):
        argv = [*args, "--home", str(home)] + (["--as", as_] if as_ else [])
        result = cli(*argv)
        assert result.exit_code == code, (argv, result.stdout, result.stderr)
        if code == 0 and "--format" in args:
            return json.loads(result.stdout)
        return result

    return invoke


def test_a_full_case_from_the_command_line(run, home, tmp_path, backend_url) -> None:
    assert database_url(home) == backend_url
    run("db", "upgrade")
    run(
        "db",
        "agency",
        "--name",
        "Estonian Police and Border Guard Board",
        "--jurisdiction",
        "EE",
        "--address",
        "Pärnu mnt 139, Tallinn",
        "--email",
        "cyber@example.org",
    )
    run(
        "user",
        "add",
        "admin",
        "--name",
        "Ada Admin",
        "--role",
        "admin",
        "--unit",
        "Cyber",
        "--jurisdiction",
        "EE",
    )
    for username, name, role in (
        ("ivo", "Ivo Investigator", "investigator"),
        ("sue", "Sue Supervisor", "supervisor"),
        ("lia", "Lia Liaison", "liaison"),
        ("aud", "Aud Auditor", "auditor"),
    ):
        run(
            "user",
            "add",
            username,
            "--name",
            name,
            "--role",
            role,
            "--unit",
            "Cyber",
            "--jurisdiction",
            "EE",
            as_="admin",
        )

    # the chain: a ransom paid to RANSOM, moved on through HOP to the Northwind Exchange and to REST
    with ChainStore.open_home(home) as store:
        ransom_chain(store, tmp_path)
    trace = run("trace", RANSOM, "--chain", "btc", "--format", "json")
    assert {(e["address"], e["entity"]) for e in trace["endpoints"]} == {
        (EXCHANGE, EXCHANGE_NAME),
        (REST, None),
    }
    trace_file = tmp_path / "trace.json"
    trace_file.write_text(json.dumps(trace))

    case = run(
        "case",
        "open",
        "--title",
        "LockBit affiliate payments",
        "--severity",
        "high",
        "--offence",
        "ransomware extortion",
        "--summary",
        "A hospital paid a ransom of 0.05 BTC.",
        "--format",
        "json",
        as_="ivo",
    )
    number = case["number"]
    assert [c["number"] for c in run("case", "list", "--format", "json", as_="sue")] == [number]

    ev = run("case", "preserve", number, "--trace-file", str(trace_file), "--format", "json", as_="ivo")
    assert {(s["address"], s["role"]) for s in ev["subjects_added"]} == {
        (RANSOM, "seed"),
        (EXCHANGE, "endpoint:service"),
        (REST, "endpoint:unspent"),
    }
    run(
        "case",
        "add-subject",
        number,
        HOP,
        "--chain",
        "btc",
        "--role",
        "intermediary",
        "--evidence",
        ev["id"],
        as_="ivo",
    )
    shown = run("case", "show", number, "--format", "json", as_="sue")
    assert {s["value"] for s in shown["subjects"]} == {RANSOM, EXCHANGE, REST, HOP}
    assert run("evidence", "verify", ev["id"], "--format", "json", as_="aud")["ok"] is True
    assert run("evidence", "retrace", ev["id"], "--format", "json", as_="aud")["reproduced"] is True

    req = run(
        "request",
        "draft",
        number,
        "--type",
        "freeze",
        "--to",
        EXCHANGE_NAME,
        "--to-jurisdiction",
        "LT",
        "--evidence",
        ev["id"],
        "--format",
        "json",
        as_="ivo",
    )
    assert [s["value"] for s in req["subjects"]] == [EXCHANGE]
    r = req["number"]
    refused = run("request", "approve", r, code=2, as_="ivo")
    assert "may not request.approve" in refused.stderr
    early = run("request", "send", r, code=2, as_="lia")
    assert "is draft; cannot send it" in early.stderr
    own = run(
        "request",
        "draft",
        number,
        "--type",
        "preservation",
        "--to",
        EXCHANGE_NAME,
        "--format",
        "json",
        as_="sue",
    )
    assert "they drafted it" in run("request", "approve", own["number"], code=2, as_="sue").stderr
    assert (
        run("request", "approve", r, "--reason", "facts and evidence checked", "--format", "json", as_="sue")[
            "state"
        ]
        == "approved"
    )
    sent = run("request", "send", r, "--format", "json", as_="lia")
    assert sent["state"] == "sent" and sent["answer_due"] and sent["hold_until"]
    # LT is abroad for the EE agency: the freeze goes by mutual legal assistance (a 90-day hold)
    assert req["instrument"] == "warsaw-art21-freeze"
    due = run("request", "due", "--within", "120", "--format", "json", as_="lia")
    assert {(d["request"], d["deadline"]) for d in due} == {(r, "answer"), (r, "hold_ends")}

    letters = run("request", "render", r, "--out", str(tmp_path / "letters"), "--format", "json", as_="lia")
    docx, pdf = (p for p in letters["files"])
    docx_text = "\n".join(p.text for p in Document(docx).paragraphs)
    with open(pdf, "rb") as fh:
        pdf_text = " ".join(
            " ".join(page.extract_text() for page in PdfReader(io.BytesIO(fh.read())).pages).split()
        )
    for body in (docx_text, pdf_text):
        for expected in (
            "Request to freeze virtual assets",
            "Estonian Police and Border Guard Board",
            EXCHANGE,
            ev["id"],
            ev["tagmanifest_sha256"],
            "A hospital paid a ransom",
            "Sue Supervisor",
            sent["answer_due"],
        ):
            assert expected in body, expected

    entry = run(
        "ledger",
        "add",
        number,
        "--kind",
        "frozen",
        "--amount",
        "3000000",
        "--request",
        r,
        "--holder",
        EXCHANGE_NAME,
        "--jurisdiction",
        "LT",
        "--format",
        "json",
        as_="ivo",
    )
    assert entry["amount"] == "3000000" and entry["request"] == r
    report = run("report", "recovery", "--out", str(tmp_path / "report"), "--format", "json", as_="aud")
    assert report["rows"] == [
        {
            "kind": "frozen",
            "chain": "btc",
            "asset": "native",
            "jurisdiction": "LT",
            "amount": "3000000",
            "amount_display": "0.03 BTC",
            "cases": 1,
            "entries": 1,
        }
    ]
    assert EXCHANGE not in json.dumps(report) and all(
        (tmp_path / "report" / f).exists() for f in ("recovery.png", "recovery.svg")
    )
    assert "0.03000000 BTC" in run("report", "recovery", as_="aud").stdout

    intact = run("audit", "verify", "--format", "json")
    assert intact["intact"] is True and intact["records"] > 20
    log = run("audit", "log", "--case", number, "--format", "json", as_="aud")
    ledger_record = next(x for x in log if x["action"] == "ledger.record")
    engine = create_engine(backend_url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_records SET details = :d WHERE seq = :s"),
            {
                "d": ledger_record["details"] and json.dumps({**ledger_record["details"], "amount": "1"}),
                "s": ledger_record["seq"],
            },
        )
    engine.dispose()
    broken = run("audit", "verify", code=1)
    assert f"record {ledger_record['seq']}" in broken.stderr and "edited" in broken.stderr
