"""Watch sources and targets: an export folder fed between runs, a co-spend cluster as a target, and the
freeze clock of an alert at an exchange (started when the funds arrived, due date before the request is sent).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from fundtrail.cli.main import app
from fundtrail.store.ingest import ingest_batches
from fundtrail.watch.runner import Watcher
from fundtrail.watch.service import add_watch

from .conftest import D1, R1, R2, TX, Home, addr, chain, grow

BLOCK3_TIME = 1_600_000_000 + 600 * 3  # the block of t3 (conftest's chain): R1's funds reach D1


def cli(home: Home, *args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--home", str(home.path), "--as", "ivo", "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# ------------------------------------------------------------------------------- export folder


def _script(name: str) -> str:
    """The P2WPKH script of ``addr(name)``."""
    return "0014" + hashlib.sha256(name.encode()).digest()[:20].hex()


def _etl_tx(height: int, index: int, txid: str, inputs: list[tuple[str, int, str, int]],
            outputs: list[tuple[str, int]]) -> dict[str, Any]:
    """One bitcoin-etl row; inputs are (prev txid, n, owner name, value), outputs (owner name, value)."""
    return {
        "hash": txid, "size": 200, "virtual_size": 150, "version": 2, "lock_time": 0,
        "block_number": height, "block_hash": hashlib.sha256(f"etl block {height}".encode()).hexdigest(),
        "block_timestamp": 1_600_000_000 + 600 * height, "is_coinbase": not inputs, "index": index,
        "inputs": [
            {"index": i, "spent_transaction_hash": p, "spent_output_index": n, "script_asm": "",
             "script_hex": "", "sequence": 4294967295, "required_signatures": None,
             "type": "witness_v0_keyhash", "addresses": [addr(owner)], "value": value}
            for i, (p, n, owner, value) in enumerate(inputs)
        ],
        "outputs": [
            {"index": n, "script_asm": "", "script_hex": _script(owner), "required_signatures": 1,
             "type": "witness_v0_keyhash", "addresses": [addr(owner)], "value": value}
            for n, (owner, value) in enumerate(outputs)
        ],
    }


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def test_export_files_dropped_between_runs_are_ingested_once_and_raise_the_move(
    home: Home, tmp_path: Path
) -> None:
    drop = tmp_path / "exports"
    drop.mkdir()
    watch = cli(home, "watch", "add", R1, "--chain", "btc", "--case", home.case)["id"]
    cb3 = hashlib.sha256(b"cb3").hexdigest()
    _write(drop / "0003.json", [_etl_tx(3, 0, cb3, [], [("miner", 5_000_000)])])
    first = cli(home, "watch", "run", "--once", "--source", str(drop), "--chain", "btc")
    assert [r["blocks_written"] for r in first["ingested"]] == [1]
    assert first["alerts"] == [] and first["evaluated"]["btc"]["to"] == 3

    _write(drop / "0004.json", [_etl_tx(4, 0, TX["t3"], [(TX["t1"], 0, "r1", 9_990_000)],
                                        [("d1", 9_980_000)])])
    second = cli(home, "watch", "run", "--once", "--source", str(drop), "--chain", "btc")
    assert [r["blocks_written"] for r in second["ingested"]] == [1]  # only the new file
    moved = [a for a in second["alerts"] if a["kind"] == "moved"]
    assert [(a["txid"], a["address"], a["value"], a["watch"]) for a in moved] == [
        (TX["t3"], R1, "9980000", watch)
    ]
    assert {a["kind"] for a in second["alerts"]} == {"moved", "at_service"}
    assert next(a for a in second["alerts"] if a["kind"] == "at_service")["address"] == D1

    third = cli(home, "watch", "run", "--once", "--source", str(drop), "--chain", "btc")
    assert third["ingested"] == [] and third["alerts"] == []  # each file once, each alert once


# ------------------------------------------------------------------------------------- clusters


def test_a_cluster_watch_follows_every_address_of_the_cluster(home: Home) -> None:
    a, b, e = addr("cluster-a"), addr("cluster-b"), addr("elsewhere")
    c = chain(False)
    c.next_block()
    cb3 = c.coinbase("cb3".rjust(64, "3"), [(a, 1_000_000), (b, 1_000_000)])
    c.next_block()
    c.tx("k1".rjust(64, "4"), [cb3.out(0), cb3.out(1)], [(e, 1_990_000)])  # co-spend: a and b together
    c.next_block()
    cb5 = c.coinbase("cb5".rjust(64, "5"), [(b, 5_000_000)])  # funds at b, watched through a's cluster
    with home.store() as store:
        ingest_batches(store, "btc", [c.batch()])
    result = CliRunner().invoke(app, ["cluster", "--chain", "btc", "--home", str(home.path)])
    assert result.exit_code == 0, result.output

    doc = cli(home, "watch", "add", "--cluster", a, "--chain", "btc", "--case", home.case)
    assert (doc["source"], sorted(doc["targets"])) == ("cluster", sorted([a, b]))
    cli(home, "watch", "run", "--once")  # first evaluation (the old co-spend is history)

    c.next_block()
    m = c.tx("m".rjust(64, "6"), [cb5.out(0)], [(D1, 4_990_000)])
    with home.store() as store:
        ingest_batches(store, "btc", [c.batch()])
    alerts = cli(home, "watch", "run", "--once")["alerts"]
    assert [(x["kind"], x["txid"], x["address"]) for x in alerts if x["kind"] == "moved"] == [
        ("moved", m.txid, b)
    ]
    assert any(x["kind"] == "at_service" and x["address"] == D1 for x in alerts)


def test_a_cluster_watch_without_stored_clusters_is_refused(home: Home) -> None:
    result = CliRunner().invoke(
        app, ["watch", "add", "--cluster", R1, "--chain", "btc", "--home", str(home.path), "--as", "ivo"]
    )
    assert result.exit_code == 2
    assert "fundtrail cluster" in result.output


# ---------------------------------------------------------------------------------- freeze clock


def test_the_freeze_clock_starts_when_the_funds_reach_the_exchange(home: Home) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")
        from fastapi.testclient import TestClient

    with home.op() as ctx:
        add_watch(ctx, "btc", [R1, R2], case=home.case)
    watcher = Watcher(home.path, "ivo")
    watcher.cycle()
    with home.store() as store:
        grow(store)
    watcher.cycle()
    docs = cli(home, "alerts", "list", "--kind", "at_service")
    assert len(docs) == 1
    at = docs[0]
    arrived = datetime.fromtimestamp(BLOCK3_TIME, UTC)
    # the request is still a draft, yet the clock runs from the block that brought the funds, and the
    # MLA freeze (warsaw-art21-freeze: 30 days to answer) is due 30 days after it
    assert at["request_state"] == "draft"
    assert datetime.fromisoformat(at["clock_started_at"]) == arrived
    assert date.fromisoformat(at["freeze_due"]) == arrived.date().replace(month=10, day=13)
    assert all(d["clock_started_at"] is None for d in cli(home, "alerts", "list", "--kind", "moved"))

    from fundtrail.api.app import create_app

    app_ = create_app(home.path)
    with TestClient(app_) as client:
        app_.state.fundtrail.auth.set_password("ivo", PASSWORD)
        r = client.post("/login", data={"username": "ivo", "password": PASSWORD, "next": "/alerts"},
                        follow_redirects=False)
        assert r.status_code == 303, r.text
        page = client.get("/alerts")
        api = client.get("/api/alerts", params={"kind": "at_service"}, headers={"x-reason": "test"})
    assert api.status_code == 200, api.text
    item = api.json()["items"][0]
    assert (item["clock_started_at"], item["freeze_due"]) == (at["clock_started_at"], at["freeze_due"])
    assert page.status_code == 200, page.text
    assert "2020-09-13" in page.text and "2020-10-13" in page.text
    assert "request not sent yet" in page.text


PASSWORD = "correct horse battery staple"

