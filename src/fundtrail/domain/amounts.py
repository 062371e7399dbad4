"""The ranges of numbers the chain store keeps exactly, which readers check before anything is stored."""

from __future__ import annotations

MAX_AMOUNT = 10**38 - 1
"""The largest amount (base units) the chain store keeps exactly: DECIMAL(38,0)."""

MAX_INT32 = 2**31 - 1
"""The largest output, input or transaction index the chain store keeps (INTEGER columns)."""

MAX_INT64 = 2**63 - 1
"""The largest height, time, sequence, version or lock time the chain store keeps (BIGINT columns)."""


def shown_number(number: int) -> str:
    """A number for a one-line message: in full when short, else its ends and its length."""
    text = str(number)
    return text if len(text) <= 24 else f"{text[:8]}...{text[-4:]} ({len(text)} digits)"


def amount_problem(value: int) -> str | None:
    """Why ``value`` cannot be stored as an amount (negative, or beyond DECIMAL(38,0)); None when it can."""
    if value < 0:
        return f"is negative ({shown_number(value)})"
    if value > MAX_AMOUNT:
        return f"{shown_number(value)} is larger than the largest amount the store keeps (10^38 - 1)"
    return None
