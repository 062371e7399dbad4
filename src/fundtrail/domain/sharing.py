"""Cooperation rules: markings, data categories, sharing agreements and their checks, pseudonymisation,
and the bytes that signed exchanges cover. Pure: no I/O.

A :class:`Agreement` is what two agencies agreed to exchange: with whom (the partner agency and its
Ed25519 key), on which legal basis, which :class:`DataCategory` may cross, under which marking
(TLP 2.0 and PAP), whether personal fields are pseudonymised (keyed HMAC-SHA256, the key kept by the
sender), how long the receiver may keep what it receives, and whether the receiver may pass it on.

Every check raises :class:`~fundtrail.errors.PolicyViolationError` naming the agreement and the clause
that forbids the action, e.g. ``agreement 'demo-partner' §3 data categories``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from fundtrail.errors import InputError, PolicyViolationError


class Tlp(StrEnum):
    """Traffic Light Protocol 2.0: who a recipient may share with."""

    CLEAR = "clear"
    GREEN = "green"
    AMBER = "amber"
    AMBER_STRICT = "amber+strict"
    RED = "red"

    @property
    def label(self) -> str:
        """``TLP:AMBER+STRICT``."""
        return f"TLP:{self.value.upper()}"

    @property
    def rank(self) -> int:
        """0 (clear) to 4 (red): higher is more restrictive."""
        return _TLP_ORDER.index(self)

    @property
    def allows_onward_sharing(self) -> bool:
        """True when a recipient may pass the information beyond its own organisation.

        CLEAR and GREEN travel on (GREEN within the community); AMBER stays with the recipient
        organisation and its clients on a need-to-know basis; AMBER+STRICT and RED stay with the
        recipient organisation or the named recipients.
        """
        return self in (Tlp.CLEAR, Tlp.GREEN)

    @classmethod
    def parse(cls, text: str) -> Tlp:
        """``amber``, ``TLP:AMBER``, ``amber-strict`` ...; InputError otherwise."""
        key = text.strip().lower().removeprefix("tlp:").replace("_", "+").replace("-", "+")
        if key == "white":  # TLP 1.0's name for clear
            key = "clear"
        try:
            return cls(key)
        except ValueError:
            raise InputError(
                f"marking {text!r} is not a TLP 2.0 level ({', '.join(t.value for t in cls)})"
            ) from None


_TLP_ORDER = (Tlp.CLEAR, Tlp.GREEN, Tlp.AMBER, Tlp.AMBER_STRICT, Tlp.RED)

TLP_STIX_IDS: dict[Tlp, str] = {
    Tlp.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Tlp.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Tlp.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Tlp.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Tlp.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
"""The marking-definition ids of the TLP 2.0 objects published for STIX 2.1."""

TLP_STIX_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
"""The published property extension that carries ``tlp_2_0`` on those marking definitions."""


class Pap(StrEnum):
    """Permissible Actions Protocol: what a recipient may do with the information."""

    CLEAR = "clear"
    GREEN = "green"
    AMBER = "amber"
    RED = "red"

    @property
    def label(self) -> str:
        """``PAP:AMBER``."""
        return f"PAP:{self.value.upper()}"

    @property
    def meaning(self) -> str:
        """What the level permits, in one line."""
        return _PAP_MEANING[self]

    @classmethod
    def parse(cls, text: str) -> Pap:
        """``amber`` or ``PAP:AMBER``; InputError otherwise."""
        key = text.strip().lower().removeprefix("pap:")
        if key == "white":
            key = "clear"
        try:
            return cls(key)
        except ValueError:
            raise InputError(f"PAP {text!r} is not a PAP level ({', '.join(p.value for p in cls)})") from None


_PAP_MEANING = {
    Pap.CLEAR: "no restriction on the actions taken",
    Pap.GREEN: "active actions allowed (e.g. blocking, queries to the service that holds the data)",
    Pap.AMBER: "passive cross-checks only (no action the subject could detect)",
    Pap.RED: "no action on the information; for the recipient's own knowledge",
}


class DataCategory(StrEnum):
    """A kind of data an agreement may allow across."""

    ADDRESSES_AND_TRANSACTIONS = "addresses_and_transactions"
    ATTRIBUTION_TAGS = "attribution_tags"
    TRACES = "traces"
    EVIDENCE = "evidence"
    PERSONAL_DATA = "personal_data"

    @classmethod
    def parse_many(cls, texts: Iterable[str]) -> frozenset[DataCategory]:
        """Categories from names (comma-separated items allowed); InputError naming an unknown one."""
        out: set[DataCategory] = set()
        for text in texts:
            for part in str(text).split(","):
                name = part.strip().lower().replace("-", "_")
                if not name:
                    continue
                try:
                    out.add(cls(name))
                except ValueError:
                    raise InputError(
                        f"data category {part.strip()!r} is unknown; known: {', '.join(c.value for c in cls)}"
                    ) from None
        return frozenset(out)


class PackageFormat(StrEnum):
    """The open formats a package travels in."""

    STIX = "stix"
    FTM = "ftm"
    TAGPACK = "tagpack"
    BAGIT = "bagit"


FORMAT_CATEGORY: dict[PackageFormat, DataCategory] = {
    PackageFormat.STIX: DataCategory.ADDRESSES_AND_TRANSACTIONS,
    PackageFormat.FTM: DataCategory.ADDRESSES_AND_TRANSACTIONS,
    PackageFormat.TAGPACK: DataCategory.ATTRIBUTION_TAGS,
    PackageFormat.BAGIT: DataCategory.EVIDENCE,
}
"""The category without which a format carries nothing: its export needs the agreement to allow it."""

FORMAT_OPTIONAL: dict[PackageFormat, frozenset[DataCategory]] = {
    PackageFormat.STIX: frozenset({DataCategory.ATTRIBUTION_TAGS, DataCategory.TRACES}),
    PackageFormat.FTM: frozenset(
        {DataCategory.ATTRIBUTION_TAGS, DataCategory.TRACES, DataCategory.PERSONAL_DATA}
    ),
    PackageFormat.TAGPACK: frozenset(),
    PackageFormat.BAGIT: frozenset(
        {DataCategory.TRACES, DataCategory.ADDRESSES_AND_TRANSACTIONS, DataCategory.ATTRIBUTION_TAGS}
    ),
}
"""What a format may carry besides its own category, when the agreement allows it."""


class Clause(StrEnum):
    """The clauses of an agreement, as a refusal names them."""

    PARTNER = "partner"
    TERM = "term"
    LEGAL_BASIS = "legal basis"
    CATEGORIES = "data categories"
    MARKING = "marking"
    PSEUDONYMISATION = "pseudonymisation"
    RETENTION = "retention"
    ONWARD_SHARING = "onward sharing"

    @property
    def number(self) -> int:
        """The clause's number in an agreement (§1 partner ... §8 onward sharing)."""
        return list(Clause).index(self) + 1


