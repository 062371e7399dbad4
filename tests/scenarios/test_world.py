"""Generated worlds: determinism, ledger rules, valid addresses, and ground truth that matches the chain."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
from fundtrail.domain.addresses import is_valid_address
from fundtrail.domain.scripts import classify_script
from fundtrail.errors import InputError
from fundtrail.intel.tagpacks import import_actorpack, import_tagpack
from fundtrail.scenarios.groundtruth import (
    CoinJoinKind,
    EntityKind,
    TypologyKind,
    load_truth,
    read_address_owners,
)
from fundtrail.scenarios.world import SUBSIDY, WorldConfig, generate_world, parse_size
from fundtrail.store import ChainStore
from fundtrail.store.ingest import ingest_batches

SIZE = 1200
SEED = 13

ETL_TYPES = {
    "pubkeyhash": "p2pkh",
    "scripthash": "p2sh",
    "witness_v0_keyhash": "p2wpkh",
    "witness_v1_taproot": "p2tr",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world")
    generate_world(WorldConfig.for_size(SIZE, SEED), out)
    return out


@pytest.fixture(scope="module")
def rows(world: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (world / "transactions.json").read_bytes().splitlines()]


@pytest.fixture(scope="module")
def by_txid(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["hash"]: r for r in rows}


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    for name, seed, compress in (
        ("a", 5, False),
        ("b", 5, False),
        ("c", 6, False),
        ("d", 5, True),
        ("e", 5, True),
    ):
        generate_world(WorldConfig.for_size(400, seed, compress=compress), tmp_path / name)
    a, b, c = (_digests(tmp_path / n) for n in "abc")
    assert len(a) == 9
    assert a == b
    assert a["transactions.json"] != c["transactions.json"]
    assert a["groundtruth/truth.json"] != c["groundtruth/truth.json"]
    assert _digests(tmp_path / "d") == _digests(tmp_path / "e")
    assert "transactions.json.gz" in _digests(tmp_path / "d")


def test_bitcoin_etl_rows_have_the_exporters_fields(rows: list[dict[str, Any]]) -> None:
    expected = (
        "type",
        "hash",
        "size",
        "virtual_size",
        "version",
        "lock_time",
        "block_number",
        "block_hash",
        "block_timestamp",
        "is_coinbase",
        "index",
        "inputs",
        "outputs",
        "input_count",
        "output_count",
        "input_value",
        "output_value",
        "fee",
        "item_id",
    )
    inputs = (
        "index",
        "spent_transaction_hash",
        "spent_output_index",
        "script_asm",
        "script_hex",
        "sequence",
        "required_signatures",
        "type",
        "addresses",
        "value",
    )
    outputs = ("index", "script_asm", "script_hex", "required_signatures", "type", "addresses", "value")
    for r in rows:
        assert tuple(r) == expected
        assert r["item_id"] == "transaction_" + r["hash"]
        assert all(tuple(i) == inputs for i in r["inputs"])
        assert all(tuple(o) == outputs for o in r["outputs"])
        assert r["input_count"] == len(r["inputs"]) and r["output_count"] == len(r["outputs"])
        assert 0 < r["virtual_size"] <= r["size"]
    assert len({r["hash"] for r in rows}) == len(rows)


def test_outputs_never_exceed_inputs_and_coinbase_collects_subsidy_and_fees(
    rows: list[dict[str, Any]],
) -> None:
    fees: Counter[int] = Counter()
    coinbase: dict[int, int] = {}
    blocks: dict[int, list[int]] = {}
    for r in rows:
        blocks.setdefault(r["block_number"], []).append(r["index"])
        if r["is_coinbase"]:
            assert r["index"] == 0 and r["inputs"] == []
            coinbase[r["block_number"]] = r["output_value"]
            continue
        total_in = sum(i["value"] for i in r["inputs"])
        total_out = sum(o["value"] for o in r["outputs"])
        assert r["input_value"] == total_in and r["output_value"] == total_out
        assert 0 <= total_out <= total_in
        assert r["fee"] == total_in - total_out
        fees[r["block_number"]] += r["fee"]
    assert set(coinbase) == set(blocks)
    for height, value in coinbase.items():
        assert value == SUBSIDY + fees[height]
        assert blocks[height] == list(range(len(blocks[height])))


def test_every_input_spends_an_earlier_unspent_output_exactly_once(rows: list[dict[str, Any]]) -> None:
    unspent: dict[tuple[str, int], tuple[int, int, str, bool]] = {}
    for r in rows:
        for i in r["inputs"]:
            key = (i["spent_transaction_hash"], i["spent_output_index"])
            assert key in unspent, f"{r['hash']} spends {key}, unknown or already spent"
            value, height, address, coinbase = unspent.pop(key)
            assert i["value"] == value and i["addresses"] == [address]
            assert height < r["block_number"]
            assert not coinbase or r["block_number"] - height >= 100
        for o in r["outputs"]:
            unspent[(r["hash"], o["index"])] = (
                o["value"],
                r["block_number"],
                o["addresses"][0],
                r["is_coinbase"],
            )


def test_addresses_are_valid_and_derive_from_their_scripts(rows: list[dict[str, Any]]) -> None:
    kinds: Counter[str] = Counter()
    for r in rows:
        for o in r["outputs"]:
            script_type, address = classify_script("btc", bytes.fromhex(o["script_hex"]))
            if o["type"] == "nonstandard":
                assert script_type.value == "nulldata" and address is None
                expected = "nonstandard" + hashlib.sha256(bytes.fromhex(o["script_hex"])).hexdigest()[:40]
                assert o["addresses"] == [expected] and o["value"] == 0 or r["is_coinbase"] is False
                continue
            assert [address] == o["addresses"]
            assert script_type.value == ETL_TYPES[o["type"]]
            assert is_valid_address("btc", address)
            kinds[script_type.value] += 1
    assert set(kinds) == {"p2pkh", "p2sh", "p2wpkh", "p2tr"}


def test_the_bitcoin_etl_reader_ingests_the_world(world: Path, rows: list[dict[str, Any]]) -> None:
    with ChainStore(":memory:") as store:
        report = ingest_batches(store, "btc", read_bitcoin_etl([world / "transactions.json"], "btc"))
        assert report.txs_written == len(rows)
        ((n_outputs, total),) = store.query("SELECT count(*), sum(value) FROM outputs WHERE chain = 'btc'")
        assert n_outputs == sum(len(r["outputs"]) for r in rows)
        assert int(total) == sum(o["value"] for r in rows for o in r["outputs"])
        missing = store.query(
            "SELECT count(*) FROM inputs WHERE chain = 'btc' AND (value IS NULL OR address IS NULL)"
        )
        assert missing == [(0,)]


def test_every_address_on_chain_has_a_known_owner(world: Path, rows: list[dict[str, Any]]) -> None:
    owners = {a: (e, k) for a, e, k, _ in read_address_owners(world)}
    entities = {e.id: e for e in load_truth(world).entities}
    for r in rows:
        for o in r["outputs"]:
            if o["type"] != "nonstandard":
                entity, kind = owners[o["addresses"][0]]
                assert entities[entity].kind.value == kind


def test_each_cash_out_receives_from_the_laundering_path(
    world: Path, by_txid: dict[str, dict[str, Any]]
) -> None:
    truth = load_truth(world)
    assert {t.kind for t in truth.typologies} == {TypologyKind.RANSOMWARE, TypologyKind.THEFT}
    for t in truth.typologies:
        assert t.complete and t.cash_outs
        path = {p.txid for p in t.path}
        for c in t.cash_outs:
            tx = by_txid[c.txid]
            assert c.txid in path
            assert any(o["addresses"] == [c.address] and o["value"] == c.value for o in tx["outputs"])
            assert all(i["spent_transaction_hash"] in path for i in tx["inputs"])
            assert truth.entity(c.exchange).kind is EntityKind.EXCHANGE
        for v in t.victims:
            assert any(o["addresses"] == [v.address] for o in by_txid[v.txid]["outputs"])
        assert set(t.seed_addresses) >= {v.address for v in t.victims}


def test_ransomware_cashes_out_at_two_exchanges_in_two_jurisdictions(world: Path) -> None:
    for t in load_truth(world).typologies_of(TypologyKind.RANSOMWARE):
        assert len({c.exchange for c in t.cash_outs}) >= 2
        assert len({c.jurisdiction for c in t.cash_outs}) >= 2
        assert {"consolidation", "split", "peel", "cash-out"} <= {p.step for p in t.path}
        assert 0 < t.cashed_out


def test_coinjoins_have_the_structure_claimed(world: Path, by_txid: dict[str, dict[str, Any]]) -> None:
    truth = load_truth(world)
    coordinators = {a for a, _, kind, role in read_address_owners(world) if role == "coordinator"}
    assert all(truth.coinjoins[k] for k in CoinJoinKind)
    for txid in truth.coinjoins[CoinJoinKind.WASABI]:
        tx = by_txid[txid]
        value, equal = Counter(o["value"] for o in tx["outputs"]).most_common(1)[0]
        assert 9_900_000 <= value <= 10_100_000 and equal >= 10
        assert len(tx["inputs"]) >= equal
        assert any(o["addresses"][0] in coordinators for o in tx["outputs"])
    for txid in truth.coinjoins[CoinJoinKind.WHIRLPOOL_MIX]:
        tx = by_txid[txid]
        values = {o["value"] for o in tx["outputs"]}
        assert len(tx["inputs"]) == 5 and len(tx["outputs"]) == 5 and len(values) == 1
        pool = values.pop()
        assert pool in (1_000_000, 5_000_000)
        assert all(i["value"] >= pool for i in tx["inputs"])
    for txid in truth.coinjoins[CoinJoinKind.WHIRLPOOL_TX0]:
        tx = by_txid[txid]
        assert any(o["script_hex"].startswith("6a") for o in tx["outputs"])
        assert any(o["addresses"][0] in coordinators for o in tx["outputs"])
        premix = [
            o["value"]
            for o in tx["outputs"]
            if any(p < o["value"] <= p + max(p // 50, 20_000) for p in (1_000_000, 5_000_000))
        ]
        assert premix and len(set(premix)) == 1


def test_payjoins_spend_coins_of_a_payer_and_a_merchant(
    world: Path, by_txid: dict[str, dict[str, Any]]
) -> None:
    truth = load_truth(world)
    owners = {a: e for a, e, _, _ in read_address_owners(world)}
    kinds = {e.id: e.kind for e in truth.entities}
    assert truth.payjoins
    for txid in truth.payjoins:
        tx = by_txid[txid]
        spenders = {owners[i["addresses"][0]] for i in tx["inputs"]}
        assert len(spenders) == 2
        assert {kinds[e] for e in spenders} == {EntityKind.USER, EntityKind.MERCHANT}
        assert len(tx["outputs"]) == 2


def test_peel_chains_spend_their_own_change(world: Path, by_txid: dict[str, dict[str, Any]]) -> None:
    truth = load_truth(world)
    chains = truth.peel_chains
    assert {c.purpose for c in chains} >= {"withdrawals", "ransomware-1 cash-out"}
    for t in truth.typologies_of(TypologyKind.RANSOMWARE):
        peel = [c for c in chains if c.purpose == f"{t.id} cash-out"][0]
        assert [p.txid for p in t.path if p.step == "peel"] == list(peel.txids)
    for chain in chains:
        for prev, nxt in zip(chain.txids, chain.txids[1:], strict=False):
            tx = by_txid[nxt]
            assert len(tx["inputs"]) == 1 and tx["inputs"][0]["spent_transaction_hash"] == prev
            assert len(tx["outputs"]) == 2


def test_tagpacks_import_with_jurisdictions(world: Path) -> None:
    with ChainStore(":memory:") as store:
        import_actorpack(store, world / "tagpacks" / "actors.actorpack.yaml")
        for name in ("exchanges", "services", "mixers", "reports"):
            result = import_tagpack(store, world / "tagpacks" / f"{name}.yaml")
            assert result.tags > 0 and not result.invalid
        rows = store.query(
            "SELECT DISTINCT label, jurisdiction FROM tags WHERE category = 'exchange' "
            "AND label LIKE '%hot wallet'"
        )
    truth = load_truth(world)
    exchanges = {e.name: e.jurisdiction for e in truth.entities if e.kind is EntityKind.EXCHANGE}
    assert {label.removesuffix(" hot wallet"): j for label, j in rows} == exchanges


def test_sizes() -> None:
    assert parse_size("medium") == ("medium", 25_000)
    assert parse_size("5000") == ("5000", 5000)
    for bad in ("huge", "12", "-4"):
        with pytest.raises(InputError):
            parse_size(bad)
    with pytest.raises(InputError):
        WorldConfig.for_size("small", -1)
    with pytest.raises(InputError):
        WorldConfig.for_size("small", 1, chain="eth")
    assert WorldConfig.for_size("small", 1, chain="btc-regtest").chain == "btc-regtest"
