"""Fixtures of the watch tests: an agency (EE) with a ransomware case, and a chain that grows block by block.

The chain (btc), in satoshi::

    block 1  cb1: V1 10,000,000 | V2 6,010,000          (V1, V2: victims' wallets)
    block 2  t1:  V1 -> R1 9,990,000                    (R1, R2: ransom addresses, watched)
             t2:  V2 -> R2 6,000,000
    -- `grow` adds --
    block 3  t3:  R1 -> D1 9,980,000                    (D1: Northwind Exchange, in SC)
             t4:  R2 -> S 5,000,000, M 990,000          (S: on the sanctions list, M: a mixer)

Expected alerts of a watch on R1 and R2 once block 3 arrives: moved (t3), moved (t4), at_service (D1,
Northwind Exchange, SC, with a freeze request drafted by MLA: the exchange is abroad), sanctioned (S),
mixer (M).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from fundtrail.domain.addresses import segwit_address
from fundtrail.intel.sanctions import import_list
from fundtrail.intel.tagpacks import import_actorpack, import_tagpack
from fundtrail.store import ChainStore
from fundtrail.store.ingest import ingest_batches
from fundtrail.testing.utxo import UtxoChain


def addr(name: str) -> str:
    """A valid bech32 address named after ``name``."""
    return segwit_address("btc", 0, hashlib.sha256(name.encode()).digest()[:20])


V1, V2, R1, R2, D1, S, M = (addr(n) for n in ("v1", "v2", "r1", "r2", "d1", "s", "m"))
TX = {n: hashlib.sha256(n.encode()).hexdigest() for n in ("cb1", "t1", "t2", "t3", "t4")}


def chain(grown: bool) -> UtxoChain:
    """The chain before (two blocks) or after (three blocks) the ransom moves."""
    c = UtxoChain()
    cb = c.coinbase(TX["cb1"], [(V1, 10_000_000), (V2, 6_010_000)])
    c.next_block()
    t1 = c.tx(TX["t1"], [cb.out(0)], [(R1, 9_990_000)])
    t2 = c.tx(TX["t2"], [cb.out(1)], [(R2, 6_000_000)])
    if grown:
        c.next_block()
        c.tx(TX["t3"], [t1.out(0)], [(D1, 9_980_000)])
        c.tx(TX["t4"], [t2.out(0)], [(S, 5_000_000), (M, 990_000)])
    return c


def grow(store: ChainStore) -> None:
    """Block 3 arrives (through the ingest service, as a watcher's source would write it)."""
    ingest_batches(store, "btc", [chain(True).batch()])


def write_intel(home: Path, store: ChainStore) -> None:
    """Tags (the exchange and its country, a mixer) and a sanctions list."""
    pack = home / "tags.yaml"
    pack.write_text(
        yaml.safe_dump(
            {
                "title": "watch test tags",
                "creator": "Test Unit",
                "currency": "BTC",
                "confidence": "service_data",
                "source": "https://example.org/tags",
                "tags": [
                    {
                        "address": D1,
                        "label": "Northwind Exchange",
                        "category": "exchange",
                        "actor": "northwind",
                    },
                    {"address": M, "label": "Blender", "category": "mixing_service", "actor": "blender"},
                ],
            }
        )
    )
    actors = home / "actors.actorpack.yaml"
    actors.write_text(
        yaml.safe_dump(
            {
                "title": "Actors",
                "creator": "Test Unit",
                "lastmod": "2024-01-01",
                "actors": [
                    {
                        "id": "northwind",
                        "label": "Northwind Exchange",
                        "uri": "https://northwind.example",
                        "categories": ["exchange"],
                        "jurisdictions": ["SC"],
                    },
                    {
                        "id": "blender",
                        "label": "Blender",
                        "uri": "https://blender.example",
                        "categories": ["mixing_service"],
                        "jurisdictions": ["RU"],
                    },
                ],
            }
        )
    )
    import_tagpack(store, pack)
    import_actorpack(store, actors)
    listed = home / "sanctioned_addresses_XBT.txt"
    listed.write_text(S + "\n")
    import_list(store, listed)


@dataclass
class Home:
    """An agency home: case ``case`` (opened by ivo), the chain up to block 2."""

    path: Path
    case: str

    def op(self, user: str | None = "ivo") -> Any:
        """One case operation."""
        from fundtrail.cases.context import open_operation

        return open_operation(self.path, user, user_required=user is not None)

    def store(self) -> ChainStore:
        """The home's chain store (writable)."""
        return ChainStore.open_home(self.path)


@pytest.fixture(scope="session")
def home_template(tmp_path_factory: pytest.TempPathFactory) -> Home:
    from fundtrail.cases import cases as case_service
    from fundtrail.cases.db import CaseDB
    from fundtrail.cases.testing import seed_users

    path = tmp_path_factory.mktemp("watch-home")
    db = CaseDB.open(path)
    try:
        seed_users(db, jurisdiction="EE", unit="Cybercrime Bureau")
    finally:
        db.close()
    with ChainStore.open_home(path) as store:
        ingest_batches(store, "btc", [chain(False).batch()])
        write_intel(path, store)
    home = Home(path, "")
    with home.op() as ctx:
        home.case = case_service.open_case(
            ctx, "Ransom payments", severity="high", offence="ransomware"
        ).number
    return home


@pytest.fixture()
def home(tmp_path: Path, home_template: Home) -> Iterator[Home]:
    """A fresh copy of the template home."""
    path = tmp_path / "home"
    shutil.copytree(home_template.path, path)
    yield Home(path, home_template.case)
