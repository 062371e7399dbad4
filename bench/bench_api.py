"""API speed: many concurrent clients on loopback against ``fundtrail serve``, with baselines in the same run.

Machine this was written for: 2 cores, 24 GiB, shared by the server and the load generator (and, on the
shared development machine, by other work: the load average is printed with the table). Run:
``flock /tmp/fundtrail-heavy.lock .venv/bin/python bench/bench_api.py`` (``--seconds N`` per scenario,
default 20; ``--clients 50,200``; ``--servers granian,uvicorn``; ``--workers N`` for granian, default one
per core; ``--home DIR`` to serve an existing home instead of building the demo agency on a small world;
``--json FILE`` to write the numbers; ``--scenarios case`` to run only some, see :data:`SCENARIOS`).

The load generator is ``wrk`` (Debian's package, C): ``--threads`` threads (default 2) keep ``--clients``
connections busy for ``--seconds``; each connection sends its next request as soon as the last one is
answered (closed loop, so latency includes queueing in the server). A Lua script (:data:`WRK_SCRIPT`)
walks a list of paths from a different start per thread, counts answers other than 200 as errors, and
prints the count, p50/p90/p99/max latency (wrk's histogram) and duration. Connection, read, write and
timeout errors (timeout: 30 s) are counted as errors too. The Python generator (httpx + asyncio, one
connection per client) is kept as a comparison row on the first server: it needs more CPU per request
than the server does, so on 2 shared cores it measures itself as much as the server.

Every server scenario runs on each ``--servers`` entry in the same run:

- **bare route**: a FastAPI app with one async route answering a constant, on the same HTTP server with
  the same workers: the cost of HTTP, the event loop and the load generator here, before any FundTrail
  work (the address look-up is async too; the case read runs in the thread pool).
- **address look-up**: ``GET /api/chains/btc/addresses/{a}`` over a working set of addresses (the full
  document: activity, cluster, tags, sanctions, exposure, risk), signed in with a bearer token. Each
  worker keeps documents it computed while the chain store is unchanged, so the set is looked up first
  until every worker has it (the first look-up of an address costs what the services cost, reported
  apart in-process).
- **transaction look-up**: ``GET /api/chains/btc/transactions/{txid}``: DuckDB, then a per-worker cache.
- **case read (audited)**: ``GET /api/cases/{number}``: the case with subjects, evidence, requests and
  ledger; each read is audited (its hash-chained records committed before it answers, by each worker's
  group commit: the records of every read waiting at that moment in one SQLite transaction with one
  signed tree head, the case database's one writer at a time across the workers).
- **in-process** rows (no HTTP): the address document built by the services for addresses never looked
  up (cold) and the transaction look-up, called sequentially.

Target: p99 under 100 ms at 200 clients for address look-ups and audited case reads, no errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
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

console = Console(width=160)
PASSWORD = "bench password for the api"
FUNDTRAIL = [sys.executable, "-c", "from fundtrail.cli.main import run; run()"]
TARGET_MS = 100.0
WARM_SLOW = 0.1
"""Seconds above which a look-up while warming counts as computed (one from memory takes milliseconds)."""
SCENARIOS = ("bare", "address", "transaction", "case", "in-process")
"""What ``--scenarios`` chooses from: the bare route, the three look-ups over HTTP, the in-process rows."""

WRK_SCRIPT = r"""
-- Walks the paths listed in a file (args[1]) from a different start per thread; an optional
-- Authorization header (args[2]). Counts answers other than 200; prints one JSON line when done.
local threads = {}
local counter = 0
local requests = {}
non200 = 0
id = 0

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  if args[2] ~= nil and args[2] ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. args[2]
  end
  for line in io.lines(args[1]) do
    if #line > 0 then table.insert(requests, wrk.format("GET", line)) end
  end
  counter = (id * 7919) % #requests
end

function request()
  counter = counter + 1
  if counter > #requests then counter = 1 end
  return requests[counter]
end

