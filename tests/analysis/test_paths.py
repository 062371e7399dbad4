"""Shortest value-carrying paths on a UTXO chain (account-chain paths: test_tracing_account.py).

The investigation world (as in test_tracing_utxo.py; block h at time 1_600_000_000 + 600 * h):

    fund  (h1) coinbase                                   -> THIEF 100000
    clean (h2) coinbase                                   -> BOB 50000
    mix   (h3) BOB 50000 (clean:0), THIEF 100000 (fund:0) -> CAROL 90000, DAVE 59000
    hop2  (h4) CAROL 90000 (mix:0)                        -> ERIN 60000, CAROL 29000
    exch  (h5) ERIN 60000 (hop2:0)                        -> EXCHANGE 59500

The diamond world: SAM's 1000 split to ALF 400 and BEA 500, each of whom pays TOM (390, 490).
"""

from __future__ import annotations

import hashlib
import json

import pytest

from fundtrail.analysis.paths import find_paths
from fundtrail.domain.addresses import segwit_address
from fundtrail.domain.records import BlockRecord, UtxoBatch
from fundtrail.errors import InputError, InvalidAddressError, NotFoundError
from fundtrail.store import ChainStore


def A(name: str) -> str:
    return segwit_address("btc", 0, hashlib.sha256(name.encode()).digest()[:20])


def T(name: str) -> str:
    return hashlib.sha256(("tx" + name).encode()).hexdigest()


NAME_OF = {A(n): n for n in ["thief", "bob", "carol", "dave", "erin", "exchange", "sam", "alf", "bea", "tom"]}
TX_OF = {T(n): n for n in ["fund", "clean", "mix", "hop2", "exch", "split", "pa", "pb"]}


def chain(txs: list[tuple[str, list[tuple[str, int]], list[tuple[str, int]]]]) -> UtxoBatch:
    b = UtxoBatch("btc")
    for h, (name, inputs, outputs) in enumerate(txs, 1):
        when = 1_600_000_000 + 600 * h
        b.blocks.append(BlockRecord("btc", h, f"{h:064x}", f"{h - 1:064x}", when, 1))
        b.add_tx(T(name), h, when, 0, coinbase=not inputs)
        for i, (prev, n) in enumerate(inputs):
            b.add_input(T(name), i, T(prev), n)
        for n, (who, value) in enumerate(outputs):
            b.add_output(T(name), n, A(who), value, "p2wpkh")
    return b


WORLD = [("fund", [], [("thief", 100_000)]), ("clean", [], [("bob", 50_000)]),
         ("mix", [("clean", 0), ("fund", 0)], [("carol", 90_000), ("dave", 59_000)]),
         ("hop2", [("mix", 0)], [("erin", 60_000), ("carol", 29_000)]),
         ("exch", [("hop2", 0)], [("exchange", 59_500)])]
DIAMOND = [("fund", [], [("sam", 1000)]), ("split", [("fund", 0)], [("alf", 400), ("bea", 500)]),
           ("pa", [("split", 0)], [("tom", 390)]), ("pb", [("split", 1)], [("tom", 490)])]


@pytest.fixture()
def world(store: ChainStore) -> ChainStore:
    store.write_batch(chain(WORLD))
    return store


def steps(result) -> list[list[tuple[str, int | None, str, str, int, int]]]:  # type: ignore[no-untyped-def]
    """Each path as (tx, output, from, to, value, hop)."""
    return [[(TX_OF[f.txid], f.output, NAME_OF[f.from_address], NAME_OF[f.to_address], f.value, f.hop)
             for f in path] for path in result.paths]


def test_shortest_path_from_the_thief_to_the_exchange(world: ChainStore) -> None:
    r = find_paths(world, "btc", A("thief"), A("exchange"))
    assert steps(r) == [[("mix", 0, "thief", "carol", 90_000, 1), ("hop2", 0, "carol", "erin", 60_000, 2),
                         ("exch", 0, "erin", "exchange", 59_500, 3)]]
    assert r.paths[0][0].evidence == (f"spends output {T('fund')}:0 of the source",)
    assert r.paths[0][1].evidence == (f"spends output {T('mix')}:0",)
    doc = r.to_dict()
    assert (doc["found"], doc["paths"][0]["hops"], doc["paths"][0]["value"]) == (1, 3, "59500")
    assert "tainted_value" not in doc["paths"][0]["flows"][0]


