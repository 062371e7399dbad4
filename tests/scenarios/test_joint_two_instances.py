"""A joint exercise run between two FundTrail instances: each agency ingests its part of the hand-out, A
sends B its trace as a signed STIX package over the cooperation API, B follows the funds through its part
and answers with a package of what it found; A's combined answer scores higher than either part alone."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fundtrail.scenarios.exercises import create_exercise, hand_out, score_exercise, submit_answer
from fundtrail.sharing.models import SharedObject, SharedPackage
from fundtrail.store import ChainStore
from sharing.conftest import Agency, Linked, agree, settings

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def ingest_part(home: Path, part: Path) -> None:
    """What a trainee does with a hand-out: ingest the chain data and the public tags, cluster."""
    from fundtrail.analysis.clustering import cluster_addresses
    from fundtrail.analysis.coinjoin import detect_patterns
    from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
    from fundtrail.intel.tagpacks import import_actorpack, import_tagpack, is_actorpack, tagpack_files
    from fundtrail.store.ingest import ingest_batches

    with ChainStore.open_home(home) as store:
        ingest_batches(store, "btc", read_bitcoin_etl([part / "chain" / "transactions.json"], "btc"))
        files = tagpack_files([part / "tagpacks"])
        for path in [p for p in files if is_actorpack(p)] + [p for p in files if not is_actorpack(p)]:
            (import_actorpack if is_actorpack(path) else import_tagpack)(store, path)
        detect_patterns(store, "btc")
        cluster_addresses(store, "btc")


def agency_home(root: Path, name: str, country: str) -> Agency:
    from fundtrail.cases.db import CaseDB
    from fundtrail.cases.testing import seed_users

    home = root / country.lower()
    home.mkdir(parents=True)
    db = CaseDB.open(home)
    try:
        seed_users(db, jurisdiction=country, unit="Exercise team", agency_name=name)
    finally:
        db.close()
    return Agency(home, name, country)


def trace_into_case(agency: Agency, seeds: list[str], title: str) -> str:
    """Trace from ``seeds`` in the agency's store; a case with the trace preserved (endpoints as subjects)."""
    from fundtrail.analysis.tracing import trace_funds
    from fundtrail.cases import cases as case_service
    from fundtrail.cases.evidence import preserve_trace

    with agency.op("ivo") as ctx, ChainStore.open_home(agency.home, read_only=True) as store:
        number = case_service.open_case(ctx, title, severity="high", offence="ransomware").number
        trace = trace_funds(store, "btc", seeds, policy="haircut", max_hops=30).to_dict()
        preserve_trace(ctx, number, trace, store, title=title, add_subjects=True)
        agency.cases["trace"] = json.dumps(trace)
    return number


