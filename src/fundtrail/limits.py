"""Bounds on what one input file may make FundTrail do: decompressed size, blank lines, YAML aliases.

Readers of untrusted files (exports, TagPacks, shared packages) stop at these bounds with an
:class:`~fundtrail.errors.InputLimitError` naming the file, instead of spending minutes or gigabytes on a
crafted file (a gzip bomb of newlines, a YAML "billion laughs"). The defaults are generous: real data
never comes near them. Each can be changed through its environment variable (see
``docs/configuration.md``), read when a command starts reading.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from fundtrail.errors import InputError, InputLimitError

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class InputLimits:
    """The bounds one input file is read under (see the module docstring)."""

    max_decompressed_bytes: int = 256 * GIB
    """Bytes one compressed file may expand to (bitcoin-etl ``.gz``, TagPack ``.xz``)."""
    max_blank_lines: int = 100_000
    """Blank lines one JSON-lines file may hold (exports hold none, bar a trailing one)."""
    max_line_bytes: int = 256 * MIB
    """Bytes one line of a JSON-lines export may hold (the largest transactions take a few MB)."""
    max_document_bytes: int = GIB
    """Bytes of one document read whole (a TagPack, a STIX bundle), after decompression."""
    max_yaml_alias_nodes: int = 1_000_000
    """Nodes that YAML aliases may add to a document beyond the nodes it writes out."""
    max_nesting: int = 100
    """How deeply a document read whole may nest (STIX and TagPacks nest under ten levels)."""


ENV_VARS: Mapping[str, str] = {
    "max_decompressed_bytes": "FUNDTRAIL_MAX_DECOMPRESSED_BYTES",
    "max_blank_lines": "FUNDTRAIL_MAX_BLANK_LINES",
    "max_line_bytes": "FUNDTRAIL_MAX_LINE_BYTES",
    "max_document_bytes": "FUNDTRAIL_MAX_DOCUMENT_BYTES",
    "max_yaml_alias_nodes": "FUNDTRAIL_MAX_YAML_ALIAS_NODES",
    "max_nesting": "FUNDTRAIL_MAX_NESTING",
}
"""The environment variable of each bound."""


def input_limits(environ: Mapping[str, str] | None = None) -> InputLimits:
    """The bounds in force: the defaults, each overridden by its environment variable when set."""
    environ = os.environ if environ is None else environ
    values: dict[str, int] = {}
    for name, var in ENV_VARS.items():
        text = environ.get(var, "").strip().replace("_", "")
        if not text:
            continue
        if not text.isdigit() or int(text) < 1:
            raise InputError(f"{var}={environ[var]!r}: expected a positive whole number")
        values[name] = int(text)
    return InputLimits(**values)


def read_bounded(stream: BinaryIO, source: str, limits: InputLimits) -> bytes:
    """All bytes of ``stream`` (a document read whole), refusing more than ``max_document_bytes``."""
    data = stream.read(limits.max_document_bytes + 1)
    if len(data) > limits.max_document_bytes:
        raise InputLimitError(source, None, f"larger than {limits.max_document_bytes:,} bytes",
                              ENV_VARS["max_document_bytes"])
    return data


def nesting_depth(value: Any, bound: int) -> int:
    """How deeply lists and mappings nest in ``value`` (a scalar is 0), counted up to ``bound + 1``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > bound:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def check_nesting(value: Any, source: str, limits: InputLimits) -> None:
    """Refuse a parsed document that nests deeper than ``max_nesting``."""
    if nesting_depth(value, limits.max_nesting) > limits.max_nesting:
        raise InputLimitError(source, None, f"nested more than {limits.max_nesting} levels deep",
                              ENV_VARS["max_nesting"])