function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("non200") end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "non200": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, bad,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


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
    import sys
    from fastapi import FastAPI

    def make():
        app = FastAPI()

        @app.get("/constant")
        async def constant() -> dict:
            return {"answer": 42}

        return app

    port, server, workers = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    if server == "uvicorn":
        import uvicorn
        uvicorn.run(make(), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                    proxy_headers=False, server_header=False)
    else:
        from granian import Granian
        from granian.constants import Interfaces
        from granian.log import LogLevels
        Granian("bare", address="127.0.0.1", port=port, interface=Interfaces.ASGI, workers=workers,
                log_level=LogLevels.warning, backlog=2048).serve(target_loader=make, wrap_loader=False)
""")


class Server:
    """A server process on a free loopback port: ``fundtrail serve`` or the bare baseline app."""

    def __init__(self, command: list[str], ready: str, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(self.base + ready, self.process)

    @classmethod
    def fundtrail(cls, home: Path, server: str, workers: int, document_seconds: float | None = None
                  ) -> Server:
        """``fundtrail serve`` for ``home`` on ``server`` (granian with ``workers``, or uvicorn)."""
        port = free_port()
        extra = ["--workers", str(workers)] if server == "granian" else []
        if document_seconds is not None:
            extra += ["--document-cache-seconds", f"{document_seconds:g}"]
        return cls([*FUNDTRAIL, "serve", "--home", str(home), "--port", str(port), "--no-access-log",
                    "--log-level", "warning", "--server", server, *extra], "/login", port)

    @classmethod
    def bare(cls, server: str, workers: int) -> Server:
        """The baseline: one constant route on the same HTTP server."""
        port = free_port()
        return cls([sys.executable, "-c", BARE_APP, str(port), server, str(workers)], "/constant", port)

    def stop(self) -> None:
        """Stop the process (and its workers)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def run_wrk(base: str, paths: list[str], token: str | None, clients: int, seconds: float, threads: int,
            folder: Path) -> dict[str, Any]:
    """``wrk`` with :data:`WRK_SCRIPT` over ``paths``: requests, req/s, p50/p99/max ms, errors."""
    script = folder / "walk.lua"
    script.write_text(WRK_SCRIPT)
    listing = folder / f"paths-{abs(hash(tuple(paths)))}.txt"
    listing.write_text("\n".join(paths) + "\n")
    command = ["wrk", "-t", str(min(threads, clients)), "-c", str(clients), "-d", f"{seconds:g}s",
               "--timeout", "30s", "-s", str(script), base, "--", str(listing), token or ""]
    done = subprocess.run(command, capture_output=True, text=True)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr[-1000:]} {done.stdout[-1000:]}")
    raw = json.loads(line[len("WRKJSON "):])
    elapsed = raw["duration_us"] / 1e6
    kinds = {k: raw[k] for k in ("connect", "read", "write", "timeout", "non200") if raw[k]}
    return {"requests": raw["requests"], "seconds": round(elapsed, 2),
            "throughput": round(raw["requests"] / elapsed, 1) if elapsed else 0.0,
            "p50_ms": raw["p50_us"] / 1000, "p99_ms": raw["p99_us"] / 1000, "max_ms": raw["max_us"] / 1000,
            "errors": sum(kinds.values()), "error_kinds": kinds, "generator": "wrk"}


async def load(base: str, paths: list[str], headers: dict[str, str], clients: int, seconds: float
               ) -> dict[str, Any]:
    """The Python generator: ``clients`` asyncio tasks (one httpx connection each) requesting ``paths``
    (round robin from a random start) for ``seconds``; the clients have connected before the clock starts."""
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
    return {**summarize(latencies, elapsed, errors), "generator": "python"}


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


