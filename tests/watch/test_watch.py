"""Watches and alerts: each alert raised once, freeze drafted by the right route, nothing lost on a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fundtrail.cases.models import LegalRequest
from fundtrail.watch.runner import Watcher
from fundtrail.watch.service import add_watch, alert_doc, list_alerts

from .conftest import D1, R1, R2, TX, Home, M, S, grow


def kinds(docs: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return sorted((d["kind"], d["address"] if d["kind"] != "moved" else d["txid"]) for d in docs)


EXPECTED = sorted(
    [("moved", TX["t3"]), ("moved", TX["t4"]), ("at_service", D1), ("sanctioned", S), ("mixer", M)]
)


def test_funds_leaving_a_watched_address_raise_each_alert_once(home: Home) -> None:
    with home.op() as ctx:
        watch = add_watch(ctx, "btc", [R1, R2], case=home.case).id
    watcher = Watcher(home.path, "ivo")
    assert watcher.cycle().alerts == []  # first evaluation: the ransom has not moved
    with home.store() as store:
        grow(store)
    report = watcher.cycle()
    assert kinds(report.alerts) == EXPECTED
    assert watcher.cycle().alerts == []  # nothing new: nothing raised again
    assert report.evaluated["btc"] == {"from": 3, "to": 3, "watches": 1, "points": 2}
    at = next(a for a in report.alerts if a["kind"] == "at_service")
    assert (at["entity"], at["jurisdiction"], at["value"], at["watch"], at["case"]) == (
        "Northwind Exchange",
        "SC",
        "9980000",
        watch,
        home.case,
    )
    with home.op("sue") as ctx:
        req = ctx.session.execute(
            select(LegalRequest).where(LegalRequest.number == at["request"])
        ).scalar_one()
        # a foreign exchange: the freeze goes by mutual legal assistance, in draft, by the watch's author
        assert (
            req.type,
            req.state,
            req.recipient,
            req.recipient_jurisdiction,
            req.instrument,
            req.author.username,
        ) == ("freeze", "draft", "Northwind Exchange", "SC", "warsaw-art21-freeze", "ivo")
        assert [s.value for s in req.subjects] == [D1]
        assert len(list_alerts(ctx)) == 5


def test_a_crash_before_commit_loses_and_repeats_nothing(home: Home, monkeypatch: pytest.MonkeyPatch) -> None:
    from fundtrail.watch import service

    with home.op() as ctx:
        add_watch(ctx, "btc", [R1, R2], case=home.case)
    watcher = Watcher(home.path)
    watcher.cycle()
    with home.store() as store:
        grow(store)
    real = service.raise_alerts

    def crash(ctx, findings):  # type: ignore[no-untyped-def]
        real(ctx, findings)
        raise KeyboardInterrupt  # killed after raising, before the cursor and alerts are committed

    monkeypatch.setattr("fundtrail.watch.runner.raise_alerts", crash)
    with pytest.raises(KeyboardInterrupt):
        watcher.cycle()
    monkeypatch.setattr("fundtrail.watch.runner.raise_alerts", real)
    assert kinds(watcher.cycle().alerts) == EXPECTED
    assert watcher.cycle().alerts == []
    with home.op() as ctx:
        assert kinds([alert_doc(a) for a in list_alerts(ctx)]) == EXPECTED


def test_every_alert_read_and_write_is_audited(home: Home) -> None:
    from fundtrail.audit import log as audit_log
    from fundtrail.audit.models import AuditRecord
    from fundtrail.cases.db import CaseDB

    with home.op() as ctx:
        add_watch(ctx, "btc", [f"{TX['t1']}:0"], case=home.case)
    Watcher(home.path).cycle()
    with home.store() as store:
        grow(store)
    Watcher(home.path).cycle()
    with home.op() as ctx:
        assert [a.kind for a in list_alerts(ctx)] == ["at_service", "moved"]
    db = CaseDB.open(home.path)
    try:
        with db.session() as s:
            actions = list(s.execute(select(AuditRecord.action).order_by(AuditRecord.seq)).scalars())
        assert {"watch.add", "watch.run", "alert.raise", "alert.list", "request.draft"} <= set(actions)
        assert actions.count("alert.raise") == 2
        assert audit_log.verify_database(db).intact
    finally:
        db.close()


def test_watch_targets_from_a_trace_file(home: Home, tmp_path: Path) -> None:
    from fundtrail.analysis.tracing import trace_funds

    with home.store() as store:
        doc = trace_funds(store, "btc", [TX["cb1"]]).to_dict()
    with home.op() as ctx:
        watch = add_watch(ctx, "btc", trace=doc, case=home.case)
        assert sorted(p.address for p in watch.points) == sorted([R1, R2])
