"""STIX 2.1 bundles of a case, built and read with the ``stix2`` library.

What a bundle holds:

* the TLP 2.0 marking definition of the agreement (the published object, by its published id) and a
  PAP statement marking; every other object carries both in ``object_marking_refs``;
* an ``identity`` for the sending agency (its id derived from the agency key, stable across packages);
* wallets and transactions as the community's published new-SCO extensions ``cryptocurrency-wallet``
  (``extension-definition--be78509e-6958-51b1-8b26-d17ee0eba2d7``: ``value`` is the address) and
  ``cryptocurrency-transaction`` (``extension-definition--151d042d-4dcf-5e44-843f-1024440318e5``:
  ``symbol``, ``value`` is the transaction id). SCOs are immutable: they carry only what identifies
  them (and the ``chain``, in FundTrail's property extension :data:`CRYPTO_EXTENSION`, defined by
  :func:`extension_definitions`), so the same address is the same object in every package. The
  community extension keeps amounts as JSON numbers of coins, which cannot hold exact values; FundTrail
  leaves those out;
* the case's analysis in the same property extension on the ``report``: per wallet its roles (seed,
  traced, endpoint), the exact amount traced to it (a string of base units), its attribution (entity,
  category, jurisdiction), and the traced flows (transaction, from, to, value, tainted value, hop);
* ``indicator`` objects (pattern ``[cryptocurrency-wallet:value = '...']``) for the addresses the crime
  paid into (``malicious-activity``) and for sanctioned addresses (``attribution``), each
  ``related-to`` its wallet;
* an ``identity`` per attributed service (the exchange a trace reached), ``related-to`` its wallets;
* the ``report`` of the case (title, offence, what the package holds) referring to every object;
* the signed envelope as a ``fundtrail-package`` object (a new SDO, :data:`PACKAGE_EXTENSION`) that
  pins every other object by the SHA-256 of its canonical JSON, so that the package survives being
  split into objects by a TAXII server and reassembled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import stix2
from stix2 import CustomObservable
from stix2.exceptions import STIXError
from stix2.properties import DictionaryProperty, ListProperty, StringProperty, TimestampProperty

from fundtrail.domain.addresses import canonical_address
from fundtrail.domain.chains import CHAINS, get_chain
from fundtrail.domain.sharing import TLP_STIX_EXTENSION, TLP_STIX_IDS, DataCategory, Pap, Tlp
from fundtrail.errors import FundTrailError, IntegrityError
from fundtrail.sharing.content import CaseContent
from fundtrail.sharing.envelope import Envelope, object_sha256
from fundtrail.sharing.envelope import parse as parse_envelope

log = logging.getLogger(__name__)

WALLET_EXTENSION = "extension-definition--be78509e-6958-51b1-8b26-d17ee0eba2d7"
TRANSACTION_EXTENSION = "extension-definition--151d042d-4dcf-5e44-843f-1024440318e5"
CRYPTO_EXTENSION = "extension-definition--6f0c3a6e-1d0b-4c83-8a55-3b8f2f9f4c21"
PACKAGE_EXTENSION = "extension-definition--0b6f3a52-7c38-4b2b-9f5e-2d0d2f1d7a01"
PACKAGE_TYPE = "fundtrail-package"
FUNDTRAIL_IDENTITY = "identity--8c3b8f2e-3f5d-4e3a-9d5e-6b1f2a7c9e10"
"""The identity that defines FundTrail's two extensions (the same in every bundle)."""

EXTENSIONS_CREATED = "2026-01-01T00:00:00.000Z"
STABLE_CREATED = "2020-01-01T00:00:00.000Z"
"""``created`` of objects whose id does not depend on the case (agencies, services, their links): an object
keeps its ``created`` through all its versions."""

