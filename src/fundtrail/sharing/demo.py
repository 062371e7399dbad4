"""The cooperation layer's demo step: the sharing agreement ``demo-partner`` in the demo home.

The partner is fictional (the Seychelles FIU of the demo world, where one of the exchanges the ransom
reached is registered); its public key is derived from the demo seed, so that the agreement is the same
on every run, and its private key is nowhere. Registered before the audit step, so that the audit
verification covers it; idempotent.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fundtrail.domain.sharing import DataCategory, Pap, Tlp
from fundtrail.scenarios.demo import DEMO_STEPS, DemoContext, DemoStep, add_step

AGREEMENT = "demo-partner"
PARTNER = "Demo Partner FIU (Seychelles)"
COUNTRY = "SC"
LEGAL_BASIS = (
    "Budapest Convention on Cybercrime, arts. 25-35 (mutual assistance); Egmont Group principles "
    "for information exchange between FIUs"
)


def demo_partner_key(seed: int) -> str:
    """The fictional partner's public key (base64 raw), the same for the same seed."""
    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"demo-partner:{seed}".encode()).digest())
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def step_agreement(ctx: DemoContext) -> str:
    """Record the agreement ``demo-partner`` (amber, pseudonymised, 90 days, no onward sharing)."""
    from fundtrail.cases.context import operation
    from fundtrail.cases.db import CaseDB
    from fundtrail.errors import NotFoundError
    from fundtrail.sharing.agreements import (
        AgreementSpec,
        agreements_for_key,
        create_agreement,
        get_agreement,
    )

    db = CaseDB.open(ctx.home)
    try:
        with operation(db, None, user_required=False) as op:
            try:
                existing = get_agreement(op, AGREEMENT)
            except NotFoundError:
                existing = None
            if existing is None:
                key = demo_partner_key(ctx.seed)
                create_agreement(
                    op,
                    AgreementSpec(
                        name=AGREEMENT,
                        partner_name=PARTNER,
                        partner_country=COUNTRY,
                        partner_public_key=key,
                        legal_basis=LEGAL_BASIS,
                        categories=frozenset(
                            {
                                DataCategory.ADDRESSES_AND_TRANSACTIONS,
                                DataCategory.ATTRIBUTION_TAGS,
                                DataCategory.TRACES,
                                DataCategory.EVIDENCE,
                            }
                        ),
                        tlp=Tlp.AMBER,
                        pap=Pap.AMBER,
                        pseudonymise=True,
                        retention_days=90,
                        onward_sharing=False,
                        deadlines={"freeze": 5, "preservation": 3},
                    ),
                    reason="demo: an agreement to exchange the ransomware case with a partner",
                )
                verb = "recorded"
            else:
                verb = "already recorded"
            key_id = (existing or get_agreement(op, AGREEMENT)).partner_key_id
            assert agreements_for_key(op, key_id)
    finally:
        db.close()
    number = ctx.state.get("case_number")
    if number:
        ctx.hints.append(
            f"share the case with the partner: fundtrail share export {number} --agreement {AGREEMENT} "
            f"--format stix -o case.stix.json --home {ctx.home} --as investigator"
        )
    return (
        f"agreement {AGREEMENT} with {PARTNER} {verb}: addresses, tags, traces and evidence, TLP:AMBER, "
        f"PAP:AMBER, 90 days, no onward sharing (fundtrail agreement show {AGREEMENT})"
    )


STEP = DemoStep("agreement", "Record the sharing agreement demo-partner", step_agreement)


def register() -> None:
    """Add the step to the demo, before the audit verification when the case layer's steps are there."""
    names = [s.name for s in DEMO_STEPS]
    if "audit" in names:
        add_step(STEP, before="audit")
    else:
        add_step(STEP)


register()
