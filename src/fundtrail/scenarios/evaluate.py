"""Measured accuracy: run FundTrail's heuristics on generated worlds and score them against the ground truth.

For each world (seeds ``seed``, ``seed + 1``, ...) the world is generated into a temporary folder, ingested
into an in-memory chain store with its TagPacks, and analysed as an investigator would: pattern detection,
co-spend clustering (then co-spend plus change), and forward traces from each typology's seeds under every
taint policy. The scores:

* **Clustering**, pairwise over address pairs: precision is the share of address pairs put in one cluster
  that truly share an owner; recall the share of pairs sharing an owner that were put in one cluster.
  Computed from the contingency counts of (owner, cluster), never by listing pairs.
* **Change outputs**, over the transactions whose inputs all belong to one known owner and that pay
  someone else: precision is the share of the outputs taken as change (combined confidence at least
  the clustering threshold) that really return to the spender; recall the share of the outputs that
  return to the spender that were taken as change.
* **CoinJoin detection**, per kind of mix: recall is the share of the generated mixes detected as mixes,
  precision the share of transactions flagged by the kind's own rule that really are that kind.
* **Tracing**, per taint policy: the share of the cash-out deposit addresses reached by the trace and
  attributed to the right exchange (by count and by value: the value credited, at most the true amount,
  over the true amount), the same for cash-outs that did not pass a CoinJoin, and per exchange the value
  recall and precision (value the trace puts at an exchange that really went there, over all value it puts
  at exchanges).

Across worlds each score is given as mean, sample standard deviation, minimum and maximum.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fundtrail.scenarios.groundtruth import (
    CoinJoinKind,
    GroundTruth,
    Typology,
    load_truth,
    read_address_owners,
)

log = logging.getLogger(__name__)

POLICIES = ("poison", "haircut", "fifo")
TRACE_MAX_HOPS = 30


# ------------------------------------------------------------------------------------------ scores


@dataclass(frozen=True, slots=True)
class PairScores:
    """Pairwise precision and recall of a predicted partition against a true one.

    With no predicted pairs there is no false merge: precision is 1. With no true pairs there is nothing
    to find: recall is 1.
    """

    true_positive_pairs: int
    predicted_pairs: int
    true_pairs: int

    @property
    def precision(self) -> float:
        """Pairs put together that belong together, over pairs put together."""
        return self.true_positive_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        """Pairs put together that belong together, over pairs that belong together."""
        return self.true_positive_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(counts: np.ndarray) -> int:
    c = counts.astype(np.int64)
    return int((c * (c - 1) // 2).sum())


def pairwise_scores(truth: Sequence[Any] | np.ndarray, predicted: Sequence[Any] | np.ndarray) -> PairScores:
    """Pairwise scores of two labelings of the same items (item ``i`` has ``truth[i]`` and ``predicted[i]``).

    Runs in O(n log n): pairs are counted from the sizes of the true groups, of the predicted groups, and of
    their intersections (the contingency table), as ``k * (k - 1) / 2`` per group.
    """
    t = np.unique(np.asarray(truth), return_inverse=True)[1].astype(np.int64).ravel()
    p = np.unique(np.asarray(predicted), return_inverse=True)[1].astype(np.int64).ravel()
    if len(t) != len(p):
        raise ValueError(f"{len(t)} true labels but {len(p)} predicted labels")
    if len(t) == 0:
        return PairScores(0, 0, 0)
    joint = t * (int(p.max()) + 1) + p
    cells = np.unique(joint, return_counts=True)[1]
    return PairScores(_pairs(cells), _pairs(np.bincount(p)), _pairs(np.bincount(t)))


@dataclass(frozen=True, slots=True)
class SetScores:
    """Precision and recall of a set of findings against the true set (vacuous cases count as 1)."""

    true_positives: int
    found: int
    expected: int

    @property
    def precision(self) -> float:
        """Findings that are true, over findings."""
        return self.true_positives / self.found if self.found else 1.0

    @property
    def recall(self) -> float:
        """True items found, over true items."""
        return self.true_positives / self.expected if self.expected else 1.0


def set_scores(expected: Iterable[Any], found: Iterable[Any]) -> SetScores:
    """Scores of ``found`` against ``expected``."""
    e, f = set(expected), set(found)
    return SetScores(len(e & f), len(f), len(e))


# ------------------------------------------------------------------------------------------ one world


@dataclass(frozen=True)
class WorldScores:
    """The scores of one world: metric name -> value, and the counts behind them."""

    seed: int
    metrics: dict[str, float]
    counts: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "seed": self.seed,
            "metrics": {k: round(v, 6) for k, v in self.metrics.items()},
            "counts": self.counts,
            "seconds": round(self.seconds, 2),
        }


CHANGE_THRESHOLD = 0.8
"""Combined change confidence at which an output joins its inputs' cluster (the CLI's default)."""


def _cluster_labels(
    store: Any, chain: str, owners: dict[str, str]
) -> tuple[list[str], np.ndarray, list[str]]:
    rows = store.con.execute(
        "SELECT a.address, c.cluster_id FROM addresses a JOIN clusters c ON c.chain = a.chain "
        "AND c.address_id = a.id WHERE a.chain = ? ORDER BY a.id",
        [chain],
    ).fetchall()
    addresses = [a for a, _ in rows if a in owners]
    predicted = np.fromiter((c for a, c in rows if a in owners), dtype=np.int64, count=len(addresses))
    truth = [owners[a] for a in addresses]
    return truth, predicted, addresses


def clustering_metrics(
    store: Any, chain: str, owners: dict[str, str], kinds: dict[str, str], prefix: str
) -> tuple[dict[str, float], dict[str, Any]]:
    """Pairwise clustering scores of the stored clusters, overall and recall per kind of owner."""
    truth, predicted, _ = _cluster_labels(store, chain, owners)
    overall = pairwise_scores(truth, predicted)
    metrics = {
        f"{prefix}.precision": overall.precision,
        f"{prefix}.recall": overall.recall,
        f"{prefix}.f1": overall.f1,
    }
    owner_kind = np.array([kinds[e] for e in truth]) if truth else np.array([], dtype=str)
    for kind in ("exchange", "user", "ransomware", "thief"):
        mask = owner_kind == kind
        if mask.any():
            metrics[f"{prefix}.recall.{kind}"] = pairwise_scores(
                np.asarray(truth)[mask], predicted[mask]
            ).recall
    counts = {
        "addresses": len(truth),
        "true_pairs": overall.true_pairs,
        "predicted_pairs": overall.predicted_pairs,
        "true_positive_pairs": overall.true_positive_pairs,
    }
    return metrics, counts


_CHANGE_TRUTH_SQL = """
WITH spenders AS (
    SELECT i.txid, min(w.entity) AS entity
    FROM inputs i LEFT JOIN _eval_owners w ON w.address = i.address
    WHERE i.chain = $c
    GROUP BY i.txid
    HAVING count(DISTINCT w.entity) = 1 AND count(*) = count(w.entity)),