CRYPTO_SCHEMA = (
    "FundTrail cryptocurrency properties (property-extension). On cryptocurrency-wallet and "
    "cryptocurrency-transaction: chain (FundTrail chain name, e.g. btc, eth); nothing else, so that "
    "the same address or transaction is the same immutable object in every package. On report: the "
    "case's analysis: case (case number); wallets: list of {wallet_ref, chain, roles (seed, traced, "
    "endpoint:<reason>, subject roles), asset ('native' or a token contract), amount (string of base "
    "units traced to the wallet), entity, category (GraphSense concept), jurisdiction (ISO 3166-1 "
    "alpha-2)}; flows: list of {transaction_ref, from_ref, to_ref, asset, value and tainted_value "
    "(strings of base units, exact), hop (integer)}. Amounts are never JSON numbers."
)
PACKAGE_SCHEMA = (
    "FundTrail package (new-sdo): envelope holds the signed envelope of the package (JSON object: "
    "package_id, format, created, sender and recipient {name, country, key_id}, agreement, legal_basis, "
    "case, marking {tlp, pap}, categories, pseudonymised, retention_days, onward_sharing, contents.objects "
    "{STIX id: SHA-256 of the object's canonical JSON (sorted keys, compact, UTF-8)}, signature "
    "{algorithm: ed25519, key_id, value: base64}). The signature covers the canonical JSON of the envelope "
    "without its signature."
)


@CustomObservable(
    "cryptocurrency-wallet",
    [("value", StringProperty(required=True))],
    extension_name=WALLET_EXTENSION,
    id_contrib_props=["value"],
)
class CryptocurrencyWallet:
    """A cryptocurrency address (the community's published new-SCO extension)."""

    if TYPE_CHECKING:  # the (untyped) decorator makes it a stix2 observable, built from its properties
        def __init__(self, **properties: Any) -> None: ...


@CustomObservable(
    "cryptocurrency-transaction",
    [
        ("symbol", StringProperty(required=True)),
        ("value", StringProperty(required=True)),
        ("execution_time", TimestampProperty()),
        ("input", ListProperty(DictionaryProperty())),
        ("output", ListProperty(DictionaryProperty())),
    ],
    extension_name=TRANSACTION_EXTENSION,
    id_contrib_props=["symbol", "value"],
)
class CryptocurrencyTransaction:
    """A cryptocurrency transaction (the community's published new-SCO extension)."""

    if TYPE_CHECKING:  # the (untyped) decorator makes it a stix2 observable, built from its properties
        def __init__(self, **properties: Any) -> None: ...


