"""Fixtures of the API tests: a small chain world, an agency with a user per role, two units, cases.

The chain (btc), in satoshi, fee 10,000 where spent::

    cb1: R 10,000,000 | E 2,010,000 | X2 3,000,000        (R: ransomware, E: Northwind Exchange)
    t1:  R -> S 6,000,000, R 3,990,000
    t2:  R + E -> S 4,000,000, E2 1,990,000               (co-spend: R and E cluster together)
    t3:  S + X2 -> M 5,000,000, X2 3,990,000              (M: Blender, a mixer)
    t4:  S -> S 3,000,000, G 990,000                      (G: Lucky Casino, sanctioned)

The agency (EE) has the users of :data:`fundtrail.cases.testing.ROLE_USERS` in the Cybercrime Unit, and
``oscar`` (investigator) in the Fraud Unit; ``paul`` is an auditor of another jurisdiction (FR).
Case ``cyber`` (Cybercrime Unit, lead ivo) holds R and S as subjects; case ``fraud`` is the Fraud Unit's.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

with warnings.catch_warnings():
    # Starlette's test client asks for the httpx2 package; httpx works the same for these tests.
    warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")
    from fastapi.testclient import TestClient

from fundtrail.domain.addresses import segwit_address
from fundtrail.store import ChainStore
from fundtrail.testing.utxo import UtxoChain

UNIT = "Cybercrime Unit"
OTHER_UNIT = "Fraud Unit"
PASSWORD = "correct horse battery staple"


def test_settings(**changes: Any) -> Any:
    """Service settings for tests: tokens checked on every request, cheap password hashing."""
    from fundtrail.api.state import ApiSettings

    return ApiSettings(token_cache_seconds=0, password_time_cost=1, password_memory_kib=1024, **changes)


def addr(name: str) -> str:
    """A valid bech32 address named after ``name``."""
    return segwit_address("btc", 0, hashlib.sha256(name.encode()).digest()[:20])


R, E, S, X2, M, G, E2 = (addr(n) for n in ("ransom", "exchange", "suspect", "suspect-2", "mixer", "casino",
                                           "other"))
TXIDS = {name: hashlib.sha256(name.encode()).hexdigest() for name in ("cb1", "t1", "t2", "t3", "t4")}


def build_chain(home: Path) -> None:
    """Write the chain, tags, the sanctions list and clusters into ``home/chain.duckdb``."""
    from fundtrail.analysis.clustering import cluster_addresses
    from fundtrail.intel.sanctions import import_list
    from fundtrail.intel.tagpacks import import_tagpack

    home.mkdir(parents=True, exist_ok=True)
    store = ChainStore(home / "chain.duckdb")
    try:
        c = UtxoChain()
        cb = c.coinbase(TXIDS["cb1"], [(R, 10_000_000), (E, 2_010_000), (X2, 3_000_000)])
        c.next_block()
        t1 = c.tx(TXIDS["t1"], [cb.out(0)], [(S, 6_000_000), (R, 3_990_000)])
        c.next_block()
        t2 = c.tx(TXIDS["t2"], [t1.out(1), cb.out(1)], [(S, 4_000_000), (E2, 1_990_000)])
        c.next_block()
        c.tx(TXIDS["t3"], [t1.out(0), cb.out(2)], [(M, 5_000_000), (X2, 3_990_000)])
        c.next_block()
        c.tx(TXIDS["t4"], [t2.out(0)], [(S, 3_000_000), (G, 990_000)])
        c.write(store)
        pack = home / "pack.yaml"
        pack.write_text(yaml.safe_dump({
            "title": "test tags", "creator": "Test Unit", "currency": "BTC", "confidence": "forensic",
            "source": "https://example.org/case-7", "tags": [
                {"address": R, "label": "LockBit", "abuse": "ransomware"},
                {"address": E, "label": "Northwind Exchange", "category": "exchange"},
                {"address": M, "label": "Blender", "category": "mixing_service"},
                {"address": G, "label": "Lucky Casino", "category": "gambling"}]}))
        import_tagpack(store, pack)
        listed = home / "sanctioned_addresses_XBT.txt"
        listed.write_text(G + "\n")
        import_list(store, listed)
        cluster_addresses(store, "btc")
    finally:
        store.close()


@pytest.fixture(scope="session")
def world() -> SimpleNamespace:
    """The named addresses and transactions of the chain."""
    return SimpleNamespace(R=R, E=E, S=S, X2=X2, M=M, G=G, E2=E2, txids=TXIDS)


@pytest.fixture(scope="session")
def chain_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the world's chain store (copied into each test's home)."""
    home = tmp_path_factory.mktemp("chain")
    build_chain(home)
    return home


