"""FollowTheMoney entities of a case (JSON lines), built and checked with ``followthemoney``'s model.

* every address is a ``CryptoWallet`` (``publicKey`` and ``cryptoAddress`` the address, ``currency`` and
  ``currencySymbol`` the chain's symbol, ``blockchain``, ``amount`` the exact traced amount in coins
  as decimal text, ``topics`` ``crime.cyber`` for addresses the crime paid into), held (``holder``) by
  a ``Company`` when a trace attributed it to a service (an exchange is also its ``managingExchange``);
* every traced flow is an ``UnknownLink`` from wallet to wallet (``role`` transfer, ``recordId`` the
  transaction id, ``date``, exact amounts in ``description``), and a ``Payment`` between the holders
  when both ends are attributed (FtM's ``Payment`` runs between legal entities, not wallets);
* persons, companies and exchange accounts of the case (``Person``, ``Company``, ``UserAccount``),
  when the agreement allows personal data: pseudonymised per the agreement (names and identifiers
  become keyed HMAC pseudonyms, dates, e-mail, phone and addresses are left out). Entity ids of
  people are made from pseudonyms, never from names, so that an id cannot be tested against a guess.

Entity ids are stable (``make_id`` of chain and address, of txid and hop ...), so that packages about
the same wallets merge in the receiver's FtM store.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from followthemoney import model
from followthemoney.exc import InvalidData
from followthemoney.proxy import EntityProxy

from fundtrail.domain.cases import SubjectKind
from fundtrail.domain.chains import CHAINS, get_chain
from fundtrail.domain.sharing import (
    PERSONAL_FIELDS,
    DataCategory,
    is_pseudonymised,
    pseudonymise_fields,
)
from fundtrail.errors import IntegrityError
from fundtrail.sharing.content import CaseContent, Party

WALLET = "CryptoWallet"
PERSONAL_SCHEMATA = frozenset({"Person", "UserAccount"})


def coin_text(value: int, chain: str) -> str:
    """Base units as an exact decimal coin amount (``5000000`` sat -> ``0.05``), never through a float."""
    decimals = get_chain(chain).decimals if chain in CHAINS else 0
    whole, frac = divmod(value, 10**decimals)
    if decimals == 0 or frac == 0:
        return str(whole)
    return f"{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}"


def _symbol(chain: str) -> str:
    return get_chain(chain).symbol if chain in CHAINS else chain.upper()


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p.title() for p in rest)


def _party_props(party: Party, schema: str) -> dict[str, list[str]]:
    """The FtM properties of a party: its value, label and details mapped to the schema's properties."""
    sch = model.get(schema)
    assert sch is not None
    props: dict[str, list[str]] = {}
    main = {"Person": "name", "Company": "name", "UserAccount": "username"}[schema]
    props[main] = [party.value]
    if party.label and schema != "UserAccount":
        props.setdefault("alias", []).append(party.label)
    for key, value in sorted(party.details.items()):
        name = _camel(key)
        if name in sch.properties and value not in (None, "") and not sch.properties[name].stub:
            values = value if isinstance(value, list) else [value]
            props.setdefault(name, []).extend(str(v) for v in values)
    return props


def _entity(schema: str, *id_parts: str) -> EntityProxy:
    proxy = model.make_entity(schema)
    proxy.make_id("fundtrail", schema, *id_parts)
    return proxy


