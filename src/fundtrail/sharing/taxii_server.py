"""The collections of FundTrail's TAXII 2.1 server: one outbox and one inbox per partner agreement.

The server's routes are :mod:`fundtrail.api.routers.taxii`; what a collection is, its stable id and how
packages published for a partner to pull are recorded are cooperation facts, here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

STIX_MEDIA = "application/stix+json;version=2.1"
OUTBOX_TRANSPORT = "taxii-outbox"
"""How packages published for the partner to pull are recorded (their file under ``HOME/shared/outbox``)."""


def collection_id(kind: str, agreement: str) -> str:
    """The stable id of an agreement's outbox or inbox collection."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fundtrail:taxii:{kind}:{agreement}"))


@dataclass(frozen=True)
class Collection:
    """One of a partner's collections."""

    id: str
    kind: str
    agreement: str

    def to_dict(self) -> dict[str, Any]:
        """The TAXII collection resource."""
        outbox = self.kind == "outbox"
        return {
            "id": self.id,
            "title": f"{'Packages for' if outbox else 'Packages from'} partner ({self.agreement})",
            "description": (
                f"STIX packages published under agreement {self.agreement}"
                if outbox
                else f"Send STIX packages under agreement {self.agreement} here"
            ),
            "can_read": outbox,
            "can_write": not outbox,
            "media_types": [STIX_MEDIA],
        }


__all__ = ["OUTBOX_TRANSPORT", "STIX_MEDIA", "Collection", "collection_id"]
