"""The audit log in the case database: tampering by direct SQL is found on SQLite and PostgreSQL,
concurrent appends stay one chain, checkpoints are signed, ``fundtrail audit verify`` exits 0 or 1."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import text

from fundtrail.audit import log as audit_log
from fundtrail.cases import cases
from fundtrail.cases.context import operation


def _fill(db, n: int = 6) -> None:
    with operation(db, "ivo") as ctx:
        case = cases.open_case(ctx, "Audit test")
    for _ in range(n):
        with operation(db, "ivo") as ctx:
            cases.show_case(ctx, case.number, reason="review")


def _verify(db):
    with operation(db, None, user_required=False) as ctx:
        return audit_log.verify(ctx.session, ctx.key)


def _sql(db, *statements: str) -> None:
    with db.engine.begin() as conn:
        for s in statements:
            conn.execute(text(s))


def test_reads_and_writes_are_recorded_and_the_log_verifies(agency_db) -> None:
    _fill(agency_db, 2)
    with operation(agency_db, "aud") as ctx:
        rows = audit_log.records(ctx.session, case_number=f"EE-{ctx.now.year}-0001")
    assert [r.action for r in rows] == ["case.open", "case.read", "case.read"]
    assert rows[1].actor == "ivo" and rows[1].reason == "review"
    assert _verify(agency_db).intact


# {a}: a record in the middle, {b} the one after it, {last}: the last record
@pytest.mark.parametrize(
    "tamper, bad, words",
    [
        (["UPDATE audit_records SET actor = 'mallory' WHERE seq = {a}"], "a", "edited"),
        (["UPDATE audit_records SET reason = NULL WHERE seq = {b}"], "b", "edited"),
        (["DELETE FROM audit_records WHERE seq = {a}"], "a", "missing"),
        (["DELETE FROM audit_records WHERE seq = {last}"], "last", "missing"),
        (
            [
                "UPDATE audit_records SET seq = -1 WHERE seq = {a}",
                "UPDATE audit_records SET seq = {a} WHERE seq = {b}",
                "UPDATE audit_records SET seq = {b} WHERE seq = -1",
            ],
            "a",
            "edited",
        ),
        (
            [
                "INSERT INTO audit_records (seq, at, actor, action, object_type, object_id, case_number, "
                "reason, details, prev_hash, hash) SELECT {last} + 1, at, 'mallory', action, object_type, "
                "object_id, "
                "case_number, reason, "
                "details, hash, 'f00d' FROM audit_records WHERE seq = {last}"
            ],
            "next",
            "beyond the chain head",
        ),
    ],
    ids=["edit", "edit-null", "delete", "delete-last", "swap", "insert"],
)
def test_direct_sql_tampering_is_found_and_named(agency_db, tamper, bad, words) -> None:
    _fill(agency_db)
    last = _verify(agency_db).records
    where = {"a": last - 4, "b": last - 3, "last": last, "next": last + 1}
    _sql(agency_db, *(t.format(**where) for t in tamper))
    result = _verify(agency_db)
    assert not result.intact
    assert result.first_bad.seq == where[bad]
    assert any(words in p.problem for p in result.problems if p.seq == where[bad])


def test_rewriting_a_record_and_its_hash_breaks_the_next_link(agency_db) -> None:
    _fill(agency_db)
    a = _verify(agency_db).records - 4
    with agency_db.engine.connect() as conn:
        row = conn.execute(text(f"SELECT * FROM audit_records WHERE seq = {a}")).mappings().one()
    from fundtrail.audit.chain import record_hash

    fields = {
        k: row[k]
        for k in (
            "seq",
            "at",
            "actor",
            "action",
            "object_type",
            "object_id",
            "case_number",
            "reason",
            "details",
            "prev_hash",
        )
    }
    fields["actor"] = "mallory"
    _sql(
        agency_db,
        f"UPDATE audit_records SET actor = 'mallory', hash = '{record_hash(**fields)}' WHERE seq = {a}",
    )
    result = _verify(agency_db)
    assert not result.intact and result.first_bad.seq == a + 1 and "does not link" in result.first_bad.problem


def test_truncating_the_log_and_its_head_is_caught_by_the_signed_checkpoint(agency_db) -> None:
    _fill(agency_db)
    last = _verify(agency_db).records
    with operation(agency_db, None, user_required=False) as ctx:
        assert audit_log.checkpoint(ctx.session, ctx.key).seq == last
    with agency_db.engine.connect() as conn:
        h = conn.execute(text(f"SELECT hash FROM audit_records WHERE seq = {last - 1}")).scalar_one()
    _sql(
        agency_db,
        f"DELETE FROM audit_records WHERE seq = {last}",
        f"UPDATE audit_head SET seq = {last - 1}, hash = '{h}' WHERE id = 1",
    )
    result = _verify(agency_db)
    assert (
        not result.intact and result.first_bad.seq == last and "signed checkpoint" in result.first_bad.problem
    )


def test_a_forged_checkpoint_signature_is_found(agency_db) -> None:
    _fill(agency_db, 1)
    with operation(agency_db, None, user_required=False) as ctx:
        audit_log.checkpoint(ctx.session, ctx.key)
    _sql(agency_db, "UPDATE audit_checkpoints SET signature = 'AAAA'")
    result = _verify(agency_db)
    assert not result.intact and "signature is not valid" in result.first_bad.problem


def test_checkpoints_are_signed_every_n_records(agency_db) -> None:
    seeded = _verify(agency_db).records
    with operation(agency_db, "ivo") as ctx:
        for i in range(7):
            audit_log.append(ctx.session, "ivo", "test", "case", i, key=ctx.key, sign_every=3)
    with agency_db.engine.connect() as conn:
        seqs = conn.execute(text("SELECT seq FROM audit_checkpoints ORDER BY id")).scalars().all()
    assert seqs == [seeded + 1, seeded + 4, seeded + 7]  # nothing was signed before: the first append signs
    assert _verify(agency_db).intact


def test_concurrent_appends_make_one_chain(agency_db) -> None:
    seeded = _verify(agency_db).records
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(8):
                with operation(agency_db, "ivo") as ctx:
                    ctx.audit("test.concurrent", "case", i)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = _verify(agency_db)
    assert result.intact and result.records == seeded + 32


def test_cli_verify_exit_codes(agency_db, cli, home) -> None:
    _fill(agency_db)
    ok = cli("audit", "verify", "--home", str(home), "--format", "json")
    assert ok.exit_code == 0, ok.output
    middle = json.loads(ok.stdout)["records"] - 3
    _sql(agency_db, f"UPDATE audit_records SET action = 'case.edit' WHERE seq = {middle}")
    bad = cli("audit", "verify", "--home", str(home))
    assert bad.exit_code == 1
    assert f"record {middle}" in bad.stderr and "edited" in bad.stderr