def tlp_marking(tlp: Tlp) -> stix2.MarkingDefinition:
    """The published TLP 2.0 marking definition of ``tlp``."""
    return stix2.MarkingDefinition(
        id=TLP_STIX_IDS[tlp],
        created="2022-10-01T00:00:00.000Z",
        name=tlp.label,
        extensions={TLP_STIX_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": tlp.value}},
        allow_custom=True,
    )


def pap_marking(pap: Pap) -> stix2.MarkingDefinition:
    """A statement marking for a PAP level (stable id per level)."""
    return stix2.MarkingDefinition(
        id=f"marking-definition--{uuid.uuid5(uuid.NAMESPACE_URL, 'fundtrail:pap:' + pap.value)}",
        created=EXTENSIONS_CREATED,
        name=pap.label,
        definition_type="statement",
        definition={"statement": f"{pap.label}: {pap.meaning}"},
    )


def stable_id(kind: str, *parts: str) -> str:
    """A STIX id that is the same for the same parts (UUID version 4 layout, hashed, not random)."""
    digest = hashlib.sha256("\x1f".join(("fundtrail", kind, *parts)).encode()).digest()
    return f"{kind}--{uuid.UUID(bytes=digest[:16], version=4)}"


def agency_identity_id(key_id: str) -> str:
    """The identity id of an agency: stable for its key."""
    return stable_id("identity", "agency", key_id)


@dataclass
class BundleBuilder:
    """Collects the objects of a bundle; every object but markings gets the package's markings."""

    tlp: Tlp
    pap: Pap
    now: datetime
    created: datetime
    objects: dict[str, Any] = field(default_factory=dict)

    @property
    def markings(self) -> list[str]:
        """The marking refs every object carries."""
        return [TLP_STIX_IDS[self.tlp], pap_marking(self.pap).id]

    def add(self, obj: Any) -> Any:
        """Add an object (the first of an id wins) and return it."""
        self.objects.setdefault(obj["id"], obj)
        return obj

    def sdo(self, cls: type, kind: str, key: Iterable[str], *, created: Any = None, **props: Any) -> Any:
        """An SDO with a stable id, created at the case's creation (or ``created``) and modified now."""
        return self.add(
            cls(
                id=stable_id(kind, *key),
                created=created or self.created,
                modified=self.now,
                object_marking_refs=self.markings,
                allow_custom=True,
                **props,
            )
        )


def _pattern_value(address: str) -> str:
    return address.replace("\\", "\\\\").replace("'", "\\'")


def extension_definitions() -> list[dict[str, Any]]:
    """FundTrail's two STIX extension definitions and the identity that defines them.

    They are not put in packages: TAXII servers that read an object's ``version`` property as a TAXII
    version timestamp (OASIS ``medallion``) fail on every request that touches an extension definition.
    Partners get them from this function (``fundtrail share stix-extensions``) or the documentation.
    """
    objects = [
        stix2.Identity(
            id=FUNDTRAIL_IDENTITY,
            created=EXTENSIONS_CREATED,
            modified=EXTENSIONS_CREATED,
            name="FundTrail",
            identity_class="system",
            description="Defines the FundTrail STIX extensions",
        ),
        stix2.ExtensionDefinition(
            id=CRYPTO_EXTENSION,
            created=EXTENSIONS_CREATED,
            modified=EXTENSIONS_CREATED,
            created_by_ref=FUNDTRAIL_IDENTITY,
            name="FundTrail cryptocurrency properties",
            description="Chains of cryptocurrency objects; a case's analysis (roles, exact amounts, "
            "attribution, traced flows) on its report.",
            schema=CRYPTO_SCHEMA,
            version="1.0",
            extension_types=["property-extension"],
        ),
        stix2.ExtensionDefinition(
            id=PACKAGE_EXTENSION,
            created=EXTENSIONS_CREATED,
            modified=EXTENSIONS_CREATED,
            created_by_ref=FUNDTRAIL_IDENTITY,
            name="FundTrail package",
            description="The signed envelope of a FundTrail package.",
            schema=PACKAGE_SCHEMA,
            version="1.0",
            extension_types=["new-sdo"],
        ),
    ]
    return [json.loads(o.serialize()) for o in objects]


def build_bundle(
    content: CaseContent,
    categories: frozenset[DataCategory],
    *,
    tlp: Tlp,
    pap: Pap,
    sender_name: str,
    sender_country: str,
    sender_key_id: str,
    now: datetime,
    sanctioned: Mapping[tuple[str, str], list[str]] | None = None,
    include_summary: bool = False,
) -> list[dict[str, Any]]:
    """The STIX objects (JSON values) of a case, limited to ``categories``; the envelope comes later."""
    created = min(content.created_at, now)
    b = BundleBuilder(tlp, pap, now, created)
    b.add(tlp_marking(tlp))
    b.add(pap_marking(pap))
    me = b.add(
        stix2.Identity(
            id=agency_identity_id(sender_key_id),
            created=STABLE_CREATED,
            modified=now,
            name=sender_name,
            identity_class="organization",
            sectors=["government-national"],
            description="Law-enforcement agency",
            x_fundtrail_country=sender_country,
            x_fundtrail_key_id=sender_key_id,
            object_marking_refs=b.markings,
            allow_custom=True,
        )
    )
    with_tags = DataCategory.ATTRIBUTION_TAGS in categories
    with_flows = DataCategory.TRACES in categories
    sanctioned = sanctioned or {}
    wallet_ids: dict[tuple[str, str | None], str] = {}  # flows' ends may be None
    refs: list[str] = []
    analysis: dict[str, Any] = {"extension_type": "property-extension", "case": content.number, "wallets": []}
    for (chain, address), w in sorted(content.wallets.items()):
        wallet = b.add(
            CryptocurrencyWallet(
                value=address,
                object_marking_refs=b.markings,
                extensions={CRYPTO_EXTENSION: {"extension_type": "property-extension", "chain": chain}},
                allow_custom=True,
            )
        )
        wallet_ids[(chain, address)] = wallet.id
        refs.append(wallet.id)
        entry: dict[str, Any] = {"wallet_ref": wallet.id, "chain": chain, "roles": sorted(w.roles)}
        if w.asset:
            entry["asset"] = w.asset
        if w.amount is not None:
            entry["amount"] = str(w.amount)
        if with_tags:
            for name in ("entity", "category", "jurisdiction"):
                if getattr(w, name):
                    entry[name] = getattr(w, name)
        analysis["wallets"].append(entry)
    tx_ids: dict[tuple[str, str], str] = {}
    for chain, txid in sorted(content.transactions):
        symbol = get_chain(chain).symbol if chain in CHAINS else chain.upper()
        tx = b.add(
            CryptocurrencyTransaction(
                symbol=symbol,
                value=txid,
                object_marking_refs=b.markings,
                extensions={CRYPTO_EXTENSION: {"extension_type": "property-extension", "chain": chain}},
                allow_custom=True,
            )
        )
        tx_ids[(chain, txid)] = tx.id
        refs.append(tx.id)
    if with_flows:
        analysis["flows"] = [
            {
                "transaction_ref": tx_ids[(f.chain, f.txid)],
                **(
                    {"from_ref": wallet_ids[(f.chain, f.source)]} if (f.chain, f.source) in wallet_ids else {}
                ),
                **({"to_ref": wallet_ids[(f.chain, f.target)]} if (f.chain, f.target) in wallet_ids else {}),
                "asset": f.asset,
                "value": str(f.value),
                "tainted_value": str(f.tainted_value),
                "hop": f.hop,
            }
            for f in content.flows
            if (f.chain, f.txid) in tx_ids
        ]
    for (chain, address), w in sorted(content.wallets.items()):
        kinds: list[tuple[str, str, str]] = []
        if w.is_seed or w.abuse:
            kinds.append(
                (
                    "malicious-activity",
                    f"Address paid by the crime of case {content.number}",
                    w.abuse or "criminal proceeds",
                )
            )
        if with_tags and sanctioned.get((chain, address)):
            kinds.append(
                (
                    "attribution",
                    f"Sanctioned address ({', '.join(sanctioned[(chain, address)])})",
                    "sanctioned",
                )
            )
        for indicator_type, description, what in kinds:
            ind = b.sdo(
                stix2.Indicator,
                "indicator",
                (content.number, chain, address, indicator_type),
                created_by_ref=me.id,
                name=f"{what}: {address}",
                description=description,
                indicator_types=[indicator_type],
                pattern_type="stix",
                pattern=f"[cryptocurrency-wallet:value = '{_pattern_value(address)}']",
                valid_from=created,
            )
            rel = b.sdo(
                stix2.Relationship,
                "relationship",
                (ind.id, "related-to", wallet_ids[(chain, address)]),
                created_by_ref=me.id,
                relationship_type="related-to",
                source_ref=ind.id,
                target_ref=wallet_ids[(chain, address)],
                description="the indicator's address",
            )
            refs += [ind.id, rel.id]
    if with_tags:
        for (chain, address), w in sorted(content.wallets.items()):
            if not w.entity:
                continue
            sectors = (
                {"sectors": ["financial-services"]} if w.category in ("exchange", "payment_processor") else {}
            )
            org = b.sdo(
                stix2.Identity,
                "identity",
                ("entity", w.entity),
                created=STABLE_CREATED,
                created_by_ref=me.id,
                name=w.entity,
                identity_class="organization",
                description=f"{w.category or 'service'} (attribution)",
                **sectors,
            )
            rel = b.sdo(
                stix2.Relationship,
                "relationship",
                (wallet_ids[(chain, address)], "related-to", org.id),
                created=STABLE_CREATED,
                created_by_ref=me.id,
                relationship_type="related-to",
                source_ref=wallet_ids[(chain, address)],
                target_ref=org.id,
                description=f"attributed to {w.entity}",
            )
            refs += [org.id, rel.id]
    report_description = [
        f"Case {content.number}" + (f" ({content.offence})" if content.offence else "") + ".",
        f"{len(content.wallets)} addresses, {len(content.transactions)} transactions"
        + (f", {len(content.flows)} traced flows" if with_flows else "")
        + ".",
    ]
    if include_summary and content.summary:
        report_description.append(content.summary)
    b.sdo(
        stix2.Report,
        "report",
        (content.number, sender_key_id),
        created_by_ref=me.id,
        name=f"{content.number}: {content.title}",
        description=" ".join(report_description),
        report_types=["threat-report"],
        published=now,
        object_refs=[me.id, *refs] or [me.id],
        extensions={CRYPTO_EXTENSION: analysis},
    )
    return [json.loads(o.serialize()) if hasattr(o, "serialize") else dict(o) for o in b.objects.values()]


def package_object(envelope: Envelope, sender_identity: str) -> dict[str, Any]:
    """The ``fundtrail-package`` SDO carrying a signed envelope."""
    return {
        "type": PACKAGE_TYPE,
        "spec_version": "2.1",
        "id": f"{PACKAGE_TYPE}--{envelope.package_id}",
        "created": envelope.created,
        "modified": envelope.created,
        "created_by_ref": sender_identity,
        "envelope": envelope.document(),
        "extensions": {PACKAGE_EXTENSION: {"extension_type": "new-sdo"}},
    }


def contents_of(objects: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """``{id: sha256}`` of the objects an envelope pins."""
    return {o["id"]: object_sha256(o) for o in objects}


def bundle(objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A STIX 2.1 bundle of ``objects``."""
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": list(objects)}


# ------------------------------------------------------------------------------------------ reading


@dataclass
class ReadPackage:
    """A STIX package split into its envelope and its objects."""

    envelope: Envelope
    objects: list[dict[str, Any]]


def split_package(objects: Iterable[Mapping[str, Any]], source: str) -> ReadPackage:
    """The envelope object and the objects it pins, checked against each other.

    IntegrityError when there is not exactly one envelope, an object is missing, changed, or not
    pinned by it.
    """
    items = [dict(o) for o in objects]
    envelopes = [o for o in items if o.get("type") == PACKAGE_TYPE]
    if len(envelopes) != 1:
        raise IntegrityError(f"{source}: expected one signed {PACKAGE_TYPE} object, found {len(envelopes)}")
    envelope = parse_envelope(envelopes[0].get("envelope"), source)
    if envelopes[0].get("id") != f"{PACKAGE_TYPE}--{envelope.package_id}":
        raise IntegrityError(f"{source}: the {PACKAGE_TYPE} object's id does not match its envelope")
    pinned = envelope.contents.objects or {}
    rest = [o for o in items if o.get("type") != PACKAGE_TYPE]
    have = {}
    for o in rest:
        if not isinstance(o.get("id"), str):
            raise IntegrityError(f"{source}: an object has no id")
        have[o["id"]] = o
    missing = sorted(set(pinned) - set(have))
    extra = sorted(set(have) - set(pinned))
    changed = sorted(i for i in set(pinned) & set(have) if object_sha256(have[i]) != pinned[i])
    if missing or extra or changed:
        parts = (
            ([f"changed: {', '.join(changed[:3])}"] if changed else [])
            + ([f"missing: {', '.join(missing[:3])}"] if missing else [])
            + ([f"not signed: {', '.join(extra[:3])}"] if extra else [])
        )
        raise IntegrityError(f"{source}: the objects do not match the signed envelope ({'; '.join(parts)})")
    return ReadPackage(envelope, [have[i] for i in sorted(have)])


def read_bundle_file(document: Any, source: str) -> ReadPackage:
    """A package from a bundle document."""
    if (
        not isinstance(document, dict)
        or document.get("type") != "bundle"
        or not isinstance(document.get("objects"), list)
    ):
        raise IntegrityError(f"{source}: not a STIX 2.1 bundle")
    return split_package(document["objects"], source)


@dataclass
class StixItem:
    """What the import stores of one object."""

    kind: str
    ref: str
    chain: str | None
    value: str | None
    label: str | None
    content: dict[str, Any]


def _ext(obj: Mapping[str, Any]) -> dict[str, Any]:
    ext = (obj.get("extensions") or {}).get(CRYPTO_EXTENSION) or {}
    return ext if isinstance(ext, dict) else {}


def _digits(value: Any, where: str) -> None:
    if not isinstance(value, str) or not value.isdigit():
        raise ValueError(f"{where} must be a string of base units (digits), got {value!r}")


def check_objects(package: ReadPackage, source: str) -> tuple[list[StixItem], frozenset[DataCategory]]:
    """Validate every object (STIX 2.1 via ``stix2``, FundTrail's extension, markings); the items to store
    and the categories the objects actually carry. IntegrityError naming the first bad object."""
    env = package.envelope
    tlp_id = TLP_STIX_IDS[env.marking.tlp]
    items: list[StixItem] = []
    carried: set[DataCategory] = set()
    ids = {o.get("id") for o in package.objects}
    labels: dict[str, str] = {}
    for obj in package.objects:
        if obj.get("type") == "report":
            for w in _ext(obj).get("wallets") or []:
                if isinstance(w, dict) and isinstance(w.get("entity"), str):
                    labels[str(w.get("wallet_ref"))] = w["entity"]
    for obj in package.objects:
        oid = obj.get("id", "?")
        try:
            if obj.get("spec_version") not in (None, "2.1") or (
                obj.get("type") != "bundle" and "spec_version" not in obj
            ):
                raise ValueError("not a STIX 2.1 object (spec_version)")
            stix2.parse(obj, allow_custom=True)
            kind = obj["type"]
            if kind in ("extension-definition",) or oid == FUNDTRAIL_IDENTITY:
                raise ValueError("extension definitions do not travel in packages")
            if kind != "marking-definition":
                if tlp_id not in (obj.get("object_marking_refs") or []):
                    raise ValueError(f"not marked {env.marking.tlp.label} as the envelope says")
            if kind == "marking-definition" and obj["id"] in TLP_STIX_IDS.values() and obj["id"] != tlp_id:
                raise ValueError("a TLP marking other than the envelope's")
            ext = _ext(obj)
            if kind == "cryptocurrency-wallet":
                chain = str(ext.get("chain", ""))
                if chain not in CHAINS:
                    raise ValueError(f"unknown chain {chain!r}")
                address = canonical_address(chain, str(obj["value"]))
                carried.add(DataCategory.ADDRESSES_AND_TRANSACTIONS)
                items.append(StixItem("wallet", oid, chain, address, labels.get(oid), obj))
            elif kind == "cryptocurrency-transaction":
                chain = str(ext.get("chain", ""))
                if chain not in CHAINS:
                    raise ValueError(f"unknown chain {chain!r}")
                carried.add(DataCategory.ADDRESSES_AND_TRANSACTIONS)
                items.append(StixItem("transaction", oid, chain, str(obj["value"]).lower(), None, obj))
            elif kind == "report" and ext:
                carried |= _check_analysis(ext, ids)
                items.append(StixItem(kind, oid, None, None, obj.get("name"), obj))
            elif kind == "indicator":
                types = obj.get("indicator_types") or []
                carried.add(
                    DataCategory.ATTRIBUTION_TAGS
                    if "attribution" in types
                    else DataCategory.ADDRESSES_AND_TRANSACTIONS
                )
                items.append(
                    StixItem(
                        "indicator", oid, None, _pattern_address(obj.get("pattern", "")), obj.get("name"), obj
                    )
                )
            elif kind == "identity" and "x_fundtrail_key_id" not in obj:
                carried.add(DataCategory.ATTRIBUTION_TAGS)
                items.append(StixItem("entity", oid, None, obj.get("name"), obj.get("name"), obj))
            elif kind == "identity" and obj.get("x_fundtrail_key_id") not in (None, env.sender.key_id):
                raise ValueError("the sending agency's identity names another key than the envelope's sender")
            elif kind in ("report", "relationship", "identity"):
                items.append(StixItem(kind, oid, None, None, obj.get("name"), obj))
        except (STIXError, ValueError, KeyError, TypeError, FundTrailError) as error:
            raise IntegrityError(f"{source}: object {oid} is not valid: {error}") from None
    return items, frozenset(carried)


def _check_analysis(ext: Mapping[str, Any], ids: set[Any]) -> set[DataCategory]:
    """Check the case analysis a report carries; the categories it holds."""
    carried: set[DataCategory] = set()
    wallets, flows = ext.get("wallets") or [], ext.get("flows") or []
    if not isinstance(wallets, list) or not isinstance(flows, list):
        raise ValueError("the case analysis must hold lists of wallets and flows")
    for i, w in enumerate(wallets):
        if w.get("wallet_ref") not in ids:
            raise ValueError(f"wallets[{i}] refers to a wallet the package does not hold")
        if "amount" in w:
            _digits(w["amount"], f"wallets[{i}].amount")
        if w.get("entity") or w.get("category"):
            carried.add(DataCategory.ATTRIBUTION_TAGS)
    for i, f in enumerate(flows):
        for ref in ("transaction_ref", "from_ref", "to_ref"):
            if ref in f and f[ref] not in ids:
                raise ValueError(f"flows[{i}].{ref} refers to an object the package does not hold")
        _digits(f.get("value"), f"flows[{i}].value")
        _digits(f.get("tainted_value"), f"flows[{i}].tainted_value")
        carried.add(DataCategory.TRACES)
    return carried


def _pattern_address(pattern: str) -> str | None:
    prefix = "[cryptocurrency-wallet:value = '"
    if pattern.startswith(prefix) and pattern.endswith("']"):
        return pattern[len(prefix) : -2].replace("\\'", "'").replace("\\\\", "\\")
    return None


# ------------------------------------------------------------------------------------------ shared watches

WATCH_TYPE = "fundtrail-watch"
WATCH_EXTENSION = "extension-definition--5d2c7b1e-8a43-4f0e-9c61-3e7a2b9d4f18"
"""A shared watch (new SDO): the watch's addresses, the pseudonymised case reference and the marking, signed
by the sending agency (``signature`` over the canonical JSON of the object without it)."""


def watch_object(
    body: Mapping[str, Any], *, tlp: Tlp, agreement: str, key_id: str, now: datetime, sign: Any
) -> dict[str, Any]:
    """The signed ``fundtrail-watch`` SDO of a shared watch (``sign`` signs a document: the agency key's
    :func:`~fundtrail.sharing.signing.sign_document`). Its id is stable per sending key and watch, so sharing
    the watch again publishes a new version of the same object."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    obj: dict[str, Any] = {
        "type": WATCH_TYPE,
        "spec_version": "2.1",
        "id": stable_id(WATCH_TYPE, key_id, str(body.get("watch"))),
        "created": stamp,
        "modified": stamp,
        "created_by_ref": agency_identity_id(key_id),
        "object_marking_refs": [TLP_STIX_IDS[tlp]],
        "agreement": agreement,
        "watch": dict(body),
        "extensions": {WATCH_EXTENSION: {"extension_type": "new-sdo"}},
    }
    obj["signature"] = sign(obj)
    return obj


def watch_objects(obj: dict[str, Any], tlp: Tlp) -> list[dict[str, Any]]:
    """What a shared watch travels as: its TLP marking definition and the watch object."""
    return [json.loads(tlp_marking(tlp).serialize()), obj]


@dataclass(frozen=True)
class ReadWatch:
    """A ``fundtrail-watch`` object read back: who signed it, the watch body, the unsigned document."""

    id: str
    modified: str
    key_id: str
    agreement: str | None
    body: dict[str, Any]
    unsigned: dict[str, Any]
    signature: dict[str, Any]


def read_watch_object(obj: Mapping[str, Any], source: str) -> ReadWatch:
    """Check a ``fundtrail-watch`` object's shape and marking (the signature is checked by the caller, with
    the partner's key); IntegrityError when it is malformed."""
    doc = dict(obj)
    signature, body = doc.get("signature"), doc.get("watch")
    if doc.get("type") != WATCH_TYPE or doc.get("spec_version") != "2.1":
        raise IntegrityError(f"{source}: not a STIX 2.1 {WATCH_TYPE} object")
    if not isinstance(signature, dict) or not isinstance(signature.get("key_id"), str):
        raise IntegrityError(f"{source}: {doc.get('id')} is not signed")
    if not isinstance(body, dict):
        raise IntegrityError(f"{source}: {doc.get('id')} holds no watch")
    marking = str(body.get("marking") or "")
    tlp_ids = {t.label: i for t, i in TLP_STIX_IDS.items()}
    if tlp_ids.get(marking) not in (doc.get("object_marking_refs") or []):
        raise IntegrityError(f"{source}: {doc.get('id')} is not marked {marking or 'with a TLP'} as it says")
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    agreement = doc.get("agreement")
    return ReadWatch(
        str(doc.get("id")),
        str(doc.get("modified")),
        signature["key_id"],
        agreement if isinstance(agreement, str) else None,
        body,
        unsigned,
        signature,
    )


def latest_watches(pulled: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The newest version of every ``fundtrail-watch`` object among pulled objects."""
    newest: dict[str, dict[str, Any]] = {}
    for obj in pulled:
        if isinstance(obj, Mapping) and obj.get("type") == WATCH_TYPE and isinstance(obj.get("id"), str):
            held = newest.get(obj["id"])
            if held is None or str(obj.get("modified")) > str(held.get("modified")):
                newest[obj["id"]] = dict(obj)
    return [newest[i] for i in sorted(newest)]
