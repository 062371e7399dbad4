"""Address documents stay cached while the chain store is unchanged, and a write by another process (an
ingest, a tag import) gives the next look-up, once the worker has looked again, the new document."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml
from test_document_cache import Clock, Probe  # the fake clock and store generation of the cache tests

from fundtrail.api.documents import DocumentCache, home_generation
from fundtrail.api.routers import chain as chain_router
from fundtrail.store.chainstore import file_generation

FUNDTRAIL = [sys.executable, "-c", "from fundtrail.cli.main import run; run()"]


def test_a_document_is_valid_while_its_generation_is_and_the_probe_is_asked_once_per_interval() -> None:
    clock, probe = Clock(), Probe()
    cache = DocumentCache(size=10, seconds=0.5, generation=probe, clock=clock)
    generation = cache.current()
    cache.put("a", b"old", generation)
    for _ in range(100):
        assert cache.get("a") == b"old"
    clock.now += 10_000  # time alone does not make a document stale ...
    assert cache.get("a") == b"old"
    assert probe.asked == 2  # ... and the probe is asked once per interval, not per look-up
    probe.value = 2  # the store changed: seen at the next check
    assert cache.get("a") == b"old"
    clock.now += 0.5
    assert cache.get("a") is None
    cache.put("a", b"new", cache.current())
    assert cache.get("a") == b"new"


def test_a_document_tagged_with_an_older_generation_is_not_served_under_a_newer_one() -> None:
    clock, probe = Clock(), Probe()
    cache = DocumentCache(size=10, seconds=0, generation=probe, clock=clock)
    before = cache.current()  # taken before the computation
    probe.value = 2  # a commit lands while the document is computed
    cache.put("a", b"maybe old", before)
    assert cache.get("a") is None  # seen at once with a zero interval


def test_concurrent_computations_of_one_document_are_shared() -> None:
    cache = DocumentCache(size=10, generation=Probe())
    generation = cache.current()
    assert cache.pending("a", generation) is None
    claim = cache.claim("a", generation)
    waiting = cache.pending("a", generation)
    assert waiting is claim and cache.pending("a", "another generation") is None
    cache.settle("a", claim, b"doc")
    assert waiting.result(timeout=1) == b"doc" and cache.pending("a", generation) is None
    failed = cache.claim("b", generation)
    cache.settle("b", failed, error=ValueError("no"))
    assert isinstance(failed.exception(timeout=1), ValueError) and cache.pending("b", generation) is None


def test_the_store_generation_changes_with_commits_only(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "chain.duckdb"
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE TABLE t (a INTEGER)")
        before = file_generation(path)
        con.execute("SELECT count(*) FROM t").fetchall()
        con.execute("CREATE TEMP TABLE scratch AS SELECT 1")
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO t VALUES (1)")
        con.execute("ROLLBACK")
        assert file_generation(path) == before  # reads, temporary tables, rolled-back writes
        seen = {before}
        for statement in ("INSERT INTO t VALUES (2)", "UPDATE t SET a = 3", "CHECKPOINT",
                          "DELETE FROM t"):
            con.execute(statement)
            now = file_generation(path)
            assert now not in seen, statement
            seen.add(now)
    finally:
        con.close()
    catalogue = tmp_path / "indicators.yaml"
    before_home = home_generation(tmp_path)
    catalogue.write_text("indicators: []\n")
    assert home_generation(tmp_path) != before_home  # the home's indicator catalogue counts too


def _pack(path: Path, address: str, label: str) -> Path:
    path.write_text(yaml.safe_dump({
        "title": "later tags", "creator": "Test Unit", "currency": "BTC", "confidence": "forensic",
        "source": "https://example.org/case-9", "tags": [{"address": address, "label": label,
                                                          "category": "exchange"}]}))
    return path


INGEST = textwrap.dedent("""
    import sys
    from pathlib import Path
    from fundtrail.store import ChainStore
    from fundtrail.testing.utxo import UtxoChain

    store = ChainStore.open_home(Path(sys.argv[1]))
    try:
        chain = UtxoChain(start_height=int(sys.argv[3]))
        chain.coinbase("ab" * 32, [(sys.argv[2], 7_000_000)])
        print(chain.write(store))
    finally:
        store.close()
