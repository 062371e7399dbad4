"""``fundtrail watch run --follow`` against a real litecoind in regtest, killed with SIGKILL and restarted.

Two ransom addresses are watched. The funds of the first leave for an exchange deposit address (tagged,
abroad): within seconds one ``moved`` and one ``at_service`` alert are raised, with a freeze request
drafted. The watcher is then killed (SIGKILL) just as the second ransom moves (to another deposit
address); restarted, it raises that move's alerts once, and nothing of the first again.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chains.bitcoin.test_rpc_litecoind import Node, start_node  # noqa: I001  (the node helpers)
from fundtrail.cases.db import CaseDB
from fundtrail.cases.testing import seed_users
from fundtrail.store import ChainStore

pytestmark = [pytest.mark.node, pytest.mark.timeout(300)]
CHAIN = "ltc-regtest"


def move(node: Node, source: str, target: str) -> str:
    """Spend every coin of ``source`` to ``target`` (and mine it)."""
    coins = [u for u in node.wallet("listunspent", 1, 9999999, [source]) if "vout" in u]
    total = sum(Decimal(c["amount"]) for c in coins)
    raw = node.wallet(
        "createrawtransaction",
        [{"txid": c["txid"], "vout": c["vout"]} for c in coins],
        {target: str(total - Decimal("0.001"))},
    )
    txid = node.call("sendrawtransaction", node.wallet("signrawtransactionwithwallet", raw)["hex"])
    return str(txid)


def alerts(home: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "cases.sqlite", timeout=30) as con:
        return con.execute("SELECT kind, txid, address, request_id FROM watch_alerts ORDER BY id").fetchall()


def cursor(home: Path) -> int:
    with sqlite3.connect(home / "cases.sqlite", timeout=30) as con:
        row = con.execute("SELECT height FROM watch_cursors WHERE source = 'store'").fetchone()
    return int(row[0]) if row else -1


def wait(what: Any, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def watcher(home: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FUNDTRAIL_USER": "ivo"}
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "fundtrail"),
            "watch",
            "run",
            "--follow",
            "--interval",
            "0.3",
            "--source",
            url,
            "--chain",
            CHAIN,
            "--home",
            str(home),
        ],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_a_killed_watcher_restarts_without_a_lost_or_repeated_alert(tmp_path: Path) -> None:
    from fundtrail.cases import cases as case_service
    from fundtrail.cases.context import open_operation
    from fundtrail.watch.service import add_watch

    node = start_node(tmp_path / "node")
    process = None
    try:
        node.call("createwallet", "w")
        miner, ransom_a, ransom_b, exchange, exchange_b = (
            node.wallet("getnewaddress", "", "bech32") for _ in range(5)
        )
        node.mine(101, miner)
        node.wallet("sendtoaddress", ransom_a, "1.5")
        node.wallet("sendtoaddress", ransom_b, "2.5")
        node.mine(1, miner)
        home = tmp_path / "home"
        db = CaseDB.open(home)
        try:
            seed_users(db, jurisdiction="EE", unit="Cybercrime Bureau")
        finally:
            db.close()
        with open_operation(home, "ivo") as ctx:
            number = case_service.open_case(ctx, "Ransom on litecoin", severity="high").number
            add_watch(ctx, CHAIN, [ransom_a, ransom_b], case=number)
        with ChainStore.open_home(home) as store:  # the exchange's deposit address, abroad
            import fundtrail.intel.attribution  # noqa: F401  (registers the tag table)

            store.con.execute(
                "CREATE TABLE IF NOT EXISTS tags (chain VARCHAR NOT NULL, address VARCHAR NOT NULL, "
                "label VARCHAR, category VARCHAR, abuse VARCHAR, actor VARCHAR, jurisdiction VARCHAR, "
                "confidence VARCHAR, confidence_level INTEGER, source VARCHAR, tagpack VARCHAR, "
                "is_cluster_definer BOOLEAN, lastmod VARCHAR, extra JSON, tag_index INTEGER)"
            )
            for deposit in (exchange, exchange_b):
                store.con.execute(
                    "INSERT INTO tags (chain, address, label, category, jurisdiction, "
                    "confidence_level, source, tagpack) VALUES (?, ?, 'Northwind Exchange', "
                    "'exchange', 'SC', 90, 'test', 'test')",
                    [CHAIN, deposit],
                )
        log = tmp_path / "watcher.log"
        process = watcher(home, node.url, log)
        tip = int(node.call("getblockcount"))
        wait(lambda: cursor(home) >= tip, 120)  # caught up: the ransoms have not moved
        assert alerts(home) == []

        txid_a = move(node, ransom_a, exchange)
        node.mine(1, miner)
        started = time.monotonic()
        found = wait(lambda: (rows := alerts(home)) and len(rows) >= 2 and rows)
        lag = time.monotonic() - started
        assert lag < 10, lag
        assert sorted((k, t) for k, t, _, _ in found) == [("at_service", txid_a), ("moved", txid_a)]
        assert next(r for k, _, _, r in found if k == "at_service") is not None  # the freeze request

        txid_b = move(node, ransom_b, exchange_b)
        node.mine(1, miner)
        time.sleep(0.2)
        process.send_signal(signal.SIGKILL)  # mid-way: maybe while it ingests or evaluates the block
        process.wait(timeout=30)
        process = watcher(home, node.url, log)
        wait(lambda: len(alerts(home)) >= 4)
        time.sleep(1.5)  # a few more cycles: nothing is raised again
        final = alerts(home)
        assert sorted((k, t) for k, t, _, _ in final) == sorted(
            [("at_service", txid_a), ("moved", txid_a), ("at_service", txid_b), ("moved", txid_b)]
        )
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        node.stop()
