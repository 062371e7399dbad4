"""Partners as witnesses of each other's audit logs.

Under a sharing agreement, an agency sends its newest signed tree head to the partner's FundTrail with a
consistency proof from the last head that partner countersigned (:func:`request_witness`). The partner
checks the head's signature with the key it pinned for the agreement and the proof against the head it
witnessed before (:func:`cosign`): a log that was rolled back, forked or rewritten cannot get a new
countersignature, and the partner keeps every head it countersigned. The sender stores the cosignature;
``fundtrail audit verify`` then reports the newest witnessed head and fails when the log no longer
extends it.

A witness learns a tree size, a root hash and a time: nothing of the case data in the log.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from fundtrail.audit import log as audit_log
from fundtrail.audit.keys import AgencyKey
from fundtrail.audit.models import AuditCosignature, WitnessedHead
from fundtrail.audit.verifier import SignedHead, _ed25519_ok, cosignature_payload, verify_consistency
from fundtrail.cases.context import Context
from fundtrail.errors import ConflictError, InputError, IntegrityError
from fundtrail.sharing.agreements import agreement_for_partner, get_agreement, pinned_partner_key
from fundtrail.sharing.partners import ClientFactory, http_client

log = logging.getLogger(__name__)

WITNESS_PATH = "/audit/witness"
MAX_PROOF = 128


def _cosigned(head: SignedHead, cosignature: str, when: str) -> dict[str, Any]:
    """The columns of a countersigned head."""
    return {
        "tree_size": head.tree_size,
        "root_hash": head.root_hash,
        "timestamp": head.timestamp,
        "key_id": head.key_id,
        "signature": head.signature,
        "cosignature": cosignature,
        "witnessed_at": when,
    }


def _cosign(key: AgencyKey, head: SignedHead) -> str:
    return key.sign(cosignature_payload(head.to_dict(), key.key_id))


def cosign(ctx: Context, partner_key_id: str, document: Any) -> dict[str, Any]:
    """Countersign a partner's signed tree head, if it extends the last one of theirs we countersigned.

    ``document``: ``{"head": <signed head>, "proof": [hex, ...]}`` where the proof is an RFC 9162
    consistency proof from the last head we witnessed for this partner (our answer names its size).
    """
    row = agreement_for_partner(ctx, partner_key_id)
    pinned = pinned_partner_key(ctx.home, row)
    if not isinstance(document, dict) or not isinstance(document.get("head"), dict):
        raise InputError('the body must be {"head": <signed tree head>, "proof": [...]}')
    try:
        head = SignedHead.from_dict(document["head"])
    except ValueError as error:
        raise InputError(str(error)) from None
    proof_doc = document.get("proof") or []
    if not isinstance(proof_doc, list) or len(proof_doc) > MAX_PROOF:
        raise InputError("the consistency proof must be a list of at most 128 hex hashes")
    try:
        proof = [bytes.fromhex(str(p)) for p in proof_doc]
    except ValueError:
        raise InputError("the consistency proof holds something that is not hex") from None
    bad = head.check_signature({pinned.key_id: pinned.raw})
    if bad:
        raise IntegrityError(f"refused to witness: {bad}")
    last = ctx.session.execute(
        select(WitnessedHead)
        .where(WitnessedHead.partner == row.name)
        .order_by(WitnessedHead.tree_size.desc(), WitnessedHead.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if last is not None:
        if head.tree_size < last.tree_size:
            raise ConflictError(
                f"refused to witness: the head covers {head.tree_size} records, fewer than the "
                f"{last.tree_size} witnessed on {last.witnessed_at}: the log was rolled back"
            )
        if not verify_consistency(
            last.tree_size,
            head.tree_size,
            bytes.fromhex(last.root_hash),
            bytes.fromhex(head.root_hash),
            proof,
        ):
            log.warning("agreement %s: a head that does not extend the witnessed one (fork)", row.name)
            raise ConflictError(
                f"refused to witness: the head of {head.tree_size} records does not extend the head of "
                f"{last.tree_size} witnessed on {last.witnessed_at} (wrong or missing consistency proof: "
                "the log was forked or rewritten)"
            )
    cosignature = _cosign(ctx.key, head)
    when = audit_log.timestamp(ctx.now)
    ctx.session.add(WitnessedHead(partner=row.name, **_cosigned(head, cosignature, when)))
    ctx.session.flush()
    return {"witness_key_id": ctx.key.key_id, "cosignature": cosignature, "witnessed_at": when}


def witnessed_size(ctx: Context, partner: str) -> int:
    """The size of the last head of ``partner`` we witnessed (0 when none)."""
    size = ctx.session.execute(
        select(WitnessedHead.tree_size)
        .where(WitnessedHead.partner == partner)
        .order_by(WitnessedHead.tree_size.desc())
        .limit(1)
    ).scalar_one_or_none()
    return int(size or 0)


def request_witness(ctx: Context, agreement: str, *, clients: ClientFactory = http_client) -> dict[str, Any]:
    """Have the partner of ``agreement`` countersign our newest signed head; store the cosignature."""
    row = get_agreement(ctx, agreement)
    if not row.active:
        raise InputError(f"agreement {agreement!r} is revoked")
    pinned = pinned_partner_key(ctx.home, row)
    head = audit_log.newest_head(ctx.session)
    if head is None:
        raise InputError("the audit log has no signed tree head yet")
    previous = ctx.session.execute(
        select(AuditCosignature.tree_size)
        .where(AuditCosignature.witness == row.name)
        .order_by(AuditCosignature.tree_size.desc())
        .limit(1)
    ).scalar_one_or_none()
    old = int(previous or 0)
    proof = audit_log.consistency_proof(ctx.session, old, head.tree_size) if 0 < old < head.tree_size else []
    client = clients(row, ctx.key)
    try:
        answer = client.call(
            "POST", WITNESS_PATH, {"head": head.to_dict(), "proof": [p.hex() for p in proof]}
        )
    finally:
        client.close()
    if not isinstance(answer, dict):
        raise IntegrityError(f"{row.name}: the witness answered something that is not a cosignature")
    witness_key_id = str(answer.get("witness_key_id", ""))
    cosignature = str(answer.get("cosignature", ""))
    if witness_key_id != pinned.key_id or not _ed25519_ok(
        pinned.raw, cosignature_payload(head.to_dict(), witness_key_id), cosignature
    ):
        raise IntegrityError(
            f"{row.name}: the cosignature is not by the key pinned for the agreement ({pinned.fingerprint})"
        )
    witnessed_at = str(answer.get("witnessed_at", ""))[:40]
    ctx.session.add(
        AuditCosignature(
            witness=row.name, witness_key_id=witness_key_id, **_cosigned(head, cosignature, witnessed_at)
        )
    )
    ctx.session.flush()
    return {
        **head.to_dict(),
        "witness": row.name,
        "witness_key_id": witness_key_id,
        "witnessed_at": witnessed_at,
    }