outs AS (
    SELECT o.txid, o.n, o.address_id, (w.entity IS NOT DISTINCT FROM s.entity) AS returns
    FROM outputs o JOIN spenders s USING (txid) LEFT JOIN _eval_owners w ON w.address = o.address
    WHERE o.chain = $c AND o.address IS NOT NULL),
payments AS (SELECT txid FROM outs GROUP BY txid HAVING count(*) >= 2 AND NOT bool_and(returns))
SELECT txid, n, returns FROM outs SEMI JOIN payments USING (txid)
"""


def change_metrics(
    store: Any, chain: str, owners: dict[str, str], threshold: float
) -> tuple[dict[str, float], dict[str, Any]]:
    """Precision and recall of the change outputs at ``threshold`` (see the module's notes)."""
    import pyarrow as pa

    table = pa.table({"address": list(owners), "entity": list(owners.values())})
    store.con.register("_eval_owners", table)
    try:
        rows = store.con.execute(_CHANGE_TRUTH_SQL, {"c": chain}).fetchall()
    finally:
        store.con.unregister("_eval_owners")
    taken = {
        (txid, n)
        for txid, n in store.con.execute(
            "SELECT txid, n FROM change_outputs WHERE chain = ? AND heuristic = 'combined' "
            "AND confidence >= ?",
            [chain, threshold],
        ).fetchall()
    }
    in_scope = {(txid, n) for txid, n, _ in rows}
    true_change = {(txid, n) for txid, n, returns in rows if returns}
    scores = set_scores(true_change, taken & in_scope)
    metrics = {"change.precision": scores.precision, "change.recall": scores.recall}
    counts = {
        "true_change": scores.expected,
        "taken": scores.found,
        "taken_right": scores.true_positives,
        "taken_outside_scope": len(taken - in_scope),
        "threshold": threshold,
    }
    return metrics, counts


def coinjoin_metrics(store: Any, chain: str, truth: GroundTruth) -> tuple[dict[str, float], dict[str, Any]]:
    """CoinJoin detection scores per kind, and for all mixes together."""
    rows = store.con.execute(
        "SELECT txid, pattern, rule FROM tx_patterns WHERE chain = ?", [chain]
    ).fetchall()
    by_pattern: dict[str, set[str]] = {}
    by_rule: dict[str, set[str]] = {}
    for txid, pattern, rule in rows:
        by_pattern.setdefault(pattern, set()).add(txid)
        by_rule.setdefault(rule, set()).add(txid)
    mixes = by_pattern.get("coinjoin", set())
    wasabi = set(truth.coinjoins.get(CoinJoinKind.WASABI, ()))
    whirl = set(truth.coinjoins.get(CoinJoinKind.WHIRLPOOL_MIX, ()))
    tx0 = set(truth.coinjoins.get(CoinJoinKind.WHIRLPOOL_TX0, ()))
    metrics: dict[str, float] = {}
    counts: dict[str, Any] = {}
    for name, expected, detected_as, rule in (
        ("wasabi", wasabi, mixes, "wasabi-1"),
        ("whirlpool_mix", whirl, mixes, "whirlpool-mix"),
        ("whirlpool_tx0", tx0, by_pattern.get("coinjoin-premix", set()), "whirlpool-tx0"),
    ):
        recall = set_scores(expected, detected_as)
        precision = set_scores(expected, by_rule.get(rule, set()))
        metrics[f"coinjoin.{name}.recall"] = recall.recall
        metrics[f"coinjoin.{name}.precision"] = precision.precision
        counts[name] = {
            "generated": len(expected),
            "detected": recall.true_positives,
            "flagged_by_rule": precision.found,
            "rule_true": precision.true_positives,
        }
    every = set_scores(wasabi | whirl, mixes)
    metrics["coinjoin.all.recall"] = every.recall
    metrics["coinjoin.all.precision"] = every.precision
    counts["all"] = {"generated": every.expected, "flagged": every.found, "true": every.true_positives}
    return metrics, counts


@dataclass
class _TraceTally:
    """Numerators and denominators of the tracing scores, summed over typologies."""

    deposits: int = 0
    deposits_found: int = 0
    unmixed: int = 0
    unmixed_found: int = 0
    value: int = 0
    value_found: int = 0
    exchange_value_found: int = 0
    exchange_value_traced: int = 0

    def add(self, other: _TraceTally) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def metrics(self, prefix: str) -> dict[str, float]:
        def ratio(a: int, b: int) -> float:
            return a / b if b else 1.0

        return {
            f"{prefix}.deposit_recall_count": ratio(self.deposits_found, self.deposits),
            f"{prefix}.deposit_recall_value": ratio(self.value_found, self.value),
            f"{prefix}.unmixed_deposit_recall_count": ratio(self.unmixed_found, self.unmixed),
            f"{prefix}.exchange_recall_value": ratio(self.exchange_value_found, self.value),
            f"{prefix}.exchange_precision_value": ratio(
                self.exchange_value_found, self.exchange_value_traced
            ),
        }


def score_trace(document: dict[str, Any], typology: Typology) -> _TraceTally:
    """Score one trace (``TraceResult.to_dict()``) against a typology's cash-outs."""
    at_address: dict[tuple[str, str], int] = {}
    at_exchange: dict[str, int] = {}
    for e in document["endpoints"]:
        if e.get("category") != "exchange" or not e.get("entity"):
            continue
        value = int(e["tainted_value"])
        at_exchange[e["entity"]] = at_exchange.get(e["entity"], 0) + value
        if e.get("address"):
            key = (e["address"], e["entity"])
            at_address[key] = at_address.get(key, 0) + value
    tally = _TraceTally()
    for address, c in typology.cash_out_by_address().items():
        credited = min(at_address.get((address, c.exchange_name), 0), c.value)
        tally.deposits += 1
        tally.value += c.value
        tally.value_found += credited
        tally.deposits_found += credited > 0
        mixed = any(x.is_mixed for x in typology.cash_outs if x.address == address)
        if not mixed:
            tally.unmixed += 1
            tally.unmixed_found += credited > 0
    true_at: dict[str, int] = {}
    for c in typology.cash_outs:
        true_at[c.exchange_name] = true_at.get(c.exchange_name, 0) + c.value
    tally.exchange_value_found = sum(min(v, true_at.get(name, 0)) for name, v in at_exchange.items())
    tally.exchange_value_traced = sum(at_exchange.values())
    return tally


def tracing_metrics(
    store: Any, chain: str, truth: GroundTruth, policies: Sequence[str] = POLICIES
) -> tuple[dict[str, float], dict[str, Any]]:
    """Tracing scores per policy (all typologies together, and per typology kind)."""
    from fundtrail.analysis.tracing import trace_funds

    metrics: dict[str, float] = {}
    counts: dict[str, Any] = {}
    for policy in policies:
        total = _TraceTally()
        per_kind: dict[str, _TraceTally] = {}
        for t in truth.typologies:
            if not t.seed_addresses or not t.cash_outs:
                continue
            result = trace_funds(store, chain, list(t.seed_addresses), policy=policy, max_hops=TRACE_MAX_HOPS)
            tally = score_trace(result.to_dict(), t)
            total.add(tally)
            per_kind.setdefault(t.kind.value, _TraceTally()).add(tally)
        metrics.update(total.metrics(f"tracing.{policy}"))
        for kind, tally in per_kind.items():
            metrics.update(tally.metrics(f"tracing.{policy}.{kind}"))
        counts[policy] = {
            "deposits": total.deposits,
            "found": total.deposits_found,
            "value": str(total.value),
            "value_found": str(total.value_found),
        }
    return metrics, counts


def evaluate_world(
    world_dir: Path, *, with_change: bool = True, policies: Sequence[str] = POLICIES
) -> WorldScores:
    """Score FundTrail's analysis of one generated world against its ground truth."""
    from fundtrail.analysis.clustering import cluster_addresses
    from fundtrail.analysis.coinjoin import detect_patterns
    from fundtrail.chains.bitcoin.etl import read_bitcoin_etl
    from fundtrail.intel.tagpacks import import_actorpack, import_tagpack, is_actorpack, tagpack_files
    from fundtrail.store import ChainStore
    from fundtrail.store.ingest import ingest_batches

    started = time.perf_counter()
    truth = load_truth(world_dir)
    chain = truth.chain
    owners: dict[str, str] = {}
    for address, entity, _kind, _role in read_address_owners(world_dir, truth):
        owners[address] = entity
    kinds = {e.id: e.kind.value for e in truth.entities}
    metrics: dict[str, float] = {}
    counts: dict[str, Any] = {"transactions": truth.transactions, "payjoins": len(truth.payjoins)}
    with ChainStore(":memory:") as store:
        ingest_batches(store, chain, read_bitcoin_etl(sorted(world_dir.glob("transactions.json*")), chain))
        files = tagpack_files([world_dir / "tagpacks"])
        for path in files:
            if is_actorpack(path):
                import_actorpack(store, path)
        for path in files:
            if not is_actorpack(path):
                import_tagpack(store, path)
        detect_patterns(store, chain)
        found, counts["coinjoin"] = coinjoin_metrics(store, chain, truth)
        metrics.update(found)
        cluster_addresses(store, chain)
        found, counts["clustering"] = clustering_metrics(store, chain, owners, kinds, "clustering.co_spend")
        metrics.update(found)
        found, counts["tracing"] = tracing_metrics(store, chain, truth, policies)
        metrics.update(found)
        if with_change:
            cluster_addresses(store, chain, with_change=True, change_threshold=CHANGE_THRESHOLD)
            found, counts["change"] = change_metrics(store, chain, owners, CHANGE_THRESHOLD)
            metrics.update(found)
            found, counts["clustering_with_change"] = clustering_metrics(
                store, chain, owners, kinds, "clustering.with_change"
            )
            metrics.update(found)
    return WorldScores(truth.seed, metrics, counts, time.perf_counter() - started)


# ------------------------------------------------------------------------------------------ many worlds


@dataclass(frozen=True, slots=True)
class Spread:
    """Mean, sample standard deviation, minimum and maximum of a score over worlds."""

    mean: float
    std: float
    min: float
    max: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "mean": round(self.mean, 6),
            "std": round(self.std, 6),
            "min": round(self.min, 6),
            "max": round(self.max, 6),
            "n": self.n,
        }