def machine() -> str:
    """Cores, CPU model, memory and the load average when the run ended."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory = Path("/proc/meminfo").read_text().split()[1]
        gib = f"{int(memory) / 2**20:.0f} GiB"
    except OSError:
        gib = "?"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} cores ({model}), {gib}, shared by server and load generator; "
            f"load average {load}")


def main() -> int:
    """Build or take a home, serve it on each server, load it with wrk, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="Load time per scenario.")
    parser.add_argument("--clients", type=lambda text: [int(x) for x in text.split(",")], default=[50, 200],
                        help="Concurrent connections; a comma-separated list runs every scenario at each.")
    parser.add_argument("--servers", type=lambda text: text.split(","), default=["granian", "uvicorn"],
                        help="HTTP servers to compare (granian, uvicorn); the first gets the Python rows.")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="granian worker processes.")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads.")
    parser.add_argument("--addresses", type=int, default=200, help="Addresses in the working set.")
    parser.add_argument("--home", type=Path, help="Serve this home (its users need PASSWORD set).")
    parser.add_argument("--json", type=Path, help="Write the numbers to this file.")
    parser.add_argument("--no-python", action="store_true", help="Skip the Python generator's rows.")
    parser.add_argument("--document-seconds", type=float,
                        help="fundtrail serve --document-cache-seconds (default: the service's, 0.5 s).")
    parser.add_argument("--scenarios", type=lambda text: set(text.split(",")), default=set(SCENARIOS),
                        help=f"Only these scenarios, comma-separated (default all: {','.join(SCENARIOS)}).")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench_api needs wrk (apt-get install wrk)")
    bad = [s for s in args.servers if s not in ("granian", "uvicorn")]
    if bad:
        raise SystemExit(f"--servers: {', '.join(bad)}: only granian and uvicorn")
    if args.scenarios - set(SCENARIOS):
        raise SystemExit(f"--scenarios: {', '.join(sorted(args.scenarios - set(SCENARIOS)))}: "
                         f"only {', '.join(SCENARIOS)}")

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="fundtrail-bench-api-") as tmp:
        folder = Path(tmp)
        home = args.home or build_home(folder)
        addresses, txids = working_set(home, args.addresses)
        for index, kind in enumerate(args.servers):
            workers = args.workers if kind == "granian" else 1
            label = f"{kind} x{workers}"
            python_rows = index == 0 and not args.no_python
            bare = Server.bare(kind, workers) if "bare" in args.scenarios else None
            try:
                for n in args.clients if bare is not None else []:
                    results[f"{label}: bare route [{n}]"] = run_wrk(
                        bare.base, ["/constant"], None, n, args.seconds, args.threads, folder)
                if python_rows and bare is not None:
                    n = max(args.clients)
                    results[f"{label}: bare route [{n}], Python generator"] = asyncio.run(
                        load(bare.base, ["/constant"], {}, n, args.seconds))
            finally:
                if bare is not None:
                    bare.stop()
            server = Server.fundtrail(home, kind, workers, args.document_seconds)
            try:
                results.update(load_fundtrail(server, label, addresses, txids, args, folder, python_rows))
            finally:
                server.stop()
        if "in-process" in args.scenarios:
            results.update(in_process(home, list(reversed(addresses)), txids))

    where = machine()
    table = Table(title=f"API under load: wrk, connections in brackets, {args.seconds:g} s per scenario, "
                        f"loopback\n{where}")
    for column in ("scenario", "requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for name, r in results.items():
        table.add_row(name, f"{r['requests']:,}", f"{r['throughput']:,.1f}", f"{r['p50_ms']:.1f}",
                      f"{r['p99_ms']:.1f}", f"{r['max_ms']:.1f}",
                      str(r["errors"]) + (f" {r['error_kinds']}" if r["errors"] else ""))
    console.print(table)
    for kind in args.servers:
        label = f"{kind} x{args.workers if kind == 'granian' else 1}"
        for n in args.clients:
            rows = {k: results[f"{label}: {k} [{n}]"] for k in ("address look-up", "case read (audited)")
                    if f"{label}: {k} [{n}]" in results}
            if not rows:
                continue
            errors = sum(r["errors"] for k, r in results.items() if k.startswith(label) and f"[{n}]" in k)
            worst = max(r["p99_ms"] for r in rows.values())
            met = worst < TARGET_MS and not errors
            console.print(f"{label}, {n} connections: "
                          + ", ".join(f"{k} p99 {r['p99_ms']:.0f} ms" for k, r in rows.items())
                          + f", {errors} errors: target "
                          f"(p99 < {TARGET_MS:.0f} ms, no errors) "
                          + ("met" if met else f"NOT met (by {max(0.0, worst - TARGET_MS):.0f} ms)"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"clients": args.clients, "seconds": args.seconds, "machine": where,
                                         "results": results}, indent=2))
    return 0