def clause_rule(agreement: str, clause: Clause) -> str:
    """How a refusal names a clause: ``agreement 'demo-partner' §3 data categories``."""
    return f"agreement {agreement!r} §{clause.number} {clause.value}"


def violation(agreement: str, clause: Clause, problem: str) -> PolicyViolationError:
    """The error refusing an action that ``clause`` of ``agreement`` forbids."""
    return PolicyViolationError(clause_rule(agreement, clause), problem)


_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def check_agreement_name(text: str) -> str:
    """An agreement name: lower-case letters, digits, ``.``, ``_``, ``-``; InputError otherwise."""
    name = text.strip()
    if not _NAME.match(name):
        raise InputError(
            f"agreement name {text!r}: use lower-case letters, digits, '.', '_' or '-' (at most 100)"
        )
    return name


@dataclass(frozen=True, slots=True)
class PartnerAgency:
    """The agency on the other side: its name, country, Ed25519 public key (base64 raw) and endpoint."""

    name: str
    country: str
    public_key: str
    key_id: str
    endpoint: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InputError("the partner agency needs a name")
        if not _COUNTRY.match(self.country):
            raise InputError(f"partner country {self.country!r} is not an ISO 3166-1 alpha-2 code")
        if not _KEY_ID.match(self.key_id):
            raise InputError(f"partner key id {self.key_id!r} is not 16 hex digits")


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a piece of shared data came from: the agreement it arrived under, and its terms."""

    agreement: str
    partner: str
    package_id: str
    tlp: Tlp
    onward_sharing: bool


@dataclass(frozen=True, slots=True)
class ExportContent:
    """What an export is about to carry: its format, its categories, and the partner data in it."""

    format: PackageFormat
    categories: frozenset[DataCategory]
    origins: tuple[Origin, ...] = ()


@dataclass(frozen=True, slots=True)
class PackageTerms:
    """The terms a package states in its envelope: sender, marking, categories, retention, onward sharing."""

    sender_key_id: str
    format: PackageFormat
    tlp: Tlp
    pap: Pap
    categories: frozenset[DataCategory]
    retention_days: int
    onward_sharing: bool
    pseudonymised: bool


@dataclass(frozen=True, slots=True)
class Agreement:
    """A sharing agreement with one partner agency (see the module docstring)."""

    name: str
    partner: PartnerAgency
    legal_basis: str
    categories: frozenset[DataCategory]
    tlp: Tlp
    pap: Pap
    pseudonymise: bool
    retention_days: int
    onward_sharing: bool
    valid_until: date | None = None
    active: bool = True
    deadlines: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_agreement_name(self.name)
        if not self.legal_basis.strip():
            raise InputError(f"agreement {self.name!r}: a legal basis is required")
        if not self.categories:
            raise InputError(f"agreement {self.name!r}: at least one data category is required")
        if isinstance(self.retention_days, bool) or not 1 <= self.retention_days <= 36500:
            raise InputError(
                f"agreement {self.name!r}: retention must be 1 to 36500 days, got {self.retention_days!r}"
            )
        for kind, days in self.deadlines.items():
            if isinstance(days, bool) or not isinstance(days, int) or days < 1:
                raise InputError(
                    f"agreement {self.name!r}: deadline for {kind} must be a whole number of days >= 1"
                )

    def rule(self, clause: Clause) -> str:
        """How a refusal names ``clause`` of this agreement."""
        return clause_rule(self.name, clause)

    def check_in_force(self, today: date) -> None:
        """Raise unless the agreement is active and not past its end date."""
        if not self.active:
            raise violation(self.name, Clause.TERM, "the agreement is revoked")
        if self.valid_until is not None and today > self.valid_until:
            raise violation(self.name, Clause.TERM, f"the agreement ended on {self.valid_until.isoformat()}")

    def allowed_for(self, fmt: PackageFormat) -> frozenset[DataCategory]:
        """The categories an export in ``fmt`` carries under this agreement (its own and allowed extras)."""
        return frozenset({FORMAT_CATEGORY[fmt]} | (FORMAT_OPTIONAL[fmt] & self.categories))

    def check_export(self, content: ExportContent, today: date) -> None:
        """Raise unless this agreement allows sending ``content`` to its partner."""
        self.check_in_force(today)
        needed = FORMAT_CATEGORY[content.format]
        if needed not in self.categories:
            raise violation(
                self.name,
                Clause.CATEGORIES,
                f"a {content.format.value} export carries {needed.value}, which the agreement "
                f"does not allow (allowed: {', '.join(sorted(c.value for c in self.categories))})",
            )
        extra = sorted(c.value for c in content.categories - self.categories)
        if extra:
            raise violation(
                self.name,
                Clause.CATEGORIES,
                f"the export would carry {', '.join(extra)}, which the agreement does not allow",
            )
        for origin in content.origins:
            check_onward(origin, self)

    def check_import(self, terms: PackageTerms, today: date) -> None:
        """Raise unless a package with ``terms`` may be received under this agreement."""
        self.check_in_force(today)
        if terms.sender_key_id != self.partner.key_id:
            raise violation(
                self.name,
                Clause.PARTNER,
                f"the package is signed by key {terms.sender_key_id}, not by the partner's key "
                f"{self.partner.key_id}",
            )
        extra = sorted(c.value for c in terms.categories - self.categories)
        if extra:
            raise violation(
                self.name,
                Clause.CATEGORIES,
                f"the package carries {', '.join(extra)}, which the agreement does not allow",
            )
        if FORMAT_CATEGORY[terms.format] not in self.categories:
            raise violation(
                self.name,
                Clause.CATEGORIES,
                f"{terms.format.value} packages carry {FORMAT_CATEGORY[terms.format].value}, which "
                f"the agreement does not allow",
            )
        if terms.tlp is not self.tlp:
            raise violation(
                self.name,
                Clause.MARKING,
                f"the package is marked {terms.tlp.label}, the agreement says {self.tlp.label}",
            )
        if terms.pap is not self.pap:
            raise violation(
                self.name,
                Clause.MARKING,
                f"the package is marked {terms.pap.label}, the agreement says {self.pap.label}",
            )
        if DataCategory.PERSONAL_DATA in terms.categories and self.pseudonymise and not terms.pseudonymised:
            raise violation(
                self.name,
                Clause.PSEUDONYMISATION,
                "the package carries personal data in clear; the agreement requires it pseudonymised",
            )
        if terms.retention_days < 1:
            raise violation(self.name, Clause.RETENTION, "the package states no retention period")

    def retention_for(self, terms: PackageTerms) -> int:
        """Days the receiver keeps a package: the sender's period, never longer than the agreement's."""
        return min(terms.retention_days, self.retention_days)

    def to_dict(self) -> dict[str, Any]:
        """The agreement as JSON values."""
        return {
            "name": self.name,
            "partner": {
                "name": self.partner.name,
                "country": self.partner.country,
                "key_id": self.partner.key_id,
                "public_key": self.partner.public_key,
                "endpoint": self.partner.endpoint,
            },
            "legal_basis": self.legal_basis,
            "categories": sorted(c.value for c in self.categories),
            "marking": {"tlp": self.tlp.value, "pap": self.pap.value},
            "pseudonymise": self.pseudonymise,
            "retention_days": self.retention_days,
            "onward_sharing": self.onward_sharing,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "active": self.active,
            "deadlines": dict(self.deadlines),
        }


def check_onward(origin: Origin, target: Agreement) -> None:
    """Raise unless data received under ``origin`` may go to ``target``'s partner.

    Sending it back to the agency it came from is always allowed. Anyone else is a third party: the
    origin's onward-sharing term and its TLP marking must both allow it.
    """
    if origin.partner == target.partner.key_id:
        return
    if not origin.onward_sharing:
        raise violation(
            origin.agreement,
            Clause.ONWARD_SHARING,
            f"package {origin.package_id} came under agreement {origin.agreement!r}, which does not "
            f"allow passing it on; it cannot go to {target.partner.name}",
        )
    if not origin.tlp.allows_onward_sharing:
        raise violation(
            origin.agreement,
            Clause.MARKING,
            f"package {origin.package_id} is marked {origin.tlp.label}; it stays with its recipient "
            f"and cannot go to {target.partner.name}",
        )


def retention_until(received_at: datetime, days: int) -> datetime:
    """When received data must be deleted."""
    return received_at + timedelta(days=days)


# ------------------------------------------------------------------------------ pseudonymisation

PSEUDONYM_PREFIX = "ps1:"
"""Pseudonyms start with this; the version lets the scheme change without ambiguity."""

PSEUDONYMISED_FIELDS: frozenset[str] = frozenset(
    {
        "name",
        "firstName",
        "lastName",
        "middleName",
        "fatherName",
        "alias",
        "weakAlias",
        "previousName",
        "idNumber",
        "passportNumber",
        "taxNumber",
        "accountId",
        "username",
        "iban",
        "accountNumber",
    }
)
"""Personal fields (FollowTheMoney property names) replaced by their pseudonyms when an agreement says so."""

WITHHELD_FIELDS: frozenset[str] = frozenset(
    {
        "email",
        "phone",
        "birthDate",
        "birthPlace",
        "deathDate",
        "address",
        "ipAddress",
        "password",
        "notes",
        "description",
        "summary",
    }
)
"""Personal fields left out when pseudonymising: their types (dates, e-mail, phone) cannot hold a
pseudonym, and free text may name anyone."""

PERSONAL_FIELDS: frozenset[str] = PSEUDONYMISED_FIELDS | WITHHELD_FIELDS
"""Every field of a person or account that is personal data."""


def normalise_personal(value: str) -> str:
    """The form a personal value is compared in: NFKC, case-folded, inner whitespace collapsed."""
    text = unicodedata.normalize("NFKC", value).casefold()
    return " ".join(text.split())


def pseudonym(key: bytes, field_name: str, value: str) -> str:
    """A keyed HMAC-SHA256 pseudonym of ``value`` in ``field_name``: equal inputs give equal pseudonyms.

    The partner can see that two records name the same person (same pseudonym) without learning the
    name; without the key, a pseudonym cannot be reversed or recomputed from a guess.
    """
    if len(key) < 32:
        raise InputError("a pseudonymisation key must hold at least 32 bytes")
    message = f"{field_name}\x1f{normalise_personal(value)}".encode()
    return PSEUDONYM_PREFIX + hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def is_pseudonym(value: str) -> bool:
    """True for a value :func:`pseudonym` made."""
    return value.startswith(PSEUDONYM_PREFIX) and len(value) == len(PSEUDONYM_PREFIX) + 32


def pseudonymise_fields(key: bytes, fields: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Properties of a person or account with personal fields pseudonymised or left out (see above)."""
    out: dict[str, list[str]] = {}
    for name, values in fields.items():
        if name in WITHHELD_FIELDS:
            continue
        if name in PSEUDONYMISED_FIELDS:
            out[name] = sorted({v if is_pseudonym(v) else pseudonym(key, name, v) for v in values})
        else:
            out[name] = list(values)
    return out


