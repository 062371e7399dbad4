"""Fixtures of the cooperation tests: two agencies, a small ransomware world, agreements between them.

The chain (btc), in satoshi (fee 10,000 where spent)::

    cb1: V1 10,000,000 | V2 6,010,000 | X 3,000,000      (V1, V2: victims' wallets)
    t1:  V1 -> R1 9,990,000                              (R1, R2: ransom addresses)
    t2:  V2 -> R2 6,000,000
    t3:  R1 -> D1 9,980,000                              (D1, D2: Northwind Exchange deposit addresses, SC)
    t4:  R2 -> D2 5,000,000, R2 990,000
    t5:  X -> H 2,990,000                                (H: an unrelated hot wallet of the exchange)

Agency A is the Estonian police (EE): case ``ransom`` holds R1 and R2, their forward trace preserved as
evidence (its endpoints D1, D2 added as subjects), a suspect (person) and his exchange account.
Agency B is the Seychelles FIU (SC): case ``exchange`` holds D1 and an unrelated address Q.
Agreement ``ee-sc`` (A's view) and ``sc-ee`` (B's view) allow addresses, tags, traces, evidence and
personal data (pseudonymised) under TLP:AMBER / PAP:AMBER, 30 days' retention, no onward sharing.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import update

from fundtrail.domain.addresses import segwit_address
from fundtrail.sharing.models import SharingAgreement
from fundtrail.sharing.partners import PartnerClient
from fundtrail.store import ChainStore
from fundtrail.testing.utxo import UtxoChain

ALL_CATEGORIES = frozenset(
    {"addresses_and_transactions", "attribution_tags", "traces", "evidence", "personal_data"}
)


def addr(name: str) -> str:
    """A valid bech32 address named after ``name``."""
    return segwit_address("btc", 0, hashlib.sha256(name.encode()).digest()[:20])


V1, V2, X, R1, R2, D1, D2, H, Q = (
    addr(n)
    for n in ("victim-1", "victim-2", "x", "ransom-1", "ransom-2", "deposit-1", "deposit-2", "hot", "q")
)
TXIDS = {name: hashlib.sha256(name.encode()).hexdigest() for name in ("cb1", "t1", "t2", "t3", "t4", "t5")}


def build_chain(home: Path) -> None:
    """The chain, its tags (the exchange in SC), a sanctions list and clusters in ``home/chain.duckdb``."""
    from fundtrail.analysis.clustering import cluster_addresses
    from fundtrail.intel.sanctions import import_list
    from fundtrail.intel.tagpacks import import_tagpack

    home.mkdir(parents=True, exist_ok=True)
    store = ChainStore(home / "chain.duckdb")
    try:
        c = UtxoChain()
        cb = c.coinbase(TXIDS["cb1"], [(V1, 10_000_000), (V2, 6_010_000), (X, 3_000_000)])
        c.next_block()
        t1 = c.tx(TXIDS["t1"], [cb.out(0)], [(R1, 9_990_000)])
        t2 = c.tx(TXIDS["t2"], [cb.out(1)], [(R2, 6_000_000)])
        c.next_block()
        c.tx(TXIDS["t3"], [t1.out(0)], [(D1, 9_980_000)])
        c.tx(TXIDS["t4"], [t2.out(0)], [(D2, 5_000_000), (R2, 990_000)])
        c.tx(TXIDS["t5"], [cb.out(2)], [(H, 2_990_000)])
        c.write(store)
        pack = home / "exchange.yaml"
        pack.write_text(
            yaml.safe_dump(
                {
                    "title": "exchange tags",
                    "creator": "Test Unit",
                    "currency": "BTC",
                    "confidence": "service_data",
                    "source": "https://example.org/exchange-list",
                    "tags": [
                        {
                            "address": D1,
                            "label": "Northwind Exchange",
                            "category": "exchange",
                            "actor": "northwind",
                        },
                        {
                            "address": D2,
                            "label": "Northwind Exchange",
                            "category": "exchange",
                            "actor": "northwind",
                        },
                        {
                            "address": H,
                            "label": "Northwind Exchange",
                            "category": "exchange",
                            "actor": "northwind",
                        },
                    ],
                }
            )
        )
        import_tagpack(store, pack)
        listed = home / "sanctioned_addresses_XBT.txt"
        listed.write_text(R2 + "\n")
        import_list(store, listed)
        cluster_addresses(store, "btc")
    finally:
        store.close()


@pytest.fixture(scope="session")
def chain_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the world's chain store (copied into each agency's home)."""
    home = tmp_path_factory.mktemp("sharing-chain")
    build_chain(home)
    return home


