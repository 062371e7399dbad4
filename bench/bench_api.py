"""API speed: many concurrent clients on loopback against ``fundtrail serve``, with baselines in the same run.

Machine this was written for: 2 cores, 24 GiB, shared by the server and the load generator. Run:
``.venv/bin/python bench/bench_api.py`` (``--seconds N`` per scenario, default 60; ``--clients K``,
default 200; ``--home DIR`` to serve an existing home instead of building the demo agency on a small
world; ``--json FILE`` to write the numbers).

Every scenario runs ``--clients`` asyncio tasks sharing one httpx client (one connection each) for
``--seconds``; each task sends its next request as soon as the last one is answered. Latency is per
request; an error is a transport failure or any status other than 200.

- **baseline: bare route**: a FastAPI app with one route answering a constant, served by uvicorn exactly
  as ``fundtrail serve`` is (same process model, same client): the cost of HTTP, the event loop and
  the load generator on this machine, before any FundTrail work.
- **address look-up**: ``GET /api/chains/btc/addresses/{a}`` over a working set of addresses of the
  chain (the full document: activity, cluster, tags, sanctions, exposure, risk), signed in with a bearer
  token. The service keeps documents it computed (the chain store is read-only while it serves), so the
  first look-up of an address costs what the services cost (reported apart, measured in-process), and
  later ones are answered from memory.
- **transaction look-up**: ``GET /api/chains/btc/transactions/{txid}``: a DuckDB query on every call.
- **case read**: ``GET /api/cases/{number}``: the case with subjects, evidence, requests and ledger; each
  read is an audited operation (two hash-chained audit records written in one SQLite transaction).
- **in-process** rows (no HTTP): the address document built by the services for addresses never looked
  up (cold) and the transaction look-up, called sequentially: what one request costs without the web
  stack and without contention.

Target: p99 under 100 ms for look-ups, no errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

console = Console(width=140)
PASSWORD = "bench password for the api"
FUNDTRAIL = [sys.executable, "-c", "from fundtrail.cli.main import run; run()"]


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until ``url`` answers (or the server process stops)."""
    for _ in range(600):
        if process.poll() is not None:
            raise SystemExit(f"the server stopped (exit {process.returncode})")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def build_home(folder: Path) -> Path:
    """The demo agency on a small world, its users signing in with :data:`PASSWORD`."""
    home = folder / "home"
    env = {**os.environ, "FUNDTRAIL_DEMO_PASSWORD": PASSWORD}
    done = subprocess.run([*FUNDTRAIL, "demo", "--home", str(home), "--size", "small", "--format", "json"],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the demo failed: {done.stderr[-2000:]}")
    return home


BARE_APP = textwrap.dedent("""
    import sys, uvicorn
    from fastapi import FastAPI
    app = FastAPI()
    @app.get("/constant")
    def constant() -> dict:
        return {"answer": 42}
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
""")


class Server:
    """A server process on a free loopback port: ``fundtrail serve`` or the bare baseline app."""

    def __init__(self, command: list[str], ready: str, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(self.base + ready, self.process)

    @classmethod
    def fundtrail(cls, home: Path) -> Server:
        """``fundtrail serve`` for ``home``."""
        port = free_port()
        return cls([*FUNDTRAIL, "serve", "--home", str(home), "--port", str(port), "--no-access-log",
                    "--log-level", "warning"], "/login", port)

    @classmethod
    def bare(cls) -> Server:
        """The baseline: one constant route on uvicorn."""
        port = free_port()
        return cls([sys.executable, "-c", BARE_APP, str(port)], "/constant", port)

    def stop(self) -> None:
        """Stop the process."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def load(base: str, paths: list[str], headers: dict[str, str], clients: int, seconds: float
               ) -> dict[str, Any]:
    """``clients`` tasks requesting ``paths`` (round robin from a random start) for ``seconds``.

    Each task is one client with its own connection (a shared pool of hundreds of connections costs
    httpx more than the requests themselves); the clients are made, and have connected with a first
    request, before the clock starts.
    """
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    tls = ssl.create_default_context()  # one context for all (loopback is plain HTTP; httpx wants one)
    pool = [httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60, verify=tls)
            for _ in range(clients)]
    try:
        await asyncio.gather(*(c.get(paths[0]) for c in pool))
        deadline = time.perf_counter() + seconds

        async def worker(client: httpx.AsyncClient, start: int) -> None:
            i = start
            while time.perf_counter() < deadline:
                path = paths[i % len(paths)]
                i += 1
                began = time.perf_counter()
                try:
                    response = await client.get(path)
                    status: int | str = response.status_code
                except httpx.HTTPError as error:
                    status = type(error).__name__
                latencies.append(time.perf_counter() - began)
                if status != 200:
                    errors[str(status)] = errors.get(str(status), 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(c, random.randrange(len(paths))) for c in pool))
        elapsed = time.perf_counter() - started
    finally:
        await asyncio.gather(*(c.aclose() for c in pool))
    return summarize(latencies, elapsed, errors)


def summarize(latencies: list[float], elapsed: float, errors: dict[str, int]) -> dict[str, Any]:
    """Requests, throughput, p50/p99/max in ms, errors."""
    ordered = sorted(latencies)
    n = len(ordered)

    def pct(q: float) -> float:
        return ordered[min(n - 1, int(q * n))] * 1000 if n else float("nan")

    return {"requests": n, "seconds": round(elapsed, 2),
            "throughput": round(n / elapsed, 1) if elapsed else 0,
            "p50_ms": round(pct(0.50), 2), "p99_ms": round(pct(0.99), 2),
            "max_ms": round(ordered[-1] * 1000, 2) if n else float("nan"),
            "errors": sum(errors.values()), "error_kinds": errors}


def in_process(home: Path, addresses: list[str], txids: list[str]) -> dict[str, dict[str, Any]]:
    """The services alone, sequentially: address documents (cold) and transaction look-ups."""
    from fundtrail.api.documents import address_document
    from fundtrail.api.stores import ChainAccess
    from fundtrail.store.lookups import transaction_detail

    access = ChainAccess(home)
    out: dict[str, dict[str, Any]] = {}
    try:
        with access.store() as store:
            address_document(store, home, "btc", addresses[-1])  # builds the shared graph once
            times = []
            for a in addresses[:40]:
                began = time.perf_counter()
                address_document(store, home, "btc", a)
                times.append(time.perf_counter() - began)
            out["in-process: address document, cold"] = summarize(times, sum(times), {})
            times = []
            for t in txids[:200]:
                began = time.perf_counter()
                transaction_detail(store, "btc", t)
                times.append(time.perf_counter() - began)
            out["in-process: transaction look-up"] = summarize(times, sum(times), {})
    finally:
        access.close()
    return out


def working_set(home: Path, size: int) -> tuple[list[str], list[str]]:
    """Addresses and txids of the chain to look up (the busiest first, then random ones)."""
    import duckdb

    con = duckdb.connect(str(home / "chain.duckdb"), read_only=True)
    try:
        busy = [r[0] for r in con.execute(
            "SELECT address FROM outputs WHERE chain = 'btc' AND address IS NOT NULL GROUP BY address "
            "ORDER BY count(*) DESC LIMIT ?", [size // 10]).fetchall()]
        rest = [r[0] for r in con.execute(
            "SELECT DISTINCT address FROM outputs WHERE chain = 'btc' AND address IS NOT NULL "
            "ORDER BY hash(address) LIMIT ?", [size]).fetchall()]
        txids = [r[0] for r in con.execute(
            "SELECT txid FROM txs WHERE chain = 'btc' ORDER BY hash(txid) LIMIT 2000").fetchall()]
    finally:
        con.close()
    addresses = list(dict.fromkeys(busy + rest))[:size]
    return addresses, txids


def main() -> int:
    """Build or take a home, serve it, load it, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="Load time per scenario.")
    parser.add_argument("--clients", type=lambda text: [int(x) for x in text.split(",")], default=[200],
                        help="Concurrent clients; a comma-separated list runs every scenario at each.")
    parser.add_argument("--addresses", type=int, default=500, help="Addresses in the working set.")
    parser.add_argument("--home", type=Path, help="Serve this home (its users need PASSWORD set).")
    parser.add_argument("--json", type=Path, help="Write the numbers to this file.")
    args = parser.parse_args()

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="fundtrail-bench-api-") as tmp:
        home = args.home or build_home(Path(tmp))
        addresses, txids = working_set(home, args.addresses)
        bare = Server.bare()
        try:
            for n in args.clients:
                results[f"baseline: bare FastAPI route [{n}]"] = asyncio.run(
                    load(bare.base, ["/constant"], {}, n, args.seconds))
        finally:
            bare.stop()
        server = Server.fundtrail(home)
        try:
            results.update(load_fundtrail(server, addresses, txids, args))
        finally:
            server.stop()
        results.update(in_process(home, list(reversed(addresses)), txids))

    table = Table(title=f"API under load (clients in brackets), {args.seconds:g} s per scenario "
                        f"(loopback, {os.cpu_count()} cores shared with the load generator)")
    for column in ("scenario", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for name, r in results.items():
        table.add_row(name, f"{r['requests']:,}", f"{r['throughput']:,.1f}", f"{r['p50_ms']:.1f}",
                      f"{r['p99_ms']:.1f}", f"{r['max_ms']:.1f}",
                      str(r["errors"]) + (f" {r['error_kinds']}" if r["errors"] else ""))
    console.print(table)
    for n in args.clients:
        lookups = [results[f"{k} [{n}]"]["p99_ms"] for k in ("address look-up (working set)",
                                                              "transaction look-up")]
        errors = sum(r["errors"] for k, r in results.items() if k.endswith(f"[{n}]"))
        verdict = "met" if all(p < 100 for p in lookups) and not errors else "NOT met"
        console.print(f"{n} clients: look-ups p99 {max(lookups):.0f} ms, {errors} errors: target "
                      f"(p99 < 100 ms, no errors) {verdict}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"clients": args.clients, "seconds": args.seconds,
                                         "results": results}, indent=2))
    return 0