""")


def test_a_write_by_another_process_gives_the_next_look_up_the_new_document(agency, world, monkeypatch,
                                                                            tmp_path: Path) -> None:
    cache = agency.app.state.fundtrail.address_cache
    clock = Clock()
    monkeypatch.setattr(cache, "_clock", clock)
    real, calls = chain_router.address_document, []

    def counted(*args: Any) -> dict[str, Any]:
        calls.append(args[-1])
        return real(*args)

    monkeypatch.setattr(chain_router, "address_document", counted)
    url, headers = f"/api/chains/btc/addresses/{world.S}", agency.headers("ana")

    def look_up() -> dict[str, Any]:
        answer = agency.client.get(url, headers=headers)
        assert answer.status_code == 200, answer.text
        document: dict[str, Any] = answer.json()
        return document

    first = look_up()
    for _ in range(5):
        clock.now += cache.seconds  # the worker looks again: the store is unchanged
        assert look_up() == first
    assert calls == [world.S]  # computed once

    # A tag import by another process (the CLI reaches the store through this process, which hosts it).
    pack = _pack(tmp_path / "p.yaml", world.S, "Later Desk")
    done = subprocess.run([*FUNDTRAIL, "tags", "import", str(pack), "--home", str(agency.home)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert look_up() == first  # the worker has not looked since: within the check interval
    clock.now += cache.seconds
    tagged = look_up()
    assert "Later Desk" in {t["label"] for t in tagged["tags"]}
    assert look_up() == tagged and len(calls) == 2

    # An ingest by another process: a new block paying S.
    done = subprocess.run([sys.executable, "-c", INGEST, str(agency.home), world.S, "6"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    clock.now += cache.seconds
    paid = look_up()
    assert paid["tx_count"] == first["tx_count"] + 1
    assert int(paid["received"]) == int(first["received"]) + 7_000_000
    assert look_up() == paid and len(calls) == 3


def test_the_indicator_catalogue_is_parsed_once_per_version_of_its_file(tmp_path: Path, monkeypatch) -> None:
    from fundtrail.analysis import risk

    parsed: list[Path] = []
    real = risk._parse_catalogue

    def counted(path: Path) -> list[dict[str, Any]]:
        parsed.append(Path(path))
        return real(path)

    monkeypatch.setattr(risk, "_parse_catalogue", counted)
    home_file = tmp_path / "indicators.yaml"
    for margin in (0.2, 0.25):  # a rewritten home catalogue is read again ...
        home_file.write_text(yaml.safe_dump({"indicators": [
            {"id": "structuring", "parameters": {"thresholds": {"btc": 1_100_000}, "margin": margin}}]}))
        for _ in range(3):  # ... and only then
            assert risk.load_catalogue(home=tmp_path)["structuring"].parameters["margin"] == margin
    assert parsed.count(home_file) == 2


def test_the_dashboard_tags_a_document_with_the_generation_read_before_computing_it(monkeypatch: Any) -> None:
    """A write landing while the address page computes a document: the document is not served as newer."""
    from contextlib import nullcontext
    from types import SimpleNamespace

    from fundtrail.api import pages

    clock, probe = Clock(), Probe()
    cache = DocumentCache(size=10, seconds=0.5, generation=probe, clock=clock)

    def computed_during_a_write(store: Any, home: Any, chain: str, address: str) -> dict[str, Any]:
        probe.value = 2  # another process commits while this document is computed ...
        clock.now += 1
        cache.current()  # ... and another request of this worker sees the new generation
        return {"address": address, "chain": chain}

    monkeypatch.setattr(pages, "address_document", computed_during_a_write)
    state = SimpleNamespace(address_cache=cache, home=Path("."),
                            chain=SimpleNamespace(store=lambda: nullcontext(None)))
    assert pages._address(state, "btc", "1Addr")["address"] == "1Addr"
    assert cache.get(("btc", "1Addr")) is None  # computed from generation 1: recomputed for generation 2
    assert cache.get(("btc", "1Addr"), 1) is not None
