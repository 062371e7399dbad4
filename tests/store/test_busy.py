"""A chain store held by another process: commands go through it, or say in one line who holds it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fundtrail.store import ChainStore

HOLD = """
import sys, time
from fundtrail.store import ChainStore
store = ChainStore.open_home(sys.argv[1])
print("holding", flush=True)
time.sleep(60)
"""

PRIVATE = """
import sys, time
from fundtrail.store import ChainStore
store = ChainStore(sys.argv[1] + "/chain.duckdb")
print("holding", flush=True)
time.sleep(60)
"""


def hold(code: str, home: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def test_commands_work_while_another_process_holds_the_store(home: Path, cli) -> None:
    ChainStore.open_home(home).close()
    holder = hold(HOLD, home)
    try:
        shown = cli("store", "show", "--home", str(home), "--format", "json")
        assert shown.exit_code == 0, shown.output
        json.loads(shown.stdout)
        looked = cli("address", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "--chain", "btc",
                     "--home", str(home))
        assert looked.exit_code == 0, looked.output
    finally:
        holder.kill()
        holder.wait()


def test_a_store_held_outside_the_service_is_one_line_not_a_traceback(home: Path, cli, monkeypatch) -> None:
    monkeypatch.setenv("FUNDTRAIL_STORE_WAIT", "0.5")
    ChainStore.open_home(home).close()
    holder = hold(PRIVATE, home)
    try:
        for args in (["store", "show"],
                     ["address", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "--chain", "btc"]):
            result = cli(*args, "--home", str(home))
            assert result.exit_code == 2, result.output
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1
            assert "in use by another process" in lines[0] and f"PID {holder.pid}" in lines[0]
            assert "Traceback" not in result.output
    finally:
        holder.kill()
        holder.wait()