def _login(base: str, username: str) -> str:
    answer = httpx.post(f"{base}/api/auth/login", json={"username": username, "password": PASSWORD},
                        timeout=60)
    answer.raise_for_status()
    token: str = answer.json()["token"]
    return token


def load_fundtrail(server: Server, label: str, addresses: list[str], txids: list[str], args: Any,
                   folder: Path, python_rows: bool) -> dict[str, Any]:
    """The FundTrail scenarios at each number of connections."""
    out: dict[str, Any] = {}
    token = _login(server.base, "analyst")
    case_token = _login(server.base, "investigator")
    case_headers = {"Authorization": f"Bearer {case_token}"}
    number = httpx.get(f"{server.base}/api/cases", headers=case_headers).json()["items"][0]["number"]
    # Each worker computes a document on its first look-up and keeps it (while the store is unchanged):
    # look the set up until no look-up is slow any more. Each pass looks every address up on several new
    # connections, which the workers accept at random, so that a quiet pass has reached every worker.
    began = time.perf_counter()
    quiet = 0
    copies = 4 * max(1, args.workers if label.startswith("granian") else 1)
    # Until two passes in a row find every document computed.
    for _ in range(12 if "address" in args.scenarios else 0):
        quiet = quiet + 1 if asyncio.run(_warm(server.base, addresses, token, copies)) == 0 else 0
        if quiet == 2:
            break
    console.print(f"{label}: warmed {len(addresses)} address documents in {time.perf_counter() - began:.1f}s")
    address_paths = [f"/api/chains/btc/addresses/{a}" for a in addresses]
    tx_paths = [f"/api/chains/btc/transactions/{t}" for t in txids]
    case_paths = [f"/api/cases/{number}"]
    for n in args.clients:
        if "address" in args.scenarios:
            out[f"{label}: address look-up [{n}]"] = run_wrk(server.base, address_paths, token, n,
                                                            args.seconds, args.threads, folder)
        if "transaction" in args.scenarios:
            out[f"{label}: transaction look-up [{n}]"] = run_wrk(server.base, tx_paths, token, n,
                                                                args.seconds, args.threads, folder)
        if "case" in args.scenarios:
            out[f"{label}: case read (audited) [{n}]"] = run_wrk(server.base, case_paths, case_token, n,
                                                                args.seconds, args.threads, folder)
    if python_rows and "address" in args.scenarios:
        n = max(args.clients)
        out[f"{label}: address look-up [{n}], Python generator"] = asyncio.run(
            load(server.base, address_paths, {"Authorization": f"Bearer {token}"}, n, args.seconds))
    return out


async def _warm(base: str, addresses: list[str], token: str, copies: int = 1) -> int:
    """Look every address up ``copies`` times, each on a new connection (the workers accept them at
    random), following a 202 to its job rather than asking again; returns how many look-ups were not
    answered from a worker's memory (a 202, or slower than :data:`WARM_SLOW`: computed)."""
    computed = 0
    headers = {"Authorization": f"Bearer {token}"}
    semaphore = asyncio.Semaphore(4)
    fresh = httpx.Limits(max_connections=4, max_keepalive_connections=0)  # a new connection per request
    client = httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=fresh,
                               verify=ssl.create_default_context())

    async def one(a: str) -> None:
        nonlocal computed
        async with semaphore:
            began = time.perf_counter()
            r = await client.get(f"/api/chains/btc/addresses/{a}")
            if r.status_code != 202:
                computed += time.perf_counter() - began > WARM_SLOW
                return
            computed += 1
            location = r.json()["location"]
            for _ in range(240):  # still computing: wait for its job (polled at any worker)
                await asyncio.sleep(0.5)
                job = await client.get(location)
                if job.status_code != 200 or job.json()["status"] != "running":
                    return

    try:
        await asyncio.gather(*(one(a) for a in addresses for _ in range(copies)))
    finally:
        await client.aclose()
    return computed


if __name__ == "__main__":
    raise SystemExit(main())
