"""``fundtrail watch run`` following an Ethereum node (anvil): funds leaving a watched address raise one
``moved`` alert within seconds of the block, and only one, however often the watcher polls.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chains.evm.test_rpc_anvil import ETH, Node, _anvil_binary, _start_anvil  # noqa: I001  (node helpers)
from fundtrail.cases.db import CaseDB
from fundtrail.cases.testing import seed_users
from fundtrail.cli.main import app

pytestmark = [pytest.mark.node, pytest.mark.timeout(120)]


def run_once(home: Path, url: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        app,
        ["watch", "run", "--once", "--source", url, "--chain", "eth", "--from", "0",
         "--home", str(home), "--as", "ivo", "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_funds_leaving_a_watched_address_on_anvil_raise_one_moved_alert(tmp_path: Path) -> None:
    from fundtrail.cases import cases as case_service
    from fundtrail.cases.context import open_operation
    from fundtrail.watch.service import add_watch

    proc, node = _start_anvil(_anvil_binary(), tmp_path / "anvil.log")
    try:
        alice, ransom, carol, *_ = (a.lower() for a in node.call("eth_accounts"))
        funding = node.send(alice, ransom, 5 * ETH)  # the victim pays the ransom address
        home = tmp_path / "home"
        db = CaseDB.open(home)
        try:
            seed_users(db, jurisdiction="EE", unit="Cybercrime Bureau")
        finally:
            db.close()
        with open_operation(home, "ivo") as ctx:
            number = case_service.open_case(ctx, "Ransom on ethereum", severity="high").number
            watch = add_watch(ctx, "eth", [ransom], case=number).id

        first = run_once(home, node.url)
        assert first["alerts"] == []  # the ransom arrived (funding) but has not moved
        assert first["evaluated"]["eth"]["to"] == int(node.call("eth_blockNumber"), 16)
        assert funding

        moved = node.send(ransom, carol, 2 * ETH)  # the funds leave the watched address
        mined = time.time()
        second = run_once(home, node.url)
        lag = time.time() - mined
        assert [(a["kind"], a["txid"], a["address"], a["value"], a["watch"], a["case"])
                for a in second["alerts"]] == [("moved", moved, ransom, str(2 * ETH), watch, number)]
        assert lag < 10, f"alert {lag:.1f} s after the block"

        node.call("evm_mine")  # a new, empty block: nothing new to say
        assert run_once(home, node.url)["alerts"] == []
    finally:
        _stop(proc, node)


def _stop(proc: subprocess.Popen[bytes], node: Node) -> None:
    node.client.close()
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
