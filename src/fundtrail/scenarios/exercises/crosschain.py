"""The cross-chain typology of exercises: a world of btc, eth, bsc and polygon with swaps, bridges and pools.

The cross-chain generator (:mod:`fundtrail.scenarios.crosschain`) builds the batches the chain store
ingests; it writes no bitcoin-etl or ethereum-etl files. The chain data of a cross-chain exercise is
therefore the generator's batches written into a scratch chain store and exported with the store's own
Parquet export (``data/store/<table>.parquet``, only the chain tables: no tags, no conversions); a
trainee loads it with ``fundtrail store import store/``. The public tags (exchanges' deposit addresses,
DEX pairs, bridges, pools) are written as one TagPack per chain and category, with an ActorPack giving
each exchange a jurisdiction. The truth (every case's seeds and cash-outs: chain, deposit address,
exchange, asset, amount, jurisdiction) is sealed as for the other typologies; the seed is part of it.
"""

from __future__ import annotations

import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fundtrail.scenarios.crosschain import START_TIME, CrossChainConfig, CrossChainWorld, generate_cross_chain
from fundtrail.scenarios.writer import ActorSpec, TagSpec, world_date, write_actorpack, write_tagpack
from fundtrail.store import ChainStore, schema

CROSS_CHAIN = "cross-chain"
STORE_DIR = "store"
"""Folder of the Parquet export in ``data/`` and in the hand-out."""
JURISDICTIONS = ("DE", "NL", "LT", "EE", "CH", "SG", "GB", "FR")
"""Jurisdictions drawn (by the seed) for the world's exchanges."""
CURRENCY = {"btc": "BTC", "eth": "ETH", "bsc": "BSC", "polygon": "POLYGON"}
CONCEPTS = {"bridge": "defi_bridge"}
"""The generator's tag categories that the TagPack taxonomy names otherwise."""

CONFIGS: dict[str, dict[str, int]] = {
    "easy": {"noise": 200, "swaps": 15, "bridges": 3, "pool_users": 3, "cases": 1},
    "medium": {"noise": 600, "swaps": 40, "bridges": 8, "pool_users": 6, "cases": 2},
    "hard": {"noise": 2_000, "swaps": 80, "bridges": 12, "pool_users": 8, "cases": 3},
}
"""The generator's settings per difficulty (``--size`` sets the noise transactions per EVM chain)."""


@dataclass(frozen=True)
class CrossChainMade:
    """What :func:`write_cross_chain` made: the public facts of the exercise and the truth to seal."""

    chain: str
    heights: tuple[int, int]
    exchanges: dict[str, str]
    briefing: tuple[dict[str, str], ...]
    truth: dict[str, Any]


def _actor_id(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _jurisdictions(world: CrossChainWorld, seed: int) -> dict[str, str]:
    names = sorted({label for _, _, label, category in world.tags if category == "exchange"})
    rng = random.Random(seed)
    drawn = rng.sample(JURISDICTIONS, len(names)) if len(names) <= len(JURISDICTIONS) else []
    return {n: (drawn[i] if drawn else JURISDICTIONS[i % len(JURISDICTIONS)]) for i, n in enumerate(names)}


def _write_tags(world: CrossChainWorld, folder: Path, exercise_id: str, exchanges: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lastmod = world_date(START_TIME)
    source = f"urn:fundtrail:exercise:{exercise_id}"
    write_actorpack(
        folder / "actors.actorpack.yaml",
        [ActorSpec(_actor_id(n), n, "exchange", j) for n, j in sorted(exchanges.items())],
        lastmod=lastmod,
        seed=0,
    )
    # the header names no seed: the exercise's, not the world's
    text = (folder / "actors.actorpack.yaml").read_text(encoding="utf-8")
    (folder / "actors.actorpack.yaml").write_text(
        text.replace("(seed 0)", f"(exercise {exercise_id})"), encoding="utf-8"
    )
    groups: dict[tuple[str, str], list[TagSpec]] = {}
    for chain, address, label, category in world.tags:
        actor = _actor_id(label) if category == "exchange" else None
        tag_label = f"{label} deposit address" if category == "exchange" else label
        concept = CONCEPTS.get(category, category)
        groups.setdefault((chain, concept), []).append(TagSpec(address, tag_label, actor))
    for (chain, category), tags in sorted(groups.items()):
        write_tagpack(
            folder / f"{chain}-{category}.yaml",
            title=f"{category} addresses on {chain} (exercise {exercise_id})",
            description="Public attribution of services: exchanges' deposit addresses, DEX pairs, "
            "bridges and pools.",
            currency=CURRENCY.get(chain, chain.upper()),
            confidence="service_data",
            lastmod=lastmod,
            source=source,
            tags=tags,
            category=category,
        )


def _export_store(world: CrossChainWorld, target: Path, scratch: Path) -> tuple[int, int]:
    """Write the world's batches into a scratch store and keep the chain tables of its Parquet export."""
    lo, hi = 0, 0
    with ChainStore(":memory:") as store:
        for batch in world.batches:
            store.write_batch(batch)
        store.export_parquet(scratch)
        row = store.con.execute("SELECT min(height), max(height) FROM blocks").fetchone()
        if row and row[0] is not None:
            lo, hi = int(row[0]), int(row[1])
    target.mkdir(parents=True, exist_ok=True)
    for table in (*schema.EXPORT_TABLES, *schema.OPTIONAL_EXPORT_TABLES):
        shutil.copyfile(scratch / f"{table}.parquet", target / f"{table}.parquet")
    return lo, hi


def write_cross_chain(
    data: Path, exercise_id: str, seed: int, difficulty: str, *, all_seeds: bool, noise: int | None = None
) -> CrossChainMade:
    """Generate the world of a cross-chain exercise into ``data/`` (store export and tags)."""
    settings = dict(CONFIGS[difficulty])
    if noise is not None:
        settings["noise"] = noise
    world = generate_cross_chain(CrossChainConfig(seed, **settings))
    exchanges = _jurisdictions(world, seed)
    with tempfile.TemporaryDirectory(dir=data.parent, prefix=".export-") as tmp:
        heights = _export_store(world, data / STORE_DIR, Path(tmp))
    _write_tags(world, data / "tagpacks", exercise_id, exchanges)
    chains = [b.chain for b in world.batches]
    shown = world.cases if all_seeds else world.cases[:1]
    briefing = tuple(
        {"chain": c.chain, "address": s, "txid": "", "value": ""} for c in shown for s in c.seeds
    )
    truth = {
        "exercise": exercise_id,
        "typology": CROSS_CHAIN,
        "seed": seed,
        "size": difficulty,
        "config": settings,
        "chain": ",".join(chains),
        "heights": list(heights),
        "split_height": None,
        "exchanges": [{"name": n, "jurisdiction": j} for n, j in sorted(exchanges.items())],
        "typologies": [],
        "cases": [
            {
                "kind": c.kind,
                "chain": c.chain,
                "seeds": list(c.seeds),
                "cash_outs": [
                    {
                        "chain": o.chain,
                        "address": o.address,
                        "exchange": o.exchange,
                        "jurisdiction": exchanges.get(o.exchange),
                        "asset": o.asset,
                        "value": str(o.value),
                    }
                    for o in c.cash_outs
                ],
            }
            for c in world.cases
        ],
    }
    return CrossChainMade(",".join(chains), heights, exchanges, briefing, truth)