def is_pseudonymised(fields: Mapping[str, Iterable[str]]) -> bool:
    """True when no personal field holds a value in clear (what a receiver checks)."""
    for name, values in fields.items():
        if name in WITHHELD_FIELDS and list(values):
            return False
        if name in PSEUDONYMISED_FIELDS and not all(is_pseudonym(v) for v in values):
            return False
    return True


# ------------------------------------------------------------------------------ signed exchanges

SIGNATURE_SCHEME = "ft-ed25519-v1"
"""The name of the request-signing scheme, carried in the Authorization header."""

REPLAY_WINDOW = timedelta(minutes=5)
"""How far a signed request's timestamp may be from the receiver's clock."""


def request_payload(
    method: str, path: str, timestamp: str, nonce: str, body_sha256: str, key_id: str
) -> bytes:
    """The bytes a signed request's Ed25519 signature covers: one field per line."""
    return "\n".join([SIGNATURE_SCHEME, method.upper(), path, timestamp, nonce, body_sha256, key_id]).encode()


def parse_timestamp(text: str) -> datetime:
    """A UTC ISO 8601 timestamp (``2026-05-01T12:00:00Z``); InputError otherwise."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"timestamp {text!r} is not ISO 8601") from None
    if when.tzinfo is None:
        raise InputError(f"timestamp {text!r} has no time zone")
    return when.astimezone(UTC)


def check_fresh(timestamp: str, now: datetime, window: timedelta = REPLAY_WINDOW) -> datetime:
    """The timestamp, when within ``window`` of ``now``; InputError naming the skew otherwise."""
    when = parse_timestamp(timestamp)
    skew = abs((now - when).total_seconds())
    if skew > window.total_seconds():
        raise InputError(
            f"the request is {int(skew)} s away from this server's clock (at most "
            f"{int(window.total_seconds())} s): refused as a possible replay"
        )
    return when


def format_timestamp(when: datetime) -> str:
    """``2026-05-01T12:00:00.123456Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
