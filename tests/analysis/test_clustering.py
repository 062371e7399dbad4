"""Address clustering on small hand-written chains, the union engine's invariants, and the CLI."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fundtrail.analysis.clustering import cluster_addresses, cluster_of, describe_cluster, union_groups
from fundtrail.domain.records import AccountBatch, BlockRecord
from fundtrail.store import ChainStore
from fundtrail.testing.utxo import UtxoChain


def clusters(store: ChainStore, chain: str = "btc") -> dict[str, tuple[str, str]]:
    """address -> (address naming its cluster, reason)."""
    rows = store.query("""SELECT a.address, n.address, c.reason FROM clusters c
                          JOIN addresses a ON a.chain = c.chain AND a.id = c.address_id
                          JOIN addresses n ON n.chain = c.chain AND n.id = c.cluster_id
                          WHERE c.chain = ?""", [chain])
    return {a: (n, r) for a, n, r in rows}


def groups(store: ChainStore) -> set[frozenset[str]]:
    by: dict[str, set[str]] = {}
    for a, (n, _) in clusters(store).items():
        by.setdefault(n, set()).add(a)
    return {frozenset(g) for g in by.values()}


def wallet_chain() -> UtxoChain:
    """Alice spends a1+a2 together, then her change a3 with a4 and a2's second coin: a1-a4 are one wallet.

    Bob spends b1+b2.
    Carol only receives. A Whirlpool-like mix spends alice's a5 with m1-m4 (others' coins): no link.
    Expected clusters: {a1, a2, a3, a4}, {b1, b2}, and singletons carol, a5, m1-m4, o1-o5, shop.
    """
    c = UtxoChain()
    cb = c.coinbase("cb", [("a1", 50_000), ("a2", 30_000), ("b1", 20_000), ("b2", 20_000), ("a4", 10_000),
                           ("a5", 1_000_500)] + [(f"m{i}", 1_000_400) for i in range(1, 5)] + [("a2", 7_000)])
    c.next_block()
    t1 = c.tx("t1", [cb.out(0), cb.out(1)], [("carol", 61_000), ("a3", 18_000)])
    c.tx("t2", [t1.out(1), cb.out(4), cb.out(10)], [("shop", 34_000)])
    c.tx("t3", [cb.out(2), cb.out(3)], [("carol", 39_000)])
    c.tx("mix", [cb.out(5)] + [cb.out(6 + i) for i in range(4)], [(f"o{i}", 1_000_000) for i in range(1, 6)])
    return c


def test_co_spent_addresses_form_one_cluster_named_by_the_smallest_id(store: ChainStore) -> None:
    wallet_chain().write(store)
    report = cluster_addresses(store, "btc")
    assert groups(store) == {frozenset({"a1", "a2", "a3", "a4"}), frozenset({"b1", "b2"})} | {
        frozenset({x}) for x in ("carol", "shop", "a5", "m1", "m2", "m3", "m4", "o1", "o2", "o3", "o4", "o5")}
    found = clusters(store)
    # ids are interned in address order within a batch, so a1 names alice's cluster
    assert found["a3"] == ("a1", "co-spend") and found["b2"] == ("b1", "co-spend")
    assert found["carol"] == ("carol", "singleton")
    assert (report.addresses, report.clusters, report.multi_clusters) == (18, 14, 2)
    # t1, t2 (alice) and t3 (bob) link addresses; the mix does not
    assert (report.largest_cluster_size, report.linking_txs, report.coinjoins_excluded) == (4, 3, 1)
    a1 = store.address_id("btc", "a1")
    assert report.largest_cluster_id == a1
    assert cluster_of(store, "btc", [store.address_id("btc", "a4")]) == {store.address_id("btc", "a4"): a1}


def test_coinjoin_inputs_are_not_linked(store: ChainStore) -> None:
    wallet_chain().write(store)
    cluster_addresses(store, "btc")
    found = clusters(store)
    # without the mix exclusion a5 and m1-m4 would be one cluster
    assert {found[x][0] for x in ("a5", "m1", "m2", "m3", "m4")} == {"a5", "m1", "m2", "m3", "m4"}


def test_with_change_joins_confident_change_outputs_to_the_inputs_cluster(store: ChainStore) -> None:
    # alice pays bob (an address seen before) from legacy a1, with change to a fresh legacy address:
    # one-time change (0.7) and address-type match (0.6) combine to 1 - 0.3 * 0.4 = 0.88 >= 0.8, so
    # achange joins a1's cluster; both are linked only by change
    c = UtxoChain()
    cb = c.coinbase("cb", [("a1", 100_000, "p2pkh"), ("bob", 1, "p2wpkh")])
    c.next_block()
    c.tx("pay", [cb.out(0)], [("bob", 61_234, "p2wpkh"), ("achange", 38_111, "p2pkh")])
    c.write(store)
    plain = cluster_addresses(store, "btc")
    assert clusters(store)["achange"] == ("achange", "singleton") and plain.change_links == 0
    report = cluster_addresses(store, "btc", with_change=True)
    assert clusters(store)["achange"] == ("a1", "change")
    assert clusters(store)["a1"] == ("a1", "change")
    assert report.change_links == 1 and report.with_change
    # a stricter threshold leaves it out
    cluster_addresses(store, "btc", with_change=True, change_threshold=0.9)
    assert clusters(store)["achange"] == ("achange", "singleton")


def super_chain() -> UtxoChain:
    """Two wallets of three addresses each (x1-x3, y1-y3), then one transaction spending x1 with y1.

    With ``large_cluster=3`` the last transaction ``bridge`` merges two clusters of 3: a super-merge.
    """
    c = UtxoChain()
    wallets = [(n, 10_000) for n in ("x1", "x2", "x3", "y1", "y2", "y3")]
    cb = c.coinbase("cb", [*wallets, ("x1", 5), ("y1", 5)])
    c.next_block()
    c.tx("wx", [cb.out(0), cb.out(1), cb.out(2)], [("x1", 29_000)])
    c.tx("wy", [cb.out(3), cb.out(4), cb.out(5)], [("y1", 29_000)])
    c.next_block()
    c.tx("bridge", [cb.out(6), cb.out(7)], [("z", 9)])
    return c


def test_merges_of_two_large_clusters_are_recorded_with_their_transaction(store: ChainStore) -> None:
    super_chain().write(store)
    report = cluster_addresses(store, "btc", large_cluster=3)
    assert [(m.txid, m.left_size, m.right_size, m.merged_size) for m in report.super_merges] == [
        ("bridge", 3, 3, 6)]
    assert store.query("SELECT chain, txid, left_size, right_size, merged_size FROM cluster_merges") == [
        ("btc", "bridge", 3, 3, 6)]
    assert len(groups(store)) == 2  # {x1..y3}, {z}
    # below the threshold nothing is recorded
    assert cluster_addresses(store, "btc", large_cluster=4).super_merges == []
    assert store.query("SELECT count(*) FROM cluster_merges")[0][0] == 0


def test_blocking_super_merges_keeps_the_two_clusters_apart(store: ChainStore) -> None:
    super_chain().write(store)
    report = cluster_addresses(store, "btc", large_cluster=3, block_super_merges=True)
    assert [(m.txid, m.blocked) for m in report.super_merges] == [("bridge", True)]
    assert groups(store) == {frozenset({"x1", "x2", "x3"}), frozenset({"y1", "y2", "y3"}), frozenset({"z"})}


def test_account_chain_addresses_are_their_own_clusters(store: ChainStore) -> None:
    # the account model has no co-spend: alice sending twice links nobody
    a, b, c = ("0x" + ch * 40 for ch in "abc")
    batch = AccountBatch(chain="eth", blocks=[BlockRecord("eth", 1, "0x01", None, 1_600_000_000, 2)])
    for i, to in enumerate((b, c)):
        batch.add_tx(f"0x{i}", 1, 1_600_000_000, i, fee=21_000, status=True)
        batch.add_transfer(f"0x{i}", 1, 1_600_000_000, 0, "native", "native", a, to, 5)
    store.write_batch(batch)
    report = cluster_addresses(store, "eth")
    assert (report.addresses, report.clusters) == (3, 3)
    assert {r for _, r in clusters(store, "eth").values()} == {"singleton"}


def test_reclustering_replaces_the_chains_rows_only(store: ChainStore) -> None:
    wallet_chain().write(store)
    other = UtxoChain(chain="ltc")
    cb = other.coinbase("lcb", [("l1", 5), ("l2", 5)])
    other.next_block()
    other.tx("lt", [cb.out(0), cb.out(1)], [("l3", 9)])
    other.write(store)
    cluster_addresses(store, "ltc")
    cluster_addresses(store, "btc")
    first = store.query("SELECT * FROM clusters ORDER BY ALL")
    cluster_addresses(store, "btc")
    assert store.query("SELECT * FROM clusters ORDER BY ALL") == first
    assert store.query("SELECT chain, count(*) FROM clusters GROUP BY chain ORDER BY chain") == [
        ("btc", 18), ("ltc", 3)]


# ------------------------------------------------------------------ the union engine


def reference(n: int, groups_: list[list[int]], large: int, block: bool) -> tuple[list[int], list[tuple]]:
    """A textbook union-find, group by group, with the same merge recording as the engine."""
    parent = list(range(n))
    size = [1] * n

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    merges = []
    for g, members in enumerate(groups_):
        roots = sorted({find(x) for x in members}, key=lambda r: (-size[r], r))
        if len(roots) < 2:
            continue
        acc, found = size[roots[0]], []
        for r in roots[1:]:
            if acc >= large and size[r] >= large:
                found.append((g, acc, size[r]))
            acc += size[r]
        merges += found
        if block and found:
            continue
        for r in roots[1:]:
            parent[r] = roots[0]
        size[roots[0]] = acc
    labels = [find(x) for x in range(n)]
    smallest: dict[int, int] = {}
    for x in range(n):
        smallest.setdefault(labels[x], x)
    return [smallest[labels[x]] for x in range(n)], merges


def csr(groups_: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.cumsum([0] + [len(g) for g in groups_])
    members = np.asarray([x for g in groups_ for x in g], dtype=np.int64)
    return ptr, members


def normalised(labels: np.ndarray) -> list[int]:
    first: dict[int, int] = {}
    return [first.setdefault(int(r), x) for x, r in enumerate(labels)]


group_lists = st.integers(1, 40).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.lists(st.integers(0, n - 1), min_size=1, max_size=5), max_size=40)))


@settings(max_examples=150)
@given(group_lists, st.integers(1, 6), st.booleans(), st.integers(1, 8))
def test_engine_matches_a_textbook_union_find_including_super_merges(data, large, block, chunk) -> None:
    n, groups_ = data
    ptr, members = csr(groups_)
    result = union_groups(n, ptr, members, large=large, block_super_merges=block, chunk_edges=chunk)
    labels, merges = reference(n, groups_, large, block)
    assert normalised(result.labels) == labels
    assert [(m.group, m.left_size, m.right_size) for m in result.merges] == merges
    assert all(m.blocked == block for m in result.merges)


@settings(max_examples=100)
@given(group_lists, st.randoms())
def test_clusters_are_a_partition_that_does_not_depend_on_order(data, rnd) -> None:
    n, groups_ = data
    labels = normalised(union_groups(n, *csr(groups_), large=10**9, chunk_edges=2).labels)
    # a partition: every node in exactly one cluster, and every group inside one cluster
    assert len(labels) == n and all(len({labels[x] for x in g}) == 1 for g in groups_)
    shuffled = [rnd.sample(g, len(g)) for g in groups_]
    rnd.shuffle(shuffled)
    assert normalised(union_groups(n, *csr(shuffled), large=10**9, chunk_edges=3).labels) == labels


# ------------------------------------------------------------------ CLI


def test_cluster_cli_computes_and_shows_a_cluster_page_by_page(cli, home) -> None:
    with ChainStore.open_home(home) as store:
        wallet_chain().write(store)
    result = cli("cluster", "--chain", "btc", "--home", str(home), "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["patterns"]["coinjoins"] == 1
    assert doc["clustering"]["largest_cluster"]["size"] == 4 and doc["clustering"]["coinjoins_excluded"] == 1
    shown = cli("cluster", "show", "a3", "--chain", "btc", "--limit", "2", "--offset", "1",
                "--home", str(home), "--format", "json")
    assert shown.exit_code == 0, shown.output
    page = json.loads(shown.stdout)
    assert (page["cluster_address"], page["size"], page["reasons"]["co-spend"]) == ("a1", 4, 4)
    # members by id: a1, a2, a3, a4; the page skips a1 and stops after two
    assert [m["address"] for m in page["members"]] == ["a2", "a3"]
    human = cli("cluster", "show", "a3", "--chain", "btc", "--home", str(home))
    assert human.exit_code == 0 and "a1" in human.stdout
    missing = cli("cluster", "show", "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", "--chain", "btc",
                  "--home", str(home))
    assert missing.exit_code == 2 and "not found" in missing.stderr


def test_describe_cluster_before_clustering_says_how_to_cluster(store: ChainStore) -> None:
    wallet_chain().write(store)
    try:
        describe_cluster(store, "btc", "a1")
    except LookupError as error:
        assert "fundtrail cluster --chain btc" in str(error)
    else:
        raise AssertionError("expected NotFoundError")


def test_small_large_cluster_threshold_on_a_generated_world(tmp_path, store: ChainStore) -> None:
    # A generated world has components far larger than 3 addresses: they are replayed and their labels
    # numbered past the node count, which naming clusters by their smallest member must take.
    from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
    from fundtrail.scenarios.world import WorldConfig, generate_world
    from fundtrail.store.ingest import ingest_batches

    generate_world(WorldConfig.for_size(2_000, 3), tmp_path / "world")
    ingest_batches(store, "btc", read_bitcoin_etl(sorted((tmp_path / "world").glob("transactions.json*")),
                                                  "btc"))
    plain = cluster_addresses(store, "btc")
    before = groups(store)
    report = cluster_addresses(store, "btc", large_cluster=3)
    assert report.super_merges, "the threshold is low enough to see merges of two large clusters"
    assert (report.clusters, report.largest_cluster_size) == (plain.clusters, plain.largest_cluster_size)
    assert groups(store) == before