def spread(values: Sequence[float]) -> Spread:
    """The spread of a score over worlds (standard deviation 0 for a single world)."""
    n = len(values)
    if n == 0:
        return Spread(math.nan, math.nan, math.nan, math.nan, 0)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return Spread(mean, std, min(values), max(values), n)


@dataclass(frozen=True)
class Evaluation:
    """Scores over several worlds."""

    seed: int
    size: str
    worlds: tuple[WorldScores, ...]
    seconds: float = 0.0

    def summary(self) -> dict[str, Spread]:
        """Each metric's spread over the worlds (metrics missing in a world are left out there)."""
        names: list[str] = []
        for w in self.worlds:
            names += [k for k in w.metrics if k not in names]
        return {name: spread([w.metrics[name] for w in self.worlds if name in w.metrics]) for name in names}

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "seed": self.seed,
            "size": self.size,
            "worlds": len(self.worlds),
            "seeds": [w.seed for w in self.worlds],
            "trace_max_hops": TRACE_MAX_HOPS,
            "metrics": {k: v.to_dict() for k, v in self.summary().items()},
            "per_world": [w.to_dict() for w in self.worlds],
            "seconds": round(self.seconds, 1),
        }


ProgressFn = Callable[[int, int, WorldScores | None], None]
"""``on_progress(done, total, scores of the world just done)``."""


def evaluate(
    worlds: int,
    seed: int,
    size: str | int,
    *,
    with_change: bool = True,
    keep: Path | None = None,
    on_progress: ProgressFn | None = None,
) -> Evaluation:
    """Generate ``worlds`` worlds (seeds ``seed`` .. ``seed + worlds - 1``) and score each."""
    from fundtrail.errors import InputError
    from fundtrail.scenarios.world import WorldConfig, generate_world

    if worlds < 1:
        raise InputError(f"--worlds must be at least 1, not {worlds}")
    started = time.perf_counter()
    results = []
    name = WorldConfig.for_size(size, seed).size
    for i in range(worlds):
        config = WorldConfig.for_size(size, seed + i)
        with tempfile.TemporaryDirectory(prefix="fundtrail-eval-") as tmp:
            out = (keep / f"world-{seed + i}") if keep is not None else Path(tmp)
            generate_world(config, out)
            scores = evaluate_world(out, with_change=with_change)
        results.append(scores)
        log.info("world %d: %s", seed + i, {k: round(v, 3) for k, v in scores.metrics.items()})
        if on_progress is not None:
            on_progress(i + 1, worlds, scores)
    return Evaluation(seed, name, tuple(results), time.perf_counter() - started)
