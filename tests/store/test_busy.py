"""A chain store held by another process (a running server, an ingest) is reported in one line, exit 2."""

from __future__ import annotations

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


def test_a_store_held_by_another_process_is_one_line_not_a_traceback(home: Path, cli) -> None:
    ChainStore.open_home(home).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(home)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
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
