"""CoinJoin detection on a small hand-written chain: tx_patterns rows, mixer interactions, the CLI."""

from __future__ import annotations

import json

from fundtrail.analysis.coinjoin import (
    coinjoin_txids,
    detect_patterns,
    ensure_patterns,
    list_patterns,
    mixer_interactions,
    patterns_current,
)
from fundtrail.domain.patterns import PatternParams
from fundtrail.domain.records import AccountBatch, BlockRecord
from fundtrail.store import ChainStore
from fundtrail.testing.utxo import UtxoChain


def mixing_chain() -> UtxoChain:
    """alice enters Whirlpool through a Tx0, her premix is mixed with four others; bob pays carol.

    Expected: ``tx0`` is a coinjoin-premix (whirlpool-tx0), ``mix`` a coinjoin (whirlpool-mix and, with
    five equal outputs from five inputs, generic-coinjoin), ``pay`` nothing.
    """
    c = UtxoChain()
    peers = [(f"peer{i}", 1_000_300) for i in range(4)]
    cb = c.coinbase("cb", [("alice", 5_600_000), ("bob", 700_000), *peers])
    c.next_block()
    premixes = [(f"alice-pre{i}", 1_000_450) for i in range(5)]
    c.tx("tx0", [cb.out(0)], [(None, 0), ("samourai-fee", 42_500), *premixes, ("alice-change", 549_000)])
    c.tx("pay", [cb.out(1)], [("carol", 500_000), ("bob2", 199_000)])
    c.next_block()
    c.tx("mix", [("tx0", 2)] + [("cb", 2 + i) for i in range(4)], [(f"post{i}", 1_000_000) for i in range(5)])
    return c


def test_detects_whirlpool_tx0_and_mix_with_rule_and_params(store: ChainStore) -> None:
    mixing_chain().write(store)
    report = detect_patterns(store, "btc")
    assert (report.coinjoins, report.premixes) == (1, 1)
    rows = {(r["txid"], r["rule"]): r for r in list_patterns(store, "btc")}
    assert set(rows) == {("tx0", "whirlpool-tx0"), ("mix", "whirlpool-mix"), ("mix", "generic-coinjoin")}
    assert rows[("tx0", "whirlpool-tx0")]["pattern"] == "coinjoin-premix"
    assert rows[("tx0", "whirlpool-tx0")]["params"]["premix_outputs"] == 5
    assert rows[("mix", "whirlpool-mix")]["params"] == {"pool": 1_000_000, "inputs": 5, "outputs": 5}
    assert rows[("mix", "whirlpool-mix")]["height"] == 3
    # the params column is JSON in the store
    (params,) = store.query("SELECT params->>'pool' FROM tx_patterns WHERE rule = 'whirlpool-mix'")[0]
    assert params == "1000000"
    assert coinjoin_txids(store, "btc") == {"mix"}
    assert [r["txid"] for r in list_patterns(store, "btc", pattern="coinjoin-premix")] == ["tx0"]


def test_a_tx0_with_three_premixes_is_stored_as_a_premix_only(store: ChainStore) -> None:
    # dave enters the 0.01 BTC pool with three premixes from three coins at two addresses: OP_RETURN,
    # the coordinator's 50,000 sat fee, three premixes of 0.01 BTC + 1,166 sat, his change. The
    # JoinMarket shape (3 equal outputs, 2 others, 3 inputs) must not make it a mix.
    c = UtxoChain()
    cb = c.coinbase("cb", [("dave1", 769_856), ("dave2", 21_000), ("dave2", 2_535_230)])
    c.next_block()
    c.tx("tx0", [cb.out(0), cb.out(1), cb.out(2)],
         [(None, 0), ("fee", 50_000), ("dave3", 270_621), *[(f"pre{i}", 1_001_166) for i in range(3)]])
    c.write(store)
    report = detect_patterns(store, "btc")
    assert (report.coinjoins, report.premixes) == (0, 1)
    assert [(r["txid"], r["rule"]) for r in list_patterns(store, "btc")] == [("tx0", "whirlpool-tx0")]
    assert coinjoin_txids(store, "btc") == set()


