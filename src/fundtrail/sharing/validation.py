"""What a received package may hold: every field is checked before anything of it is stored.

A partner's package is signed, which proves who sent it, not that its content is sane: a compromised or
careless partner can sign a wallet "address" holding HTML, zero-width or right-to-left characters, or a
case number of a hundred thousand characters. Before an import stores anything:

* every text (keys and values, at any depth) is free of control characters (Unicode Cc, bar tab and
  line breaks in free text) and format characters (Cf: zero-width, bidirectional overrides), and lone
  surrogates (Cs);
* identifiers (case numbers, object ids, labels, names) are single lines of sane length; free text is
  bounded too;
* a wallet's or tag's address is valid for its chain (:func:`~fundtrail.domain.addresses.canonical_address`),
  an indicator's address letters and digits (it may be of a chain FundTrail does not model), a
  transaction id a plain token.

The first problem refuses the whole package with one line naming the object and the field.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from fundtrail.domain.addresses import canonical_address
from fundtrail.domain.chains import CHAINS
from fundtrail.errors import FundTrailError, ParseError
from fundtrail.sharing.envelope import Envelope

MAX_CASE_NUMBER = 100
"""Characters of a case number."""
MAX_ID = 300
"""Characters of an object id or reference, a party or agreement name."""
MAX_NAME = 1_000
"""Characters of a label or name (one line)."""
MAX_TEXT = 100_000
"""Characters of one free text (a description, a summary)."""
MAX_KEY = 200
"""Characters of a key in an object's content."""

_TOKEN = re.compile(r"^[0-9A-Za-z:._-]{1,200}$")
"""A transaction id or flow record id: no spaces, markup or other characters."""

_ADDRESS_TEXT = re.compile(r"^[0-9A-Za-z:]{1,200}$")
"""An address of any chain, also those FundTrail does not model (sanctioned Monero or Tron addresses)."""

_ADDRESS_KINDS = frozenset({"wallet", "tag"})
_TOKEN_KINDS = frozenset({"transaction", "flow"})
_LINE_BREAKS = frozenset("\t\n\r")


def _shown(text: str, width: int = 60) -> str:
    """A text for a one-line message: escaped, and cut short."""
    cut = text if len(text) <= width else text[:width] + "..."
    return ascii(cut)


def text_problem(text: str, max_length: int, *, multiline: bool = False) -> str | None:
    """Why ``text`` may not be stored (too long, a control, format or surrogate character); None if fine."""
    if len(text) > max_length:
        return f"{len(text):,} characters, more than {max_length:,}"
    if text.isprintable():
        return None
    for position, char in enumerate(text):
        if char.isprintable() or (multiline and char in _LINE_BREAKS):
            continue
        category = unicodedata.category(char)
        kind = {"Cc": "control", "Cf": "format", "Cs": "surrogate"}.get(category)
        if kind is not None:
            name = unicodedata.name(char, "")
            return (f"holds U+{ord(char):04X}{f' {name}' if name else ''}, a {kind} character, "
                    f"at position {position}")
    return None


def _refuse(source: str, obj: str, field: str, problem: str) -> ParseError:
    return ParseError(source, obj, f"field {field}: {problem}; nothing was stored")


def check_text(source: str, obj: str, field: str, value: Any, max_length: int, *,
               multiline: bool = False) -> None:
    """Refuse a field that is not text or not acceptable text (see :func:`text_problem`)."""
    if not isinstance(value, str):
        raise _refuse(source, obj, field, f"expected text, got {type(value).__name__}")
    problem = text_problem(value, max_length, multiline=multiline)
    if problem:
        raise _refuse(source, obj, field, problem)


def check_content(source: str, obj: str, content: Any) -> None:
    """Check every key and text of an object's content, at any depth (iteratively)."""
    stack: list[tuple[str, Any]] = [("", content)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            check_text(source, obj, path or "value", value, MAX_TEXT, multiline=True)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                check_text(source, obj, f"{path}.<key>" if path else "<key>", key, MAX_KEY)
                stack.append((f"{path}.{key}" if path else str(key), item))
        elif isinstance(value, list | tuple):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(value))