@dataclass
class Agency:
    """A home with its case database, users, cases and a test client; ``as_(user)`` gives headers."""

    home: Path
    app: Any
    client: TestClient
    cases: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def headers(self, user: str, reason: str | None = None) -> dict[str, str]:
        """Bearer-token headers of ``user`` (and an X-Reason)."""
        out = {"Authorization": f"Bearer {self.token(user)}"}
        if reason:
            out["X-Reason"] = reason
        return out

    def token(self, user: str) -> str:
        """An API token of ``user`` (made on first use)."""
        if user not in self.tokens:
            token, _info = self.app.state.fundtrail.auth.issue(user, name="tests", lifetime=timedelta(days=1))
            self.tokens[user] = token
        return self.tokens[user]

    @property
    def db(self) -> Any:
        """The case database."""
        return self.app.state.fundtrail.cases.db

    def audit(self) -> list[dict[str, Any]]:
        """Every audit record, oldest first."""
        from sqlalchemy import select

        from fundtrail.audit.models import AuditRecord

        with self.db.session() as session:
            rows = session.execute(select(AuditRecord).order_by(AuditRecord.seq)).scalars().all()
            return [{"seq": r.seq, "actor": r.actor, "action": r.action, "case": r.case_number,
                     "reason": r.reason, "object": r.object_id, "details": r.details} for r in rows]


def seed_agency(home: Path) -> dict[str, str]:
    """Users for every role and two units, and a case in each unit; returns the case numbers."""
    from fundtrail.cases import cases as case_service
    from fundtrail.cases.context import operation
    from fundtrail.cases.db import CaseDB
    from fundtrail.cases.testing import seed_users
    from fundtrail.cases.users import add_user

    db = CaseDB.open(home)
    try:
        seed_users(db, unit=UNIT)
        with operation(db, "admin") as ctx:
            add_user(ctx, "oscar", "Oscar Other", "investigator", OTHER_UNIT, "EE")
            add_user(ctx, "paul", "Paul Foreign", "auditor", UNIT, "FR")
        with operation(db, "ivo") as ctx:
            cyber = case_service.open_case(ctx, "Ransomware payments to LockBit", severity="high")
            case_service.add_subject(ctx, cyber.number, "address", R, chain="btc", label="ransom address",
                                     role="suspect")
            case_service.add_subject(ctx, cyber.number, "address", S, chain="btc", role="suspect")
            numbers = {"cyber": cyber.number}
        with operation(db, "oscar") as ctx:
            numbers["fraud"] = case_service.open_case(ctx, "Investment fraud", severity="medium").number
    finally:
        db.close()
    return numbers


AgencyTemplate = tuple[Path, dict[str, str]]
"""A seeded agency home and its case numbers."""


@contextmanager
def open_agency(chain_home: Path, folder: Path,
                template: AgencyTemplate | None = None) -> Iterator[Agency]:
    """A fresh agency home in ``folder`` served by the app (in-process test client).

    The home is seeded here, or copied from ``template`` (a home seeded the same way, see
    :func:`agency_template`, and its case numbers).
    """
    from fundtrail.api.app import create_app

    home = folder / "home"
    if template is None:
        home.mkdir()
        shutil.copy(chain_home / "chain.duckdb", home / "chain.duckdb")
        numbers = seed_agency(home)
    else:
        shutil.copytree(template[0], home)
        numbers = dict(template[1])
    app = create_app(home, test_settings())
    with TestClient(app) as client:
        yield Agency(home, app, client, numbers)


@pytest.fixture(scope="session")
def agency_template(chain_home: Path, tmp_path_factory: pytest.TempPathFactory) -> AgencyTemplate:
    """An agency home (the chain store, the case database seeded by :func:`seed_agency`, the agency key),
    made once per session; each test's agency is a copy of it."""
    home = tmp_path_factory.mktemp("agency-template") / "home"
    home.mkdir()
    shutil.copy(chain_home / "chain.duckdb", home / "chain.duckdb")
    return home, seed_agency(home)


@pytest.fixture()
def agency(chain_home: Path, tmp_path: Path, agency_template: AgencyTemplate) -> Iterator[Agency]:
    """A fresh agency for one test (a copy of the session's seeded agency home)."""
    with open_agency(chain_home, tmp_path, agency_template) as fresh:
        yield fresh


@pytest.fixture(scope="session")
def agency_maker():
    """:func:`open_agency`, for fixtures that need an agency of a wider scope."""
    return open_agency