def build_entities(
    content: CaseContent, categories: frozenset[DataCategory], *, pseudonym_key: bytes | None
) -> list[dict[str, Any]]:
    """The case's entities (JSON values), limited to ``categories``; personal fields pseudonymised when a
    key is given."""
    out: dict[str | None, EntityProxy] = {}  # by id: FtM types an entity's id as optional
    with_tags = DataCategory.ATTRIBUTION_TAGS in categories
    holders: dict[str, EntityProxy] = {}
    wallets: dict[tuple[str, str], EntityProxy] = {}
    for (chain, address), w in sorted(content.wallets.items()):
        wallet = _entity(WALLET, chain, address)
        wallet.add("publicKey", address)
        wallet.add("cryptoAddress", address)
        wallet.add("currency", _symbol(chain))
        wallet.add("currencySymbol", _symbol(chain))
        wallet.add("blockchain", get_chain(chain).description if chain in CHAINS else chain)
        if w.amount is not None:
            wallet.add("amount", coin_text(w.amount, chain))
        if w.is_seed or w.abuse:
            wallet.add("topics", "crime.cyber")
        wallet.add("summary", f"case {content.number}: {', '.join(sorted(w.roles))}")
        if with_tags and w.entity:
            holder = holders.get(w.entity)
            if holder is None:
                holder = _entity("Company", "entity", w.entity)
                holder.add("name", w.entity)
                if w.jurisdiction and len(w.jurisdiction) == 2:
                    holder.add("jurisdiction", w.jurisdiction.lower())
                if w.category in ("exchange", "payment_processor"):
                    holder.add("topics", "fin")
                holder.add("description", f"{w.category or 'service'} (attributed by tracing and tags)")
                holders[w.entity] = holder
                out[holder.id] = holder
            wallet.add("holder", holder.id)
            if w.category == "exchange":
                wallet.add("managingExchange", w.entity)
        wallets[(chain, address)] = wallet
        out[wallet.id] = wallet
    if DataCategory.TRACES in categories:
        for f in content.flows:
            src, dst = wallets.get((f.chain, f.source or "")), wallets.get((f.chain, f.target or ""))
            if src is None or dst is None:
                continue
            link = _entity("UnknownLink", f.chain, f.txid, f.source or "", f.target or "", str(f.hop))
            link.add("subject", src.id)
            link.add("object", dst.id)
            link.add("role", "transfer")
            link.add("recordId", f.txid)
            link.add(
                "description",
                f"{coin_text(f.value, f.chain)} {_symbol(f.chain)} "
                f"({f.value} base units, {f.asset}); traced share "
                f"{coin_text(f.tainted_value, f.chain)} ({f.tainted_value} base units); "
                f"hop {f.hop}",
            )
            out[link.id] = link
            payer, beneficiary = src.get("holder"), dst.get("holder")
            if payer and beneficiary and payer != beneficiary:
                pay = _entity("Payment", f.chain, f.txid, f.source or "", f.target or "", str(f.hop))
                pay.add("payer", payer[0])
                pay.add("beneficiary", beneficiary[0])
                pay.add("amount", coin_text(f.value, f.chain))
                pay.add("currency", _symbol(f.chain))
                pay.add("transactionNumber", f.txid)
                pay.add("purpose", f"crypto transfer, hop {f.hop}")
                out[pay.id] = pay
    if DataCategory.PERSONAL_DATA in categories:
        for party in content.parties:
            for proxy in _party_entities(party, pseudonym_key):
                out.setdefault(proxy.id, proxy)
    return [p.to_dict() for p in out.values()]


def _party_entities(party: Party, key: bytes | None) -> list[EntityProxy]:
    schema = {
        SubjectKind.PERSON: "Person",
        SubjectKind.COMPANY: "Company",
        SubjectKind.EXCHANGE_ACCOUNT: "UserAccount",
    }[party.kind]
    props = _party_props(party, schema)
    if key is not None and schema in PERSONAL_SCHEMATA:
        props = pseudonymise_fields(key, props)
    ident = json.dumps(
        {k: sorted(v) for k, v in sorted(props.items()) if k in ("name", "username", "idNumber", "service")},
        sort_keys=True,
    )
    proxy = _entity(schema, ident)
    for name, values in props.items():
        for v in values:
            proxy.add(name, v, quiet=True)
    return [proxy]


def write_jsonl(path: Path, entities: Iterable[dict[str, Any]]) -> None:
    """Write entities as JSON lines (one entity per line, keys sorted)."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for e in entities:
            fh.write(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) of every non-empty line; IntegrityError naming a line that is not JSON."""
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield n, json.loads(line)
                except ValueError as error:
                    raise IntegrityError(f"{path}:{n}: not JSON: {error}") from None


@dataclass
class FtmItem:
    """What the import stores of one entity."""

    kind: str
    ref: str
    chain: str | None
    value: str | None
    label: str | None
    content: dict[str, Any]


_CHAIN_BY_DESCRIPTION = {p.description: p.name for p in CHAINS.values()}
_ID = re.compile(r"^[0-9a-zA-Z._-]{1,200}$")


