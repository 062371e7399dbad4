"""Delivering alerts: a signed webhook (HMAC-SHA256 with the home's secret, retried with back-off) and
email over SMTP. Settings come from :class:`DeliverySettings` (environment, overridden by CLI options).

The webhook body is the alert document (JSON); ``X-FundTrail-Signature: sha256=<hex>`` is the HMAC of
``<timestamp>.<body>`` with the secret in ``HOME/keys/watch-webhook.key`` (made on first use, mode 0600),
and ``X-FundTrail-Timestamp`` the Unix time it covers: the receiver recomputes it to trust the alert.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import smtplib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from fundtrail.errors import InputError

log = logging.getLogger(__name__)

SECRET_FILE = Path("keys") / "watch-webhook.key"
SIGNATURE_HEADER = "X-FundTrail-Signature"
TIMESTAMP_HEADER = "X-FundTrail-Timestamp"


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """Where alerts go: a webhook URL, an SMTP server and recipients; the retry bounds."""

    webhook: str | None = None
    smtp: str | None = None
    email_to: tuple[str, ...] = ()
    email_from: str = "fundtrail@localhost"
    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 8.0
    timeout: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> DeliverySettings:
        """Settings from ``FUNDTRAIL_WATCH_*`` variables, then the non-None ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            "webhook": env.get("FUNDTRAIL_WATCH_WEBHOOK") or None,
            "smtp": env.get("FUNDTRAIL_WATCH_SMTP") or None,
            "email_to": tuple(
                a.strip() for a in (env.get("FUNDTRAIL_WATCH_EMAIL_TO") or "").split(",") if a.strip()
            ),
            "email_from": env.get("FUNDTRAIL_WATCH_EMAIL_FROM") or "fundtrail@localhost",
        }
        if env.get("FUNDTRAIL_WATCH_WEBHOOK_ATTEMPTS"):
            try:
                values["attempts"] = max(1, min(20, int(env["FUNDTRAIL_WATCH_WEBHOOK_ATTEMPTS"])))
            except ValueError:
                raise InputError("FUNDTRAIL_WATCH_WEBHOOK_ATTEMPTS must be a whole number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        if settings.webhook and not settings.webhook.startswith(("http://", "https://")):
            raise InputError(f"webhook {settings.webhook!r} must be an http(s) URL")
        if settings.smtp:
            smtp_address(settings.smtp)
        return settings


def smtp_address(text: str) -> tuple[str, int]:
    """``host:port`` (port 25 when absent); InputError otherwise."""
    host, _, port = text.strip().rpartition(":") if ":" in text else (text.strip(), "", "25")
    try:
        number = int(port)
    except ValueError:
        raise InputError(f"SMTP server {text!r} must be HOST:PORT") from None
    if not host or not 0 < number < 65536:
        raise InputError(f"SMTP server {text!r} must be HOST:PORT")
    return host, number


def webhook_secret(home: Path) -> bytes:
    """The home's webhook secret (32 random bytes, hex in a 0600 file), made on first use."""
    path = Path(home) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    return bytes.fromhex(path.read_text().strip())


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value of a webhook body."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """True when ``signature`` is the body's signature (for receivers and tests)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def body_of(doc: Mapping[str, Any]) -> bytes:
    """The alert document as the bytes that are signed and sent."""
    return json.dumps(doc, sort_keys=True, default=str, separators=(",", ":")).encode()


def send_webhook(
    settings: DeliverySettings,
    secret: bytes,
    doc: Mapping[str, Any],
    *,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """POST the signed alert; retried with exponential back-off (bounded). True when accepted (2xx)."""
    if not settings.webhook:
        return False
    body = body_of(doc)
    own = client is None
    http = client or httpx.Client(timeout=settings.timeout)
    try:
        delay = settings.backoff
        for attempt in range(1, settings.attempts + 1):
            stamp = str(int(time.time()))
            try:
                response = http.post(
                    settings.webhook,
                    content=body,
                    headers={
                        "content-type": "application/json",
                        TIMESTAMP_HEADER: stamp,
                        SIGNATURE_HEADER: sign(secret, stamp, body),
                    },
                )
                if 200 <= response.status_code < 300:
                    return True
                log.warning(
                    "webhook answered %d (attempt %d of %d)", response.status_code, attempt, settings.attempts
                )
            except httpx.HTTPError as error:
                log.warning("webhook unreachable (attempt %d of %d): %s", attempt, settings.attempts, error)
            if attempt < settings.attempts:
                sleep(delay)
                delay = min(delay * 2, settings.max_backoff)
        return False
    finally:
        if own:
            http.close()


def send_email(settings: DeliverySettings, doc: Mapping[str, Any]) -> bool:
    """Send the alert by email; True when the SMTP server took it."""
    if not settings.smtp or not settings.email_to:
        return False
    host, port = smtp_address(settings.smtp)
    message = EmailMessage()
    where = f" at {doc['entity']}" if doc.get("entity") else ""
    message["Subject"] = f"[FundTrail] alert {doc['id']}: {doc['kind']}{where} ({doc['chain']})"
    message["From"] = settings.email_from
    message["To"] = ", ".join(settings.email_to)
    lines = [
        f"{k}: {doc.get(k)}"
        for k in (
            "kind",
            "chain",
            "txid",
            "address",
            "entity",
            "jurisdiction",
            "value",
            "watch",
            "case",
            "request",
            "at",
        )
    ]
    message.set_content(
        "A watch raised an alert.\n\n"
        + "\n".join(lines)
        + "\n\n"
        + json.dumps(doc, indent=2, sort_keys=True, default=str)
        + "\n"
    )
    try:
        with smtplib.SMTP(host, port, timeout=settings.timeout) as smtp:
            smtp.send_message(message)
        return True
    except (OSError, smtplib.SMTPException) as error:
        log.warning("email to %s not sent: %s", settings.email_to, error)
        return False