def deposits_of(trace: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The trace's endpoints at services: (address, value, exchange, jurisdiction)."""
    return [
        (e["address"], e["tainted_value"], e["entity"] or "", e["jurisdiction"] or "")
        for e in trace["endpoints"]
        if e["reason"] == "service" and e.get("address")
    ]


def received(agency: Agency) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """The addresses (by STIX id) and the case analyses of the packages the agency received."""
    with agency.db() as db, db.session() as s:
        rows = s.execute(
            select(SharedObject).join(SharedPackage).where(SharedPackage.direction == "received")
        ).scalars()
        wallets, reports = {}, []
        for o in rows:
            if o.kind == "wallet" and o.ref and o.value:
                wallets[o.ref] = o.value
            elif o.kind == "report":
                reports.append(json.loads(o.content))
    return wallets, reports


def write_answer(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["address", "value", "exchange", "jurisdiction"])
        w.writerows(sorted(set(rows)))
    return path


@pytest.fixture()
def two(tmp_path: Path) -> Iterator[tuple[Linked, dict[str, Any]]]:
    """The trainer's joint exercise, handed out; agencies A and B (the parts' countries), agreed both ways,
    each served in this process and knowing the other's endpoint."""
    from fundtrail.api.app import create_app
    from fundtrail.scenarios.exercises import load_exercise

    trainer = tmp_path / "trainer"
    ex = create_exercise(trainer, "ransomware", "easy", seed=3, size=400, joint=True, now=T0)
    hand_out(trainer, ex.id, tmp_path / "handout", now=T0)
    pa, pb = load_exercise(trainer, ex.id).parts
    a = agency_home(tmp_path / "homes", pa.agency, pa.jurisdiction)
    b = agency_home(tmp_path / "homes", pb.agency, pb.jurisdiction)
    agree(a, b, "a-b", endpoint="http://b.test")
    agree(b, a, "b-a", endpoint="http://a.test")
    apps = {"http://a.test": create_app(a.home, settings()), "http://b.test": create_app(b.home, settings())}
    yield Linked(a, b, apps), {"trainer": trainer, "id": ex.id, "out": tmp_path / "handout"}
    for app in apps.values():
        app.state.fundtrail.close()


def test_a_joint_exercise_between_two_instances(two: tuple[Linked, dict[str, Any]], tmp_path: Path) -> None:
    from fundtrail.analysis.tracing.queries import address_id
    from fundtrail.sharing.service import send_package

    linked, ex = two
    a, b = linked.a, linked.b
    part_a, part_b = ex["out"] / "part-a", ex["out"] / "part-b"
    ingest_part(a.home, part_a)
    ingest_part(b.home, part_b)
    briefing = json.loads((part_a / "handout.json").read_text())["briefing"]
    assert briefing and not json.loads((part_b / "handout.json").read_text())["briefing"]

    # 1. A traces from the victims' payments through its part and sends B the trace (a STIX package)
    case_a = trace_into_case(a, [x["address"] for x in briefing], "Ransom payments (joint exercise)")
    trace_a = json.loads(a.cases["trace"])
    with a.op("ivo") as ctx, ChainStore.open_home(a.home, read_only=True) as store:
        send_package(ctx, case_a, "a-b", store=store, clients=linked.clients)
    assert b.count(SharedPackage, direction="received", transport="api") == 1

    # 2. B follows A's unspent endpoints through its part (the blocks after A's): the transactions that
    #    spend from them are its seeds; B answers with a package of its trace
    leads, _ = received(b)
    with ChainStore.open_home(b.home, read_only=True) as store:
        known = []
        for address in set(leads.values()):
            try:
                known.append(address_id(store, "btc", address))
            except Exception:  # noqa: BLE001  (not in B's part)
                continue
        spends = [
            r[0]
            for r in store.con.execute(
                "SELECT DISTINCT txid FROM inputs WHERE chain = 'btc' AND address_id IN "
                f"({','.join('?' * len(known))}) ORDER BY txid",
                known,
            ).fetchall()
        ]
    assert spends, "B's part holds the spends of A's endpoints"
    case_b = trace_into_case(b, spends, "Partner's ransom funds (joint exercise)")
    with b.op("ivo") as ctx, ChainStore.open_home(b.home, read_only=True) as store:
        send_package(ctx, case_b, "b-a", store=store, clients=linked.clients)

    # 3. A combines its deposits with those B reported (roles endpoint:service, exact amounts, attribution)
    wallets, reports = received(a)
    from_b = [
        (wallets[w["wallet_ref"]], w["amount"], w.get("entity", ""), w.get("jurisdiction", ""))
        for r in reports
        for w in next(iter(r["extensions"].values()))["wallets"]
        if "endpoint:service" in w["roles"] and w.get("amount")
    ]
    assert from_b
    alone_a = write_answer(tmp_path / "a.csv", deposits_of(trace_a))
    alone_b = write_answer(tmp_path / "b.csv", [])  # B alone has no lead to start from
    combined = write_answer(tmp_path / "ab.csv", deposits_of(trace_a) + from_b)
    trainer, eid = ex["trainer"], ex["id"]
    submit_answer(trainer, eid, "Agency A", alone_a, part="a", now=T0 + timedelta(hours=1))
    submit_answer(trainer, eid, "Agency B", alone_b, part="b", now=T0 + timedelta(hours=1))
    submit_answer(trainer, eid, "A with B", combined, part="all", now=T0 + timedelta(hours=2))
    sa, sb, sab = score_exercise(trainer, eid)
    assert sab.recall_value.value > sa.recall_value.value >= sb.recall_value.value
    assert sab.points > max(sa.points, sb.points)
    assert a.audit_intact() and b.audit_intact()
