"""Fictional names and jurisdictions (ISO 3166 country codes) of the world's services and criminals.

Every name here is made up; none is meant to be, or to resemble, a real company or group.
"""

from __future__ import annotations

EXCHANGES: tuple[tuple[str, str], ...] = (
    ("Northwind Exchange", "US"),
    ("Baltic Bitbourse", "EE"),
    ("Coral Reef Trading", "SC"),
    ("Rheinmark Krypto", "DE"),
    ("Lion City Digital", "SG"),
    ("Maple Ledger", "CA"),
    ("Alpine Vault Exchange", "CH"),
    ("Harbor Street Exchange", "GB"),
    ("Sakura Mint", "JP"),
    ("Tagus Exchange", "PT"),
    ("Amber Coast Exchange", "LT"),
    ("Dune Digital", "AE"),
)
"""Exchanges: (name, jurisdiction)."""

MINING_POOLS: tuple[tuple[str, str], ...] = (
    ("Granite Pool", "US"),
    ("Aurora Hash", "IS"),
    ("Deepcore Mining", "KZ"),
    ("Tundra Pool", "CA"),
    ("Monsoon Hash", "SG"),
)
"""Mining pools: (name, jurisdiction)."""

PAYMENT_PROCESSOR = ("Bluefin Pay", "US")
CASINO = ("Lucky Comet Casino", "CW")
MARKET = ("Nightshade Bazaar", None)
"""A darknet market: where it operates from is not known."""
WASABI_COORDINATOR = ("Zephyr CoinJoin Coordinator", "PA")
WHIRLPOOL_COORDINATOR = ("Eddy Whirl Pools", "BZ")

RANSOMWARE_FAMILIES: tuple[str, ...] = (
    "ObsidianLock",
    "GlassViper",
    "NullHarbor",
    "QuietStorm",
    "InkMoth",
    "RustBloom",
)
THIEF_GROUPS: tuple[str, ...] = (
    "Harbinger crew",
    "Silent Comet group",
    "Pale Lantern team",
    "Iron Wren gang",
)


def actor_id(name: str) -> str:
    """The ActorPack id of a name: lower case, words joined by underscores."""
    return "_".join("".join(ch if ch.isalnum() else " " for ch in name.lower()).split())