@dataclass
class Agency:
    """One FundTrail home: its database, key, cases."""

    home: Path
    name: str
    country: str
    cases: dict[str, str] = field(default_factory=dict)

    def db(self) -> Any:
        """The case database (open it in a ``with``)."""
        from fundtrail.cases.db import CaseDB

        return CaseDB.open(self.home)

    @property
    def key(self) -> Any:
        """The agency key."""
        from fundtrail.audit.keys import load_or_create

        return load_or_create(self.home)

    def op(self, user: str | None = None) -> Any:
        """One operation on the home (``with agency.op("ivo") as ctx``)."""
        from fundtrail.cases.context import open_operation

        return open_operation(self.home, user, user_required=user is not None)

    def count(self, model: Any, **where: Any) -> int:
        """How many rows of ``model`` match."""
        from sqlalchemy import func, select

        with self.db() as db, db.session() as s:
            q = select(func.count()).select_from(model)
            for k, v in where.items():
                q = q.where(getattr(model, k) == v)
            return int(s.execute(q).scalar_one())

    def audit_actions(self) -> list[str]:
        """The actions of every audit record, oldest first."""
        from sqlalchemy import select

        from fundtrail.audit.models import AuditRecord

        with self.db() as db, db.session() as s:
            return list(s.execute(select(AuditRecord.action).order_by(AuditRecord.seq)).scalars())

    def audit_intact(self) -> bool:
        """True when the audit chain verifies."""
        from fundtrail.audit import log as audit_log

        with self.db() as db:
            return audit_log.verify_database(db).intact

    def tag_count(self, uri_prefix: str = "partner:") -> int:
        """Tags stored from partner packages."""
        with ChainStore.open_home(self.home, read_only=True) as store:
            return int(
                store.con.execute(
                    "SELECT count(*) FROM tags WHERE tagpack LIKE ?", [uri_prefix + "%"]
                ).fetchone()[0]
            )


def make_agency(root: Path, chain_template: Path, name: str, country: str, unit: str) -> Agency:
    """A home with the world's chain, the agency set, and one user per role."""
    from fundtrail.cases.db import CaseDB
    from fundtrail.cases.testing import seed_users

    home = root / country.lower()
    home.mkdir(parents=True)
    shutil.copy(chain_template / "chain.duckdb", home / "chain.duckdb")
    db = CaseDB.open(home)
    try:
        seed_users(db, jurisdiction=country, unit=unit, agency_name=name)
    finally:
        db.close()
    return Agency(home, name, country)


def seed_ransom_case(a: Agency) -> str:
    """Agency A's ransomware case: subjects, a person and an account, the trace preserved as evidence."""
    from fundtrail.analysis.tracing import trace_funds
    from fundtrail.cases import cases as case_service
    from fundtrail.cases.evidence import preserve_trace

    with a.op("ivo") as ctx:
        case = case_service.open_case(
            ctx,
            "LockBit affiliate ransom payments",
            severity="high",
            offence="ransomware",
            summary="Two companies paid ransoms to R1 and R2.",
        )
        number = case.number
        with ChainStore.open_home(a.home, read_only=True) as store:
            trace = trace_funds(store, "btc", [R1, R2], policy="haircut", max_hops=5).to_dict()
            preserve_trace(ctx, number, trace, store, title="Forward trace of the ransoms", add_subjects=True)
        case_service.add_subject(
            ctx,
            number,
            "person",
            "Ivan Petrov",
            role="suspect",
            details={
                "birth_date": "1990-01-02",
                "nationality": "ru",
                "id_number": "AB123456",
                "email": "ivan@example.org",
            },
        )
        case_service.add_subject(
            ctx,
            number,
            "exchange_account",
            "NW-778812",
            role="suspect account",
            label="Northwind Exchange account",
            details={"service": "Northwind Exchange"},
        )
    return number


