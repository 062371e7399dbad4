"""Partners witness each other's audit logs: each countersigns the other's signed tree heads over the
signed API, refuses a head that does not extend the one it saw, and ``audit verify`` holds the log to the
newest witnessed head."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from fundtrail.audit import log as audit_log
from fundtrail.audit.models import WitnessedHead
from fundtrail.errors import ConflictError, IntegrityError
from fundtrail.sharing.witness import request_witness

from .conftest import Linked

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _work(agency, n: int = 2) -> None:
    for i in range(n):
        with agency.op() as ctx:
            ctx.audit("test.work", "thing", i)


def _verify(agency):
    with agency.db() as db:
        return audit_log.verify_database(db)


def test_partners_countersign_each_others_heads(linked: Linked) -> None:
    a, b = linked.a, linked.b
    _work(a)
    with a.op() as ctx:
        first = request_witness(ctx, "ee-sc", clients=linked.clients)
    _work(a, 3)
    with a.op() as ctx:
        second = request_witness(ctx, "ee-sc", clients=linked.clients)  # with a consistency proof from first
    assert second["tree_size"] > first["tree_size"]
    result = _verify(a)
    assert result.intact, result.problems
    newest = result.newest_witnessed
    assert newest is not None and newest.witness == "ee-sc" and newest.head.tree_size == second["tree_size"]
    assert b.count(WitnessedHead, partner="sc-ee") == 2
    # and the other way round
    with b.op() as ctx:
        request_witness(ctx, "sc-ee", clients=linked.clients)
    assert _verify(b).newest_witnessed.witness == "sc-ee"
    assert "audit.witness" in b.audit_actions() and "audit.witness" in a.audit_actions()


def test_the_log_must_extend_the_witnessed_head(linked: Linked) -> None:
    a = linked.a
    _work(a)
    with a.op() as ctx:
        witnessed = request_witness(ctx, "ee-sc", clients=linked.clients)
    _work(a)
    with a.db() as db, db.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_records SET actor = 'mallory' WHERE seq = :s"),
            {"s": witnessed["tree_size"] - 1},
        )
    result = _verify(a)
    assert not result.intact
    assert any("witnessed by ee-sc" in p.problem for p in result.problems)


def _copy_database(source: Path, target: Path) -> None:
    """Replace ``target``'s whole content by ``source``'s through SQLite's backup API: a copy of the file
    alone would miss pages still in its write-ahead log, and a stale log next to a copied file could be
    replayed over it."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def test_a_witness_refuses_a_rolled_back_or_forked_log(linked: Linked, tmp_path) -> None:
    a = linked.a
    _work(a)
    saved = tmp_path / "cases-before.sqlite"
    _copy_database(a.home / "cases.sqlite", saved)
    with a.op() as ctx:
        request_witness(ctx, "ee-sc", clients=linked.clients)
    _work(a)
    with a.op() as ctx:
        request_witness(ctx, "ee-sc", clients=linked.clients)
    # roll A's whole database back to the earlier copy, then go on working: a fork of the witnessed log
    _copy_database(saved, a.home / "cases.sqlite")
    (a.home / "audit" / "last-head.json").unlink()
    _work(a, 3)
    with pytest.raises(ConflictError, match="does not extend the head"), a.op() as ctx:
        request_witness(ctx, "ee-sc", clients=linked.clients)


def test_a_cosignature_by_an_unpinned_key_is_not_trusted(linked: Linked) -> None:
    a = linked.a
    _work(a)
    with a.op() as ctx:
        request_witness(ctx, "ee-sc", clients=linked.clients)
    with a.db() as db, db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_cosignatures SET witness_key_id = 'ffffffffffffffff'"))
    result = _verify(a)
    assert not result.intact and any("not by a key pinned" in p.problem for p in result.problems)
    with a.db() as db, db.engine.begin() as conn:
        conn.execute(text("UPDATE sharing_agreements SET partner_public_key = 'x' WHERE name = 'ee-sc'"))
    with pytest.raises(IntegrityError), a.op() as ctx:
        request_witness(ctx, "ee-sc", clients=linked.clients)