def check_entities(path: Path, *, pseudonymised: bool) -> tuple[list[FtmItem], frozenset[DataCategory]]:
    """Validate every entity against FtM's model, strictly: known schema, known properties, values its
    types accept, required properties, references inside the package, personal fields pseudonymised
    when the envelope says so. The items to store and the categories carried."""
    items: list[FtmItem] = []
    carried: set[DataCategory] = set()
    ids: set[str] = set()
    refs: list[tuple[int, str, str]] = []
    for n, data in read_jsonl(path):
        where = f"{path.name}:{n}"
        try:
            if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not _ID.match(data["id"]):
                raise ValueError("an entity needs an id")
            schema = model.get(data.get("schema") or "")
            if schema is None:
                raise ValueError(f"unknown schema {data.get('schema')!r}")
            if schema.abstract:
                raise ValueError(f"schema {schema.name} is abstract")
            raw = data.get("properties") or {}
            if not isinstance(raw, dict):
                raise ValueError("properties must be a mapping")
            for name, values in raw.items():
                prop = schema.properties.get(name)
                if prop is None:
                    raise ValueError(f"{schema.name} has no property {name!r}")
                if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                    raise ValueError(f"{name}: values must be a list of strings")
                for v in values:
                    if prop.type.clean(v, proxy=None) is None:
                        raise ValueError(f"{name}: {v!r} is not a valid {prop.type.name}")
                    if prop.type.name == "entity":
                        refs.append((n, name, v))
            missing = [p for p in schema.required if not raw.get(p)]
            if missing:
                raise ValueError(f"{schema.name} needs {', '.join(missing)}")
            proxy = EntityProxy.from_dict(data)
            if data["id"] in ids:
                raise ValueError(f"entity {data['id']} appears twice")
            ids.add(data["id"])
        except (ValueError, InvalidData, TypeError) as error:
            raise IntegrityError(f"{where}: not a valid FollowTheMoney entity: {error}") from None
        personal = {k: v for k, v in raw.items() if k in PERSONAL_FIELDS}
        if schema.name in PERSONAL_SCHEMATA:
            carried.add(DataCategory.PERSONAL_DATA)
            if pseudonymised and not is_pseudonymised(personal):
                raise IntegrityError(
                    f"{where}: the envelope says personal data is pseudonymised, but "
                    f"{schema.name} {data['id']} holds personal fields in clear"
                )
        if schema.name == WALLET:
            carried.add(DataCategory.ADDRESSES_AND_TRANSACTIONS)
            if proxy.get("holder"):
                carried.add(DataCategory.ATTRIBUTION_TAGS)
            chain = _CHAIN_BY_DESCRIPTION.get((proxy.get("blockchain") or [""])[0])
            addresses = proxy.get("cryptoAddress") or proxy.get("publicKey")
            address = addresses[0] if addresses else None
            items.append(FtmItem("wallet", proxy.id or "", chain, address, None, data))
        elif schema.name in ("UnknownLink", "Payment"):
            carried.add(DataCategory.TRACES)
            record_ids = proxy.get("recordId") or proxy.get("transactionNumber")
            items.append(
                FtmItem(
                    "flow",
                    proxy.id or "",
                    None,
                    record_ids[0] if record_ids else None,
                    None,
                    data,
                )
            )
        elif schema.name == "Company":  # a service holding wallets (attribution), or a party of the case
            items.append(FtmItem("entity", proxy.id or "", None, proxy.caption, proxy.caption, data))
        else:
            items.append(FtmItem(schema.name.lower(), proxy.id or "", None, None, None, data))
    for n, name, ref in refs:
        if ref not in ids:
            raise IntegrityError(
                f"{path.name}:{n}: {name} refers to entity {ref}, which the package does not hold"
            )
    holders = {ref for _, name, ref in refs if name == "holder"}
    for item in items:
        if item.kind == "entity":
            carried.add(DataCategory.ATTRIBUTION_TAGS if item.ref in holders else DataCategory.PERSONAL_DATA)
    if not items:
        raise IntegrityError(f"{path}: the package holds no entities")
    return items, frozenset(carried)