def seed_exchange_case(b: Agency) -> str:
    """Agency B's case about the exchange: D1 and an unrelated address Q."""
    from fundtrail.cases import cases as case_service

    with b.op("ivo") as ctx:
        case = case_service.open_case(ctx, "Northwind Exchange inflows", severity="medium")
        case_service.add_subject(ctx, case.number, "address", D1, chain="btc", role="deposit")
        case_service.add_subject(ctx, case.number, "address", Q, chain="btc", role="suspect")
        return case.number


def agree(
    ours: Agency,
    theirs: Agency,
    name: str,
    *,
    categories: frozenset[str] = ALL_CATEGORIES,
    tlp: str = "amber",
    pap: str = "amber",
    retention_days: int = 30,
    onward: bool = False,
    endpoint: str | None = None,
    pseudonymise: bool = True,
) -> None:
    """Record in ``ours`` an agreement with ``theirs``."""
    from fundtrail.domain.sharing import DataCategory, Pap, Tlp
    from fundtrail.sharing.agreements import AgreementSpec, create_agreement

    with ours.op() as ctx:
        create_agreement(
            ctx,
            AgreementSpec(
                name=name,
                partner_name=theirs.name,
                partner_country=theirs.country,
                partner_public_key=theirs.key.public_b64,
                legal_basis="Budapest Convention, art. 29 and 31",
                categories=DataCategory.parse_many(categories),
                tlp=Tlp(tlp),
                pap=Pap(pap),
                pseudonymise=pseudonymise,
                retention_days=retention_days,
                onward_sharing=onward,
                partner_endpoint=endpoint,
                deadlines={"freeze": 5},
            ),
        )


@pytest.fixture(scope="session")
def pair_template(tmp_path_factory: pytest.TempPathFactory, chain_template: Path) -> tuple[Agency, Agency]:
    """Agency A (EE) with its ransom case and agency B (SC) with its exchange case, agreed both ways."""
    root = tmp_path_factory.mktemp("sharing-pair")
    a = make_agency(root, chain_template, "Estonian Police and Border Guard Board", "EE", "Cybercrime Bureau")
    b = make_agency(root, chain_template, "Seychelles Financial Intelligence Unit", "SC", "Analysis Unit")
    a.cases["ransom"] = seed_ransom_case(a)
    b.cases["exchange"] = seed_exchange_case(b)
    agree(a, b, "ee-sc")
    agree(b, a, "sc-ee")
    return a, b


@pytest.fixture()
def pair(tmp_path: Path, pair_template: tuple[Agency, Agency]) -> Iterator[tuple[Agency, Agency]]:
    """A fresh copy of the two agencies (homes copied: databases, keys, evidence, chain stores)."""
    out = []
    for agency in pair_template:
        home = tmp_path / agency.home.name
        shutil.copytree(agency.home, home)
        out.append(Agency(home, agency.name, agency.country, dict(agency.cases)))
    yield out[0], out[1]


# ------------------------------------------------------------------------------------------------
# Two agencies served in this process, each knowing the other's endpoint

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx.*starlette.testclient.*")
    from fastapi.testclient import TestClient


def settings() -> Any:
    from fundtrail.api.state import ApiSettings

    return ApiSettings(token_cache_seconds=0, password_time_cost=1, password_memory_kib=1024)


@dataclass
class Linked:
    """Two agencies, each served by its app in this process, knowing each other's endpoint."""

    a: Any
    b: Any
    apps: dict[str, Any]

    def clients(self, row: SharingAgreement, key: Any) -> PartnerClient:
        """Signed clients bound to the partner's app (the factory the services take)."""
        app = self.apps[row.partner_endpoint]
        return PartnerClient(TestClient(app, base_url=row.partner_endpoint), key, row.partner_name)

    def http(self, agency: Any) -> TestClient:
        """A plain client of an agency's app."""
        url = "http://a.test" if agency is self.a else "http://b.test"
        return TestClient(self.apps[url], base_url=url)


@pytest.fixture()
def linked(pair) -> Iterator[Linked]:
    from fundtrail.api.app import create_app

    a, b = pair
    for agency, name, url in ((a, "ee-sc", "http://b.test"), (b, "sc-ee", "http://a.test")):
        with agency.db() as db, db.transaction() as s:
            s.execute(
                update(SharingAgreement).where(SharingAgreement.name == name).values(partner_endpoint=url)
            )
    apps = {"http://a.test": create_app(a.home, settings()), "http://b.test": create_app(b.home, settings())}
    yield Linked(a, b, apps)
    for app in apps.values():
        app.state.fundtrail.close()
