"""Calling a partner's FundTrail: signed requests to its cooperation endpoints.

A :class:`PartnerClient` wraps an ``httpx.Client`` (injected, so tests can hand one bound to an app in
the same process) and signs every request with the agency key
(:class:`~fundtrail.sharing.signing.SignedAuth`).
The partner's problem answers become FundTrail errors: a refusal by an agreement clause stays a
:class:`~fundtrail.errors.PolicyViolationError`, a failed check an :class:`~fundtrail.errors.IntegrityError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx

from fundtrail.audit.keys import AgencyKey
from fundtrail.errors import (
    ConflictError,
    FundTrailError,
    InputError,
    IntegrityError,
    NotFoundError,
    PolicyViolationError,
    SourceUnavailableError,
)
from fundtrail.sharing.models import SharingAgreement
from fundtrail.sharing.signing import SignedAuth

log = logging.getLogger(__name__)

COOPERATION_PATH = "/api/cooperation"
TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def _error(url: str, response: httpx.Response, partner: str) -> FundTrailError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = str(body.get("detail") or response.text[:300] or response.reason_phrase)
    slug = str(body.get("type", "")).rsplit(":", 1)[-1]
    if slug == "policy-violation":
        return PolicyViolationError(f"{partner}'s agreement", f"{partner} refused: {detail}")
    if slug == "integrity-failure":
        return IntegrityError(f"{partner} refused: {detail}")
    if response.status_code == 404:
        return NotFoundError(f"at {partner}", detail)
    if response.status_code == 409:
        return ConflictError(f"{partner}: {detail}")
    if response.status_code in (401, 403):
        return IntegrityError(f"{partner} did not accept our signature: {detail}")
    if response.status_code in (400, 422):
        return InputError(f"{partner}: {detail}")
    return SourceUnavailableError(url, f"{response.status_code}: {detail}")


class PartnerClient:
    """Signed calls to one partner's cooperation endpoints."""

    def __init__(self, http: httpx.Client, key: AgencyKey, partner: str) -> None:
        self.http = http
        self.key = key
        self.partner = partner
        self.auth = SignedAuth(key)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Send one signed request to ``/api/cooperation{path}``; the JSON answer."""
        url = f"{COOPERATION_PATH}{path}"
        try:
            response = self.http.request(method, url, json=body, auth=self.auth)
        except httpx.HTTPError as error:
            raise SourceUnavailableError(
                str(self.http.base_url) + url, f"cannot reach {self.partner}: {error}"
            ) from None
        if response.status_code >= 400:
            raise _error(str(response.url), response, self.partner)
        return response.json() if response.content else None

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()


ClientFactory = Callable[[SharingAgreement, AgencyKey], PartnerClient]


def http_client(row: SharingAgreement, key: AgencyKey) -> PartnerClient:
    """A client for the agreement's partner endpoint (the default factory)."""
    if not row.partner_endpoint:
        raise InputError(
            f"agreement {row.name!r} names no endpoint for {row.partner_name}; set one with "
            f"`fundtrail agreement create ... --endpoint URL`"
        )
    return PartnerClient(httpx.Client(base_url=row.partner_endpoint, timeout=TIMEOUT), key, row.partner_name)