def load_fundtrail(server: Server, addresses: list[str], txids: list[str], args: Any) -> dict[str, Any]:
    """The FundTrail scenarios at each number of clients."""
    out: dict[str, Any] = {}
    login = httpx.post(f"{server.base}/api/auth/login", json={"username": "analyst", "password": PASSWORD})
    login.raise_for_status()
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    case_login = httpx.post(f"{server.base}/api/auth/login",
                            json={"username": "investigator", "password": PASSWORD})
    case_headers = {"Authorization": f"Bearer {case_login.json()['token']}"}
    number = httpx.get(f"{server.base}/api/cases", headers=case_headers).json()["items"][0]["number"]
    # The first look-up of each address of the working set fills the service's document cache.
    began = time.perf_counter()
    warm = asyncio.run(_warm(server.base, addresses, headers))
    console.print(f"warmed {len(addresses)} address documents in {time.perf_counter() - began:.1f}s "
                  f"({warm} errors)")
    address_paths = [f"/api/chains/btc/addresses/{a}" for a in addresses]
    tx_paths = [f"/api/chains/btc/transactions/{t}" for t in txids]
    for n in args.clients:
        out[f"address look-up (working set) [{n}]"] = asyncio.run(
            load(server.base, address_paths, headers, n, args.seconds))
        out[f"transaction look-up [{n}]"] = asyncio.run(load(server.base, tx_paths, headers, n, args.seconds))
        out[f"case read (audited) [{n}]"] = asyncio.run(
            load(server.base, [f"/api/cases/{number}"], case_headers, n, args.seconds))
    return out


async def _warm(base: str, addresses: list[str], headers: dict[str, str]) -> int:
    """Look every address up once (a few at a time); returns how many failed."""
    errors = 0
    limits = httpx.Limits(max_connections=4)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=120) as client:
        semaphore = asyncio.Semaphore(4)

        async def one(a: str) -> None:
            nonlocal errors
            async with semaphore:
                for _ in range(60):
                    r = await client.get(f"/api/chains/btc/addresses/{a}")
                    if r.status_code != 202:
                        break
                    await asyncio.sleep(0.5)  # still computing: the service answers 202 with a job
                if r.status_code != 200:
                    errors += 1

        await asyncio.gather(*(one(a) for a in addresses))
    return errors


if __name__ == "__main__":
    raise SystemExit(main())
