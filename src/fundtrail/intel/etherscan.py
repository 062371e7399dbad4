"""Etherscan address labels (public name tags) as Ethereum attribution tags.

Two shapes are read: ``combined/*.json`` (``{address: {"name": ..., "labels": [slug, ...]}}``) and
``accounts/<slug>.csv`` (``,Address,Name Tag,Balance,Txn Count``). Each file becomes one pack in
the tag store, converted to TagPack form so that it exports and re-imports like any other pack.
Label slugs map to taxonomy concepts (exchange names to ``exchange``, Tornado Cash and other mixers to
``mixing_service``, bridges and L2 gateways to ``defi_bridge``, ``gambling``); Etherscan's OFAC label
sets ``abuse: sanction``. Etherscan stays the visible source of every tag; every slug is kept in the
tag's ``context``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fundtrail.errors import ParseError
from fundtrail.intel.tagpacks import ImportResult, _sha256, pack_uri, parse_tagpack, store_pack
from fundtrail.store.chainstore import ChainStore

EXCHANGE_LABELS = frozenset({
    "binance", "binance-deposit", "coinbase", "kraken", "bitfinex", "bitstamp", "gemini", "huobi", "kucoin",
    "okx", "ftx", "poloniex", "bithumb", "crypto-com", "gate-io", "hitbtc", "bitmart", "deribit", "ascendex",
    "korbit", "paribu", "coinsquare", "coinhako", "coinmetro", "hoo-com", "bitcoin-suisse", "trade-io",
    "coinbit", "coss-io", "maskex",
})
MIXER_LABELS = frozenset({"tornado-cash", "ethereum-mixer", "typhoon-cash"})
BRIDGE_LABELS = frozenset({
    "bridge", "across-protocol", "arbitrum", "arbitrum-one", "arbitrum-nova", "optimism", "polygon-matic",
    "hop-protocol", "multichain", "wormhole", "celer-network", "bridged-token", "synapse", "connext",
})
GAMBLING_LABELS = frozenset({"gambling"})
SANCTION_LABELS = frozenset({"ofac-sanctions-lists"})

# The first matching group decides the category.
_CATEGORY_ORDER: tuple[tuple[frozenset[str], str], ...] = (
    (MIXER_LABELS, "mixing_service"), (BRIDGE_LABELS, "defi_bridge"), (EXCHANGE_LABELS, "exchange"),
    (GAMBLING_LABELS, "gambling"),
)


def category_for_labels(labels: list[str]) -> tuple[str | None, str | None]:
    """(category, abuse) of an address with these Etherscan label slugs."""
    slugs = {s.strip().lower() for s in labels}
    category = next((cat for group, cat in _CATEGORY_ORDER if slugs & group), None)
    abuse = "sanction" if slugs & SANCTION_LABELS else None
    return category, abuse


def _tag(address: str, name: str, labels: list[str]) -> dict[str, Any]:
    category, abuse = category_for_labels(labels)
    tag: dict[str, Any] = {
        "address": address,
        "label": name.strip() or "Etherscan: " + ", ".join(labels),
        "source": f"https://etherscan.io/address/{address.lower()}",
    }
    if category:
        tag["category"] = category
    if abuse:
        tag["abuse"] = abuse
    tag["context"] = json.dumps({"etherscan_labels": labels}, separators=(",", ":"))
    return tag


def _read_text(path: Path) -> str:
    """The file as UTF-8 text; ParseError naming the line of the first byte that is not UTF-8."""
    if path.is_dir():
        raise ParseError(str(path), None, "is a folder, not an Etherscan labels file")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ParseError(str(path), f"line {line}", f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset "
                                                    f"{exc.start})") from None


def _read_combined(path: Path) -> list[dict[str, Any]]:
    text = _read_text(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(str(path), f"line {exc.lineno}", f"not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise ParseError(str(path), None, "not valid JSON: nested too deeply") from None
    if not isinstance(data, Mapping):
        raise ParseError(str(path), None, "expected an object {address: {name, labels}}")
    tags = []
    for address, entry in data.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("labels", []), list):
            raise ParseError(str(path), address, "expected {\"name\": ..., \"labels\": [...]}")
        tags.append(_tag(address, str(entry.get("name") or ""), [str(s) for s in entry.get("labels", [])]))
    return tags


def _read_accounts_csv(path: Path) -> list[dict[str, Any]]:
    slug = path.stem
    tags = []
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    try:
        if not reader.fieldnames or "Address" not in reader.fieldnames:
            raise ParseError(str(path), "line 1", "expected a header with an Address column")
        for row in reader:
            address = (row.get("Address") or "").strip()
            if not address:
                raise ParseError(str(path), f"line {reader.line_num}", "empty Address")
            tags.append(_tag(address, row.get("Name Tag") or "", [slug]))
    except csv.Error as exc:
        raise ParseError(str(path), f"line {reader.line_num}", f"bad CSV: {exc}") from None
    return tags


def etherscan_pack(path: Path) -> dict[str, Any]:
    """An Etherscan labels file as a TagPack document (header and tags)."""
    path = Path(path)
    if path.suffix == ".json":
        tags, what = _read_combined(path), "combined labels"
    elif path.suffix == ".csv":
        tags, what = _read_accounts_csv(path), f"accounts labelled {path.stem!r}"
    else:
        raise ParseError(str(path), None, "Etherscan labels are .json (combined) or .csv (accounts) files")
    return {
        "title": f"Etherscan labels: {path.name}",
        "creator": "Etherscan",
        "description": f"Etherscan public name tags and labels ({what}), from {path.name}",
        "currency": "ETH",
        "confidence": "web_crawl",
        "source": "https://etherscan.io/labelcloud",
        "tags": tags,
    }


def import_etherscan_labels(store: ChainStore, path: Path, *, uri: str | None = None) -> ImportResult:
    """Import one Etherscan labels file (replacing an earlier import of the same file)."""
    path = Path(path)
    pack = parse_tagpack(etherscan_pack(path), str(path))
    return store_pack(store, pack, uri or pack_uri(path), kind="etherscan", sha256=_sha256(path))


def is_etherscan_file(path: Path) -> bool:
    """True for files in the Etherscan labels shapes (by extension)."""
    return Path(path).suffix in (".json", ".csv")
