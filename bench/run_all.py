"""Run every benchmark under bench/ in turn (each prints its own table against its baseline)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    """Run bench_*.py scripts (or those named on the command line); return the worst exit code."""
    names = sys.argv[1:] or sorted(p.name for p in HERE.glob("bench_*.py"))
    worst = 0
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        worst = max(worst, subprocess.call([sys.executable, str(HERE / name)]))
    return worst


if __name__ == "__main__":
    raise SystemExit(main())