def test_detection_replaces_the_chains_rows_and_records_that_it_is_current(store: ChainStore) -> None:
    mixing_chain().write(store)
    assert not patterns_current(store, "btc")
    detect_patterns(store, "btc")
    detect_patterns(store, "btc")  # twice: same rows, not duplicates
    assert store.query("SELECT count(*) FROM tx_patterns")[0][0] == 3
    assert patterns_current(store, "btc")
    assert ensure_patterns(store, "btc") is None  # nothing changed: not run again
    # stricter parameters replace the rows: a 6-equal-output minimum drops the generic match
    detect_patterns(store, "btc", PatternParams(generic_min_equal=6))
    assert store.query("SELECT count(*) FROM tx_patterns WHERE rule = 'generic-coinjoin'")[0][0] == 0
    # a new block makes the detection stale
    more = UtxoChain(start_height=4)
    more.coinbase("cb4", [("dave", 1)])
    more.write(store)
    assert not patterns_current(store, "btc")


def test_detection_leaves_other_chains_alone(store: ChainStore) -> None:
    mixing_chain().write(store)
    other = UtxoChain(chain="ltc")
    other.coinbase("lcb", [("x", 1)])
    other.write(store)
    detect_patterns(store, "btc")
    detect_patterns(store, "ltc")
    assert store.query("SELECT DISTINCT chain FROM tx_patterns") == [("btc",)]


def test_account_chain_has_no_utxo_patterns(store: ChainStore) -> None:
    batch = AccountBatch(chain="eth", blocks=[BlockRecord("eth", 1, "0x01", None, 1_600_000_000, 1)])
    batch.add_tx("0xaa", 1, 1_600_000_000, 0, fee=21_000, status=True)
    batch.add_transfer("0xaa", 1, 1_600_000_000, 0, "native", "native", "0x" + "1" * 40, "0x" + "2" * 40, 5)
    store.write_batch(batch)
    report = detect_patterns(store, "eth")
    assert (report.coinjoins, report.candidates) == (0, 0)


def test_mixer_interactions_name_tx_pattern_direction_and_value(store: ChainStore) -> None:
    mixing_chain().write(store)
    detect_patterns(store, "btc")
    ids = {a: store.address_id("btc", a) for a in ("alice", "alice-pre0", "post3", "carol")}
    found = mixer_interactions(store, "btc", ids.values())
    seen = {(m.txid, m.rule, m.direction, m.address_id, m.value) for m in found}
    # alice funded the Tx0 with 5,600,000 sat; her first premix (alice-pre0, output 2) received
    # 1,000,450 from it and spent it into the mix; post3 received 1,000,000 from the mix; carol never
    # touched a mixer
    assert seen == {
        ("tx0", "whirlpool-tx0", "in", ids["alice"], 5_600_000),
        ("tx0", "whirlpool-tx0", "out", ids["alice-pre0"], 1_000_450),
        ("mix", "whirlpool-mix", "in", ids["alice-pre0"], 1_000_450),
        ("mix", "generic-coinjoin", "in", ids["alice-pre0"], 1_000_450),
        ("mix", "whirlpool-mix", "out", ids["post3"], 1_000_000),
        ("mix", "generic-coinjoin", "out", ids["post3"], 1_000_000),
    }
    assert [m.height for m in found] == sorted(m.height for m in found)
    assert mixer_interactions(store, "btc", [ids["carol"]]) == []
    assert mixer_interactions(store, "btc", []) == []


def test_patterns_cli_lists_detected_transactions_as_json(cli, home) -> None:
    with ChainStore.open_home(home) as store:
        mixing_chain().write(store)
    result = cli("patterns", "--chain", "btc", "--pattern", "coinjoin", "--home", str(home),
                 "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["pattern"] == "coinjoin"
    assert {(t["txid"], t["rule"]) for t in doc["transactions"]} == {("mix", "whirlpool-mix"),
                                                                     ("mix", "generic-coinjoin")}
    bad = cli("patterns", "--chain", "nochain", "--home", str(home))
    assert bad.exit_code == 2 and "unknown chain" in bad.stderr