def check_envelope(envelope: Envelope, source: str) -> None:
    """The envelope's own texts: the case number, the parties, the agreement and its legal basis."""
    if envelope.case is not None:
        check_text(source, "envelope", "case", envelope.case, MAX_CASE_NUMBER)
    for field, value in (("sender.name", envelope.sender.name), ("recipient.name", envelope.recipient.name),
                         ("agreement", envelope.agreement)):
        check_text(source, "envelope", field, value, MAX_ID)
    check_text(source, "envelope", "legal_basis", envelope.legal_basis, MAX_TEXT, multiline=True)
    for name in (envelope.contents.files or {}):
        check_text(source, "envelope", "contents.files", name, MAX_ID)


def _address_problem(chain: str | None, address: Any) -> str | None:
    if not isinstance(address, str) or not address:
        return "no address"
    problem = text_problem(address, MAX_ID)
    if problem:
        return problem
    if chain not in CHAINS:
        return f"unknown chain {_shown(str(chain))}"
    try:
        canonical_address(chain, address)
    except FundTrailError as error:
        return str(error) if len(address) <= 120 else f"{_shown(address)} is not a valid {chain} address"
    return None


def check_stix_objects(objects: Iterable[Mapping[str, Any]], source: str) -> None:
    """Every STIX object's texts, and each wallet's address for its chain (before the STIX checks)."""
    for obj in objects:
        oid = obj.get("id")
        if not isinstance(oid, str) or text_problem(oid, MAX_ID):
            raise _refuse(source, "object", "id", "not a sane object id")
        shown = _shown(oid, 80)
        check_content(source, f"object {shown}", obj)
        for field in ("name", "value"):
            if field in obj and obj.get("type") != "report":
                check_text(source, f"object {shown}", field, obj[field], MAX_NAME)
        if obj.get("type") == "cryptocurrency-wallet":
            extensions = obj.get("extensions")
            chain = None
            if isinstance(extensions, Mapping):
                for ext in extensions.values():
                    if isinstance(ext, Mapping) and isinstance(ext.get("chain"), str):
                        chain = ext["chain"]
            problem = _address_problem(chain, obj.get("value"))
            if problem:
                raise _refuse(source, f"object {shown}", "value", problem)


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def check_items(items: Iterable[Any], source: str) -> None:
    """What the import is about to store of each object: reference, chain, value, label, content."""
    for item in items:
        kind = str(_field(item, "kind"))
        ref = _field(item, "ref")
        obj = f"{kind} {_shown(str(ref), 80)}" if ref else kind
        if ref is not None:
            check_text(source, obj, "ref", ref, MAX_ID)
        chain = _field(item, "chain")
        value = _field(item, "value")
        if kind in _ADDRESS_KINDS:
            problem = _address_problem(chain, value)
            if problem:
                raise _refuse(source, obj, "address", problem)
        elif chain is not None and chain not in CHAINS:
            raise _refuse(source, obj, "chain", f"unknown chain {_shown(str(chain))}")
        if value is not None and kind not in _ADDRESS_KINDS:
            if kind in _TOKEN_KINDS:
                if not isinstance(value, str) or not _TOKEN.match(value):
                    raise _refuse(source, obj, "value", f"{_shown(str(value))} is not a transaction id")
            elif kind == "indicator":
                if not isinstance(value, str) or not _ADDRESS_TEXT.match(value):
                    raise _refuse(source, obj, "value",
                                  f"{_shown(str(value))} is not an address (letters and digits)")
            else:
                check_text(source, obj, "value", value, MAX_NAME)
        label = _field(item, "label")
        if label is not None:
            check_text(source, obj, "label", label, MAX_NAME)
        check_content(source, obj, _field(item, "content"))


__all__ = ["check_content", "check_envelope", "check_items", "check_stix_objects", "check_text",
           "text_problem"]
