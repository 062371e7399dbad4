"""The demo partner of the sharing agreement ``demo-partner`` (recorded by the demo's agency steps,
:mod:`fundtrail.scenarios.agency`).

The partner is fictional (the Seychelles FIU of the demo world, where one of the exchanges the ransom
reached is registered). Its key pair is made at random for each demo home, never derived from the demo
seed (a key anyone can derive lets anyone forge the partner's packages and signed calls): the private
key stays in the home, ``HOME/keys/demo-partner-ed25519.pem`` (0600, "demo" in its name), so that demo
and test code can act as the partner (:func:`demo_partner_key`), and the public key is pinned in the
home's trust file for ``partner:demo-partner`` when the agreement is recorded.
"""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fundtrail.audit.keys import AgencyKey, create_key_file, key_id_of
from fundtrail.errors import InputError, NotFoundError

AGREEMENT = "demo-partner"
PARTNER = "Demo Partner FIU (Seychelles)"
COUNTRY = "SC"
LEGAL_BASIS = (
    "Budapest Convention on Cybercrime, arts. 25-35 (mutual assistance); Egmont Group principles "
    "for information exchange between FIUs"
)


DEMO_PARTNER_KEY_FILE = "demo-partner-ed25519.pem"
"""The demo partner's private key in the demo home's ``keys/`` folder (a demo key: never a real one)."""


def demo_partner_key_path(home: Path) -> Path:
    """Where the demo home keeps the demo partner's private key."""
    return Path(home) / "keys" / DEMO_PARTNER_KEY_FILE


def _as_key(private: Ed25519PrivateKey) -> AgencyKey:
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return AgencyKey(private, key_id_of(raw), base64.b64encode(raw).decode("ascii"))


def make_demo_partner_key(home: Path) -> AgencyKey:
    """The demo partner's key pair of ``home``: made at random (0600) when the home has none yet."""
    create_key_file(demo_partner_key_path(home))
    return demo_partner_key(home)


def demo_partner_key(home: Path) -> AgencyKey:
    """The demo partner's key pair, to sign as the partner in demos and tests; NotFoundError when the
    home has none (it was made by ``fundtrail demo``)."""
    path = demo_partner_key_path(home)
    if not path.is_file():
        raise NotFoundError("demo partner key", str(path))
    if path.stat().st_mode & 0o077:
        raise InputError(f"{path}: a private key must be readable by its owner only (chmod 600)")
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise InputError(f"{path}: not an Ed25519 private key")
    return _as_key(loaded)
