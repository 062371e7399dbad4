"""The audit log as a transparency log in the case database, attacked by someone who can write to the
database but holds neither the agency key nor the home's configuration: every tampering is found and
named, on SQLite and PostgreSQL, and verification only reads."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from fundtrail.audit import log as audit_log
from fundtrail.audit.chain import record_hash
from fundtrail.audit.verifier import RECORD_FIELDS, Frontier, head_payload, leaf_hash, record_leaf
from fundtrail.cases import cases
from fundtrail.cases.context import operation
from fundtrail.errors import IntegrityError

FIELDS = RECORD_FIELDS


def _fill(db, n: int = 6) -> None:
    with operation(db, "ivo") as ctx:
        case = cases.open_case(ctx, "Audit test")
    for _ in range(n):
        with operation(db, "ivo") as ctx:
            cases.show_case(ctx, case.number, reason="review")


def _verify(db, **kw):
    return audit_log.verify_database(db, **kw)


def _sql(db, *statements: str, **params) -> None:
    with db.engine.begin() as conn:
        for s in statements:
            conn.execute(text(s), params)


def _rows(db) -> list[dict]:
    with db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(text("SELECT * FROM audit_records ORDER BY seq")).mappings()]


def _heads(db) -> list[dict]:
    with db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(text("SELECT * FROM audit_tree_heads ORDER BY id")).mappings()]


def _kept_head(db, tmp_path: Path) -> Path:
    with db.reading() as session:
        head = audit_log.newest_head(session)
    path = tmp_path / f"kept-{head.tree_size}.json"
    path.write_text(json.dumps(head.to_dict()))
    return path


def _forge_record(prev: dict, **changes) -> dict:
    """A record that links correctly to ``prev`` (what an attacker can compute without any key)."""
    fields = {k: prev[k] for k in FIELDS}
    fields.update(seq=prev["seq"] + 1, prev_hash=prev["hash"], actor="mallory", **changes)
    return {**fields, "hash": record_hash(**fields)}


def _insert(db, rec: dict) -> None:
    cols = ", ".join(rec)
    _sql(db, f"INSERT INTO audit_records ({cols}) VALUES ({', '.join(':' + c for c in rec)})", **rec)


def _rewrite_from(db, rows: list[dict]) -> None:
    """Rewrite every record from rows[0] on so that the hash links hold again, and the head row with them."""
    prev_hash = None
    for r in rows:
        fields = {k: r[k] for k in FIELDS}
        if prev_hash is not None:
            fields["prev_hash"] = prev_hash
        h = record_hash(**fields)
        _sql(
            db,
            "UPDATE audit_records SET prev_hash = :p, hash = :h, actor = :a WHERE seq = :s",
            p=fields["prev_hash"],
            h=h,
            a=fields["actor"],
            s=r["seq"],
        )
        prev_hash = h
    _sql(db, "UPDATE audit_head SET hash = :h WHERE id = 1", h=prev_hash)


def test_reads_and_writes_are_recorded_and_each_transaction_signs_a_head(agency_db) -> None:
    before = len(_heads(agency_db))
    _fill(agency_db, 2)
    with operation(agency_db, "aud") as ctx:
        rows = audit_log.records(ctx.session, case_number=f"EE-{ctx.now.year}-0001")
    assert [r.action for r in rows] == ["case.open", "case.read", "case.read"]
    assert rows[1].actor == "ivo" and rows[1].reason == "review"
    heads = _heads(agency_db)
    assert len(heads) == before + 3  # one signed head per committed transaction that appended
    result = _verify(agency_db)
    assert result.intact and result.heads == len(heads) and result.newest.tree_size == result.records


# {a}: a record in the middle, {b} the one after it, {last}: the last record
@pytest.mark.parametrize(
    "tamper, bad, words",
    [
        (["UPDATE audit_records SET actor = 'mallory' WHERE seq = {a}"], "a", "edited"),
        (["UPDATE audit_records SET reason = NULL WHERE seq = {b}"], "b", "edited"),
        (["DELETE FROM audit_records WHERE seq = {a}"], "a", "missing"),
        (["DELETE FROM audit_records WHERE seq = {last}"], "last", "truncated"),
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
                "object_id, case_number, reason, details, hash, 'f00d' FROM audit_records WHERE seq = {last}"
            ],
            "next",
            "not covered by a signed tree head",
        ),
        (
            [
                "INSERT INTO audit_records (seq, at, actor, action, object_type, object_id, case_number, "
                "reason, details, prev_hash, hash) SELECT {last} + 1, at, actor, action, object_type, "
                "object_id, case_number, reason, details, prev_hash, 'beef' "
                "FROM audit_records WHERE seq = {a}"
            ],
            "next",
            "not covered by a signed tree head",
        ),
        (
            [
                "UPDATE audit_tree_heads SET signature = 'AAAA' "
                "WHERE id = (SELECT MAX(id) FROM audit_tree_heads)"
            ],
            "last",
            "signature is not valid",
        ),
        (["UPDATE audit_tree_heads SET root_hash = '" + "ab" * 32 + "'"], "a", "do not match signed head"),
    ],
    ids=[
        "edit",
        "edit-null",
        "delete",
        "delete-last",
        "swap",
        "append-forged",
        "duplicate",
        "forged-head-signature",
        "forged-roots",
    ],
)
def test_direct_sql_tampering_is_found_and_named(agency_db, tamper, bad, words) -> None:
    _fill(agency_db)
    last = _verify(agency_db).records
    where = {"a": last - 4, "b": last - 3, "last": last, "next": last + 1}
    _sql(agency_db, *(t.format(**where) for t in tamper))
    result = _verify(agency_db)
    assert not result.intact
    assert any(words in p.problem for p in result.problems), result.problems
    assert result.first_bad.seq <= where[bad]


def test_a_record_appended_with_a_correct_hash_chain_is_not_covered(agency_db) -> None:
    _fill(agency_db)
    rows = _rows(agency_db)
    forged = _forge_record(rows[-1], action="case.close")
    _insert(agency_db, forged)
    _sql(
        agency_db, "UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1", s=forged["seq"], h=forged["hash"]
    )
    result = _verify(agency_db)
    assert not result.intact
    assert (
        result.first_bad.seq == forged["seq"]
        and "not covered by a signed tree head" in result.first_bad.problem
    )


def test_a_rewritten_tail_with_consistent_links_breaks_the_signed_roots(agency_db) -> None:
    _fill(agency_db)
    rows = _rows(agency_db)
    a = len(rows) - 4
    rows[a - 1]["actor"] = "mallory"
    _rewrite_from(agency_db, rows[a - 1 :])
    result = _verify(agency_db)
    assert not result.intact
    assert result.first_bad.seq == a and "edited" not in result.first_bad.problem
    assert "do not match signed head" in result.first_bad.problem


def test_truncating_the_tail_with_its_heads_is_caught_by_the_head_the_home_kept(agency_db) -> None:
    _fill(agency_db)
    rows = _rows(agency_db)
    keep = len(rows) - 3
    _sql(
        agency_db,
        f"DELETE FROM audit_records WHERE seq > {keep}",
        f"DELETE FROM audit_tree_heads WHERE tree_size > {keep}",
        "UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1",
        s=keep,
        h=rows[keep - 1]["hash"],
    )
    # the signed heads left are consistent with the records left: only a head kept outside shows the cut
    with agency_db.engine.begin() as conn:
        left = conn.execute(text("SELECT MAX(tree_size) FROM audit_tree_heads")).scalar_one()
    assert left <= keep
    result = _verify(agency_db)
    assert not result.intact
    assert "no longer extends kept head last seen by this home" in str(result.first_bad)
    assert "truncated" in str(result.first_bad)


def test_wiping_every_head_or_the_whole_log_is_found(agency_db) -> None:
    _fill(agency_db)
    _sql(agency_db, "DELETE FROM audit_tree_heads")
    result = _verify(agency_db)
    assert not result.intact and "not covered by a signed tree head" in result.first_bad.problem
    _sql(
        agency_db,
        "DELETE FROM audit_records",
        "UPDATE audit_head SET seq = 0, hash = :g, frontier = '' WHERE id = 1",
        g="0" * 64,
    )
    result = _verify(agency_db)
    assert not result.intact and "no longer extends" in str(result.first_bad)


def test_a_key_added_to_the_database_is_not_trusted(agency_db) -> None:
    """An attacker signs his own heads over a rewritten log and lists his key in signing_keys."""
    _fill(agency_db)
    rows = _rows(agency_db)
    rows[1]["actor"] = "mallory"
    _rewrite_from(agency_db, rows[1:])
    rows = _rows(agency_db)
    mallory = Ed25519PrivateKey.generate()
    raw = mallory.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = hashlib.sha256(raw).hexdigest()[:16]
    _sql(
        agency_db,
        "INSERT INTO signing_keys (key_id, algorithm, public_key, created_at) "
        "VALUES (:k, 'ed25519', :p, CURRENT_TIMESTAMP)",
        k=key_id,
        p=base64.b64encode(raw).decode(),
    )
    frontier = Frontier()
    _sql(agency_db, "DELETE FROM audit_tree_heads")
    for r in rows:
        frontier.append(leaf_hash(record_leaf(r)))
    root = frontier.root().hex()
    ts = "2099-01-01T00:00:00.000000Z"
    sig = base64.b64encode(mallory.sign(head_payload(len(rows), root, ts, key_id))).decode()
    _sql(
        agency_db,
        "INSERT INTO audit_tree_heads (tree_size, root_hash, timestamp, key_id, signature) "
        "VALUES (:n, :r, :t, :k, :s)",
        n=len(rows),
        r=root,
        t=ts,
        k=key_id,
        s=sig,
    )
    _sql(agency_db, "UPDATE audit_head SET frontier = :f WHERE id = 1", f=frontier.dump())
    result = _verify(agency_db)
    assert not result.intact
    assert any(f"signed by key {key_id}, which is not trusted" in p.problem for p in result.problems)
    # and FundTrail refuses to extend, let alone sign over, a log it cannot trust
    with pytest.raises(IntegrityError, match="does not match its newest signed tree head"):
        with operation(agency_db, "ivo") as ctx:
            ctx.audit("test.after", "case", 1)


def test_rollback_and_fork_are_caught_against_a_kept_head(agency_db, tmp_path) -> None:
    _fill(agency_db, 2)
    copy = {"records": _rows(agency_db), "heads": _heads(agency_db)}
    with agency_db.engine.connect() as conn:
        head_row = dict(conn.execute(text("SELECT * FROM audit_head")).mappings().one())
    _fill(agency_db, 2)
    kept = _kept_head(agency_db, tmp_path)
    assert _verify(agency_db, kept=[("kept", audit_log.load_kept_head(kept))]).intact
    # roll the whole database back to the earlier, self-consistent copy
    _sql(agency_db, "DELETE FROM audit_records", "DELETE FROM audit_tree_heads")
    for r in copy["records"]:
        _insert(agency_db, r)
    for h in copy["heads"]:
        _sql(
            agency_db,
            "INSERT INTO audit_tree_heads (id, tree_size, root_hash, timestamp, key_id, signature) "
            "VALUES (:id, :tree_size, :root_hash, :timestamp, :key_id, :signature)",
            **h,
        )
    _sql(
        agency_db,
        "UPDATE audit_head SET seq = :seq, hash = :hash, frontier = :frontier, signed_seq = :signed_seq",
        **{k: head_row[k] for k in ("seq", "hash", "frontier", "signed_seq")},
    )
    (agency_db.home / "audit" / "last-head.json").unlink()  # the attacker also reaches the home copy
    assert _verify(agency_db).intact  # consistent in itself ...
    result = _verify(agency_db, kept=[(str(kept), audit_log.load_kept_head(kept))])
    assert not result.intact  # ... but not with the head the auditor kept
    assert f"no longer extends kept head {kept}" in str(result.first_bad) and "rolled back" in str(
        result.first_bad
    )
    # a fork from the copy: FundTrail goes on signing, but the kept head is still not extended
    _fill(agency_db, 3)
    result = _verify(agency_db, kept=[(str(kept), audit_log.load_kept_head(kept))])
    assert not result.intact and "forked or rewritten" in str(result.first_bad)


def test_verification_changes_nothing(agency_db, cli, home) -> None:
    _fill(agency_db, 2)
    before = _rows(agency_db), _heads(agency_db)
    files = {p: p.read_bytes() for p in home.rglob("*") if p.is_file() and p.suffix != ".lock"}
    assert cli("audit", "verify", "--home", str(home)).exit_code == 0
    assert cli("audit", "head", "--home", str(home), "--format", "json").exit_code == 0
    assert (_rows(agency_db), _heads(agency_db)) == before
    assert {p: p.read_bytes() for p in home.rglob("*") if p.is_file() and p.suffix != ".lock"} == files


def test_concurrent_appends_make_one_log_with_a_head_per_transaction(agency_db) -> None:
    seeded = _verify(agency_db).records
    heads = len(_heads(agency_db))
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
    assert result.intact and result.records == seeded + 32 and result.heads == heads + 32


def test_a_rolled_back_transaction_leaves_no_record_and_no_head(agency_db) -> None:
    _fill(agency_db, 1)
    before = _rows(agency_db), _heads(agency_db)
    with pytest.raises(RuntimeError):
        with operation(agency_db, "ivo") as ctx:
            ctx.audit("test.rolled-back", "case", 1)
            raise RuntimeError("the operation fails")
    assert (_rows(agency_db), _heads(agency_db)) == before
    assert _verify(agency_db).intact


def test_cli_verify_head_and_kept_heads(agency_db, cli, home, tmp_path) -> None:
    _fill(agency_db)
    head = cli("audit", "head", "--home", str(home), "--format", "json")
    assert head.exit_code == 0, head.output
    kept = tmp_path / "head.json"
    kept.write_text(head.stdout)
    ok = cli("audit", "verify", "--home", str(home), "--head", str(kept), "--format", "json")
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)
    assert doc["intact"] and any(k["name"] == str(kept) and k["extended"] for k in doc["kept_heads"])
    middle = doc["records"] - 3
    _sql(agency_db, f"UPDATE audit_records SET action = 'case.edit' WHERE seq = {middle}")
    bad = cli("audit", "verify", "--home", str(home))
    assert bad.exit_code == 1
    assert f"record {middle}" in bad.stderr and "edited" in bad.stderr
    assert len(bad.stderr.strip().splitlines()[0]) > 0


def test_a_bad_kept_head_file_is_bad_input(agency_db, cli, home, tmp_path) -> None:
    _fill(agency_db, 1)
    for content in ("{", "[]", json.dumps({"tree_size": "x"})):
        path = tmp_path / "bad.json"
        path.write_text(content)
        result = cli("audit", "verify", "--home", str(home), "--head", str(path))
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    result = cli("audit", "verify", "--home", str(home), "--head", str(tmp_path))
    assert result.exit_code == 2 and "directory" in result.stderr


def test_records_from_before_signed_heads_are_covered_by_the_first_head(backend_url, home) -> None:
    """A 0.1 database (hash-chained records, no tree heads) is upgraded, then its first transaction signs
    a head over the old records and the new ones."""
    from fundtrail.cases.db import CaseDB, current_revision, downgrade, make_engine, upgrade

    engine = make_engine(backend_url)
    if current_revision(engine) is None:
        upgrade(engine, "0004_outbound_requests")
    else:  # the SQLite template is already at the newest revision
        downgrade(engine, "0004_outbound_requests")
    prev = "0" * 64
    with engine.begin() as conn:
        for seq in range(1, 4):
            fields = dict(seq=seq, at=f"2026-01-01T00:00:0{seq}.000000Z", actor="ivo", action="case.read",
                          object_type="case", object_id="1", case_number=None, reason=None, details="{}",
                          prev_hash=prev)
            prev = record_hash(**fields)
            conn.execute(text(f"INSERT INTO audit_records ({', '.join(fields)}, hash) VALUES "
                              f"({', '.join(':' + k for k in fields)}, :hash)"), {**fields, "hash": prev})
        conn.execute(text("UPDATE audit_head SET seq = 3, hash = :h WHERE id = 1"), {"h": prev})
    upgrade(engine)
    engine.dispose()
    db = CaseDB.open(home, backend_url)
    try:
        with operation(db, None, user_required=False) as ctx:
            ctx.audit("test.after-upgrade", "thing", 1)
        result = _verify(db)
        assert result.intact and result.records == 4 and result.heads == 1 and result.newest.tree_size == 4
    finally:
        db.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.booleans()), min_size=1, max_size=6))
def test_any_sequence_of_appends_and_verifies_keeps_the_log_intact_and_verify_read_only(
    case_db, steps
) -> None:
    """Transactions of 0-3 records, some rolled back, with verifications in between: always intact, and a
    verification changes no byte of the database or the home."""
    for n, fails, check in steps:
        try:
            with operation(case_db, None, user_required=False) as ctx:
                for i in range(n):
                    ctx.audit("test.step", "thing", i)
                if fails:
                    raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        if check:
            before = _rows(case_db), _heads(case_db), _home_bytes(case_db.home)
            assert _verify(case_db).intact
            assert (_rows(case_db), _heads(case_db), _home_bytes(case_db.home)) == before
    assert _verify(case_db).intact


def _home_bytes(home: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in home.rglob("*") if p.is_file() and p.suffix != ".lock"}


def test_verification_needs_only_public_keys(agency_db, cli, home) -> None:
    _fill(agency_db, 1)
    public = json.loads((home / "keys" / "trusted-keys.json").read_text())["keys"][0]["public_key"]
    (home / "keys" / "agency-ed25519.pem").unlink()  # an auditor's copy: no private key
    assert cli("audit", "verify", "--home", str(home)).exit_code == 0  # the pinned public key suffices
    (home / "keys" / "trusted-keys.json").unlink()
    alone = cli("audit", "verify", "--home", str(home))
    assert alone.exit_code == 1 and "not trusted" in alone.stderr
    given = cli("audit", "verify", "--home", str(home), "--public-key", public)
    assert given.exit_code == 0, given.stderr
    assert not (home / "keys" / "agency-ed25519.pem").exists()  # and verifying made no key