def test_shortest_only_and_other_sources(world: ChainStore) -> None:
    # THIEF -> CAROL: directly in mix (1 hop); the 2-hop way through hop2's change is not shortest
    direct = find_paths(world, "btc", A("thief"), A("carol"))
    assert steps(direct) == [[("mix", 0, "thief", "carol", 90_000, 1)]]
    assert steps(find_paths(world, "btc", A("bob"), A("dave"))) == [[("mix", 1, "bob", "dave", 59_000, 1)]]
    assert find_paths(world, "btc", A("dave"), A("erin")).paths == ()  # DAVE never spent


def test_limits_of_path_search(world: ChainStore) -> None:
    assert find_paths(world, "btc", A("thief"), A("exchange"), max_hops=2).paths == ()
    assert len(find_paths(world, "btc", A("thief"), A("exchange"), max_hops=3).paths) == 1
    # every step must carry at least min_value: the last one carries 59500
    assert find_paths(world, "btc", A("thief"), A("exchange"), min_value=59_501).paths == ()
    assert len(find_paths(world, "btc", A("thief"), A("exchange"), min_value=59_500).paths) == 1
    # CAROL (2 transactions) is a hub above degree 1: no path through her, but she can be the target
    assert find_paths(world, "btc", A("thief"), A("exchange"), hub_degree=1).paths == ()
    assert len(find_paths(world, "btc", A("thief"), A("carol"), hub_degree=1).paths) == 1
    # exch happens at h5: a window ending at h4 cuts it
    assert find_paths(world, "btc", A("thief"), A("exchange"), until=1_600_000_000 + 600 * 4).paths == ()
    assert find_paths(world, "btc", A("thief"), A("exchange"), since=1_600_000_000 + 600 * 4).paths == ()


def test_all_shortest_paths_up_to_the_limit(store: ChainStore) -> None:
    store.write_batch(chain(DIAMOND))
    r = find_paths(store, "btc", A("sam"), A("tom"))
    assert steps(r) == [[("split", 0, "sam", "alf", 400, 1), ("pa", 0, "alf", "tom", 390, 2)],
                        [("split", 1, "sam", "bea", 500, 1), ("pb", 0, "bea", "tom", 490, 2)]]
    assert len(find_paths(store, "btc", A("sam"), A("tom"), limit=1).paths) == 1
    assert json.dumps(r.to_dict()) == json.dumps(find_paths(store, "btc", A("sam"), A("tom")).to_dict())


def test_path_inputs_are_validated(world: ChainStore) -> None:
    with pytest.raises(InvalidAddressError):
        find_paths(world, "btc", "bc1qnotanaddress", A("exchange"))
    with pytest.raises(NotFoundError):
        find_paths(world, "btc", A("nobody"), A("exchange"))
    with pytest.raises(InputError):
        find_paths(world, "btc", T("mix"), A("exchange"))
    with pytest.raises(InputError):
        find_paths(world, "btc", A("thief"), A("thief"))
    with pytest.raises(InputError):
        find_paths(world, "btc", A("thief"), A("exchange"), max_steps=0)


def test_cli_path(cli, home) -> None:  # type: ignore[no-untyped-def]
    with ChainStore.open_home(home) as s:
        s.write_batch(chain(WORLD))
    out = cli("path", A("thief"), A("exchange"), "--chain", "btc", "--home", str(home), "--format", "json")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert [(f["txid"], f["value"]) for f in doc["paths"][0]["flows"]] == [
        (T("mix"), "90000"), (T("hop2"), "60000"), (T("exch"), "59500")]
    human = cli("path", A("thief"), A("exchange"), "--home", str(home))
    assert human.exit_code == 0 and "path 1: 3 owner hops, 3 steps" in human.stdout
    none = cli("path", A("thief"), A("exchange"), "--max-hops", "2", "--home", str(home))
    assert none.exit_code == 0 and "no path" in none.stdout
    bad = cli("path", "nonsense", A("exchange"), "--home", str(home))
    assert bad.exit_code == 2 and "not a valid btc address" in bad.stderr
