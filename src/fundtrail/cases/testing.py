"""Helpers for tests of the case layer: a throw-away PostgreSQL schema, users for every role.

``FUNDTRAIL_TEST_POSTGRES_URL`` names the PostgreSQL server tests may use (e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); each test gets a fresh schema there, found
through ``search_path``, and drops it afterwards, so runs never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from sqlalchemy import create_engine, text

POSTGRES_ENV = "FUNDTRAIL_TEST_POSTGRES_URL"

ROLE_USERS: tuple[tuple[str, str, str], ...] = (
    ("admin", "Ada Admin", "admin"),
    ("ana", "Ana Analyst", "analyst"),
    ("ivo", "Ivo Investigator", "investigator"),
    ("sue", "Sue Supervisor", "supervisor"),
    ("aud", "Aud Auditor", "auditor"),
    ("lia", "Lia Liaison", "liaison"),
)
"""(username, display name, role) of the users :func:`seed_users` adds."""


def postgres_base_url() -> str | None:
    """The PostgreSQL server tests may use, when one is configured."""
    return os.environ.get(POSTGRES_ENV) or None


@contextmanager
def fresh_postgres_schema(base_url: str) -> Iterator[str]:
    """A new, empty schema on ``base_url``; yields a URL whose connections use it; drops it afterwards."""
    schema = f"ft_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in base_url else "?"
        yield f"{base_url}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def seed_users(
    db: object,
    *,
    jurisdiction: str = "EE",
    unit: str = "Cybercrime Unit",
    agency_name: str = "Estonian Police and Border Guard Board",
) -> None:
    """Set the agency and add one user per role (admin first), all in ``unit``."""
    from fundtrail.cases.context import operation
    from fundtrail.cases.users import add_user, set_agency

    with operation(db, None, user_required=False) as ctx:  # type: ignore[arg-type]
        set_agency(
            ctx,
            name=agency_name,
            jurisdiction=jurisdiction,
            address="Pärnu mnt 139, Tallinn",
            email="cyber@example.org",
        )
        add_user(ctx, *ROLE_USERS[0][:2], ROLE_USERS[0][2], unit, jurisdiction)
    with operation(db, "admin") as ctx:  # type: ignore[arg-type]
        for username, name, role in ROLE_USERS[1:]:
            add_user(ctx, username, name, role, unit, jurisdiction, email=f"{username}@example.org")


def named_address(name: str) -> str:
    """A valid bech32 Bitcoin address named after ``name``."""
    import hashlib

    from fundtrail.domain.addresses import segwit_address

    return segwit_address("btc", 0, hashlib.sha256(name.encode()).digest()[:20])


def named_txid(name: str) -> str:
    """A 64-hex transaction id named after ``name``."""
    import hashlib

    return hashlib.sha256(f"tx:{name}".encode()).hexdigest()


RANSOM = named_address("ransom")
HOP = named_address("hop")
EXCHANGE = named_address("northwind-deposit")
REST = named_address("rest")
VICTIM = named_address("victim")
EXCHANGE_NAME = "Northwind Exchange"


def ransom_chain(store: object, folder: object) -> dict[str, str]:
    """A small ransomware chain in ``store``, the exchange tagged by a TagPack written to ``folder``.

    ::

        cb  (coinbase)              -> VICTIM 10,000,000
        pay VICTIM(cb:0)            -> RANSOM 5,000,000, VICTIM 4,990,000
        hop RANSOM(pay:0)           -> HOP 4,990,000                       (fee 10,000)
        out HOP(hop:0)              -> EXCHANGE 3,000,000, REST 1,980,000   (fee 10,000)

    Traced forward from RANSOM (haircut): 3,000,000 rest at Northwind Exchange (a service, where the
    trace stops), 1,980,000 at REST (unspent).
    """
    from pathlib import Path

    import yaml

    from fundtrail.intel.tagpacks import import_tagpack
    from fundtrail.store import schema
    from fundtrail.testing.utxo import UtxoChain

    for stmt in schema.ddl():  # tables registered by layers imported after the store was opened
        store.con.execute(stmt)  # type: ignore[attr-defined]

    c = UtxoChain()
    cb = c.coinbase(named_txid("cb"), [(VICTIM, 10_000_000)])
    c.next_block()
    pay = c.tx(named_txid("pay"), [cb.out(0)], [(RANSOM, 5_000_000), (VICTIM, 4_990_000)])
    c.next_block()
    hop = c.tx(named_txid("hop"), [pay.out(0)], [(HOP, 4_990_000)])
    c.next_block()
    c.tx(named_txid("out"), [hop.out(0)], [(EXCHANGE, 3_000_000), (REST, 1_980_000)])
    c.write(store)  # type: ignore[arg-type]
    pack = Path(str(folder)) / "northwind.yaml"
    pack.write_text(
        yaml.safe_dump(
            {
                "title": "Exchange deposit addresses",
                "creator": "Cybercrime Unit",
                "currency": "BTC",
                "confidence": "forensic",
                "source": "https://example.org/attribution",
                "tags": [
                    {"address": EXCHANGE, "label": EXCHANGE_NAME, "category": "exchange"},
                    {"address": RANSOM, "label": "LockBit affiliate", "abuse": "ransomware"},
                ],
            }
        )
    )
    import_tagpack(store, pack)  # type: ignore[arg-type]
    return {"ransom": RANSOM, "hop": HOP, "exchange": EXCHANGE, "rest": REST, "victim": VICTIM}


def sqlite_templates(folder: object) -> tuple[object, object]:
    """Two SQLite case databases in ``folder``, migrated once: empty, and seeded (:func:`seed_users`).

    Tests copy them instead of migrating and seeding a database each time.
    """
    from pathlib import Path

    from fundtrail.cases.db import CaseDB

    root = Path(str(folder))
    empty, seeded = root / "empty.sqlite", root / "seeded.sqlite"
    for path, seed in ((empty, False), (seeded, True)):
        db = CaseDB.open(root, f"sqlite:///{path}", auto_upgrade=True)
        try:
            if seed:
                seed_users(db)
        finally:
            db.close()
    return empty, seeded
