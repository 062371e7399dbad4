"""Trainees' answers: what shapes are accepted, and how each becomes a list of findings.

Three shapes, told apart by their content (not their file name):

* a trace: the document ``fundtrail trace --format json`` prints; its endpoints attributed to an
  exchange (``category: exchange``) are the findings, with their tainted value, entity and jurisdiction;
* a deposit list: CSV with a header naming ``address`` and ``value`` (or ``amount``), optionally
  ``exchange``, ``jurisdiction``, ``chain`` and ``asset`` (``native`` or the token contract); or
  JSON, a list of such objects (or ``{"deposits": [...]}``); values are integers of base units;
* a drafted freeze request: ``fundtrail request show --format json`` (its address subjects), the letter
  data of a request (``request`` and ``assets``: addresses with amounts), or a list of either; the
  recipient and its jurisdiction name the exchange.

Anything else, a truncated file or a file past :data:`MAX_ANSWER_BYTES` is an
:class:`~fundtrail.errors.InputError` naming the problem.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from fundtrail.errors import InputError, InputLimitError, ParseError

MAX_ANSWER_BYTES = 16 << 20
"""Bound on one answer file (a trace of a large world is a few MB)."""
MAX_FINDINGS = 100_000
_ADDRESS = re.compile(r"^[A-Za-z0-9:]{8,120}$")


class AnswerKind(StrEnum):
    """The accepted shapes of an answer."""

    TRACE = "trace"
    DEPOSITS = "deposits"
    FREEZE_REQUEST = "freeze_request"


@dataclass(frozen=True, slots=True)
class Finding:
    """One claim of an answer: value of the funds at an exchange deposit address.

    ``value`` is None when the answer names the address but no amount (a request without amounts).
    """

    address: str
    value: int | None
    exchange: str | None = None
    jurisdiction: str | None = None
    chain: str | None = None
    asset: str | None = None
    """The chain and asset (``native`` or a token contract) when the answer names them (cross-chain)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the value as a string of base units)."""
        return {
            "address": self.address,
            "value": None if self.value is None else str(self.value),
            "exchange": self.exchange,
            "jurisdiction": self.jurisdiction,
            "chain": self.chain,
            "asset": self.asset,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Finding:
        """Read the JSON form."""
        value = doc.get("value")
        return cls(
            doc["address"],
            None if value is None else int(value),
            doc.get("exchange"),
            doc.get("jurisdiction"),
            doc.get("chain"),
            doc.get("asset"),
        )


@dataclass(frozen=True)
class Answer:
    """A parsed answer: its shape and its findings."""

    kind: AnswerKind
    findings: tuple[Finding, ...]


def canonical_address(source: str, where: str, text: Any) -> str:
    """An address as the store keeps it: bech32 lower case, EVM lower case, base58 as is."""
    if not isinstance(text, str) or not _ADDRESS.match(text.strip()):
        raise ParseError(source, where, f"{text!r} is not an address")
    address = text.strip()
    lowered = address.lower()
    if lowered.startswith(("bc1", "tb1", "ltc1", "bcrt1", "0x")):
        return lowered
    return address


def _amount(source: str, where: str, value: Any, *, required: bool = True) -> int | None:
    if value is None or value == "":
        if required:
            raise ParseError(source, where, "the value is missing")
        return None
    if isinstance(value, bool) or isinstance(value, float):
        raise ParseError(source, where, f"{value!r} is not a whole number of base units (satoshi, wei)")
    text = str(value).strip()
    if not text.isdigit():
        raise ParseError(source, where, f"{value!r} is not a whole number of base units (satoshi, wei)")
    return int(text)


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _lower(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text else None


def _jurisdiction(value: Any) -> str | None:
    text = _text(value)
    return text.upper() if text else None


def _trace(source: str, doc: dict[str, Any]) -> Answer:
    endpoints = doc.get("endpoints")
    if not isinstance(endpoints, list):
        raise ParseError(source, "endpoints", "a trace lists its endpoints")
    findings = []
    for i, e in enumerate(endpoints):
        where = f"endpoints[{i}]"
        if not isinstance(e, dict):
            raise ParseError(source, where, "an endpoint is an object")
        value = _amount(source, f"{where}.tainted_value", e.get("tainted_value"))
        if e.get("category") != "exchange" or not e.get("address"):
            continue
        findings.append(
            Finding(
                canonical_address(source, f"{where}.address", e["address"]),
                value,
                _text(e.get("entity")),
                _jurisdiction(e.get("jurisdiction")),
                _lower(e.get("chain")),
                _lower(e.get("asset")),
            )
        )
    return Answer(AnswerKind.TRACE, tuple(findings))


def _deposit_rows(source: str, rows: list[Any]) -> Answer:
    findings = []
    for i, row in enumerate(rows):
        where = f"[{i}]"
        if not isinstance(row, dict) or "address" not in row:
            raise ParseError(source, where, "a deposit is an object with an address and a value")
        value = row.get("value", row.get("amount"))
        findings.append(
            Finding(
                canonical_address(source, f"{where}.address", row["address"]),
                _amount(source, f"{where}.value", value),
                _text(row.get("exchange") or row.get("entity")),
                _jurisdiction(row.get("jurisdiction")),
                _lower(row.get("chain")),
                _lower(row.get("asset")),
            )
        )
    return Answer(AnswerKind.DEPOSITS, tuple(findings))


def _request(source: str, where: str, doc: dict[str, Any]) -> list[Finding]:
    if "request" in doc and "assets" in doc:  # letter data
        request, subjects, amount_key = doc["request"], doc["assets"], "amount"
    else:  # request show --format json
        request, subjects, amount_key = doc, doc.get("subjects"), "amount"
    if not isinstance(request, dict) or not isinstance(subjects, list):
        raise ParseError(source, where, "a request names its type, recipient and subjects")
    kind = request.get("type")
    if kind != "freeze":
        raise InputError(f"{source}: {where or 'the request'} is a {kind!r} request, not a freeze request")
    recipient = _text(request.get("recipient"))
    if not recipient:
        raise ParseError(source, f"{where}.recipient", "a freeze request names its recipient (the exchange)")
    findings = []
    for i, s in enumerate(subjects):
        if not isinstance(s, dict):
            raise ParseError(source, f"{where}.subjects[{i}]", "a subject is an object")
        if s.get("kind") != "address":
            continue
        findings.append(
            Finding(
                canonical_address(source, f"{where}.subjects[{i}].value", s.get("value")),
                _amount(source, f"{where}.subjects[{i}].{amount_key}", s.get(amount_key), required=False),
                recipient,
                _jurisdiction(request.get("recipient_jurisdiction")),
                _lower(s.get("chain")),
                _lower(s.get("asset")),
            )
        )
    return findings


def _is_request(doc: Any) -> bool:
    return isinstance(doc, dict) and (
        ("request" in doc and "assets" in doc) or ("type" in doc and "subjects" in doc)
    )


def _json_answer(source: str, doc: Any) -> Answer:
    if isinstance(doc, dict) and "endpoints" in doc:
        return _trace(source, doc)
    if isinstance(doc, dict) and isinstance(doc.get("deposits"), list):
        return _deposit_rows(source, doc["deposits"])
    if _is_request(doc):
        return Answer(AnswerKind.FREEZE_REQUEST, tuple(_request(source, "", doc)))
    if isinstance(doc, dict) and isinstance(doc.get("requests"), list):
        doc = doc["requests"]
    if isinstance(doc, list) and doc and all(_is_request(d) for d in doc):
        found = [f for i, d in enumerate(doc) for f in _request(source, f"[{i}]", d)]
        return Answer(AnswerKind.FREEZE_REQUEST, tuple(found))
    if isinstance(doc, list) and all(isinstance(d, dict) and "address" in d for d in doc):
        return _deposit_rows(source, doc)
    raise InputError(
        f"{source}: not an answer: expected a trace (fundtrail trace --format json), a list of deposit "
        "addresses with values, or a freeze request"
    )


def _csv_answer(source: str, text: str) -> Answer:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "address" not in header or not ({"value", "amount"} & set(header)):
        raise InputError(
            f"{source}: not an answer: a CSV answer needs a header with address and value (or amount)"
        )
    reader.fieldnames = header
    rows = []
    for row in reader:
        line = reader.line_num
        if None in row or any(v is None for v in row.values()):
            raise ParseError(source, f"line {line}", "the row does not have as many fields as the header")
        rows.append(row)
    try:
        return _deposit_rows(source, rows)
    except ParseError as error:
        raise ParseError(source, f"row {error.where}", error.problem) from None


def parse_answer(path: Path) -> Answer:
    """Read and check an answer file (see the module docstring)."""
    source = str(path)
    size = path.stat().st_size
    if size > MAX_ANSWER_BYTES:
        raise InputLimitError(
            source, None, f"{size} bytes is more than {MAX_ANSWER_BYTES}", "MAX_ANSWER_BYTES"
        )
    data = path.read_bytes()
    if not data.strip():
        raise InputError(f"{source}: the answer is empty")
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        first = data.lstrip()[:1]
        if first in (b"{", b"["):
            raise ParseError(source, None, f"not complete JSON (truncated?): {exc}") from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ParseError(source, None, "neither JSON nor UTF-8 CSV") from None
        answer = _csv_answer(source, text)
    else:
        answer = _json_answer(source, doc)
    if len(answer.findings) > MAX_FINDINGS:
        raise InputLimitError(source, None, f"{len(answer.findings)} findings", "MAX_FINDINGS")
    return answer
