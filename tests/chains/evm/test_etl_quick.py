"""The ethereum-etl reader's quick path for common spellings gives what each parser gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fundtrail.chains.evm import etl
from fundtrail.errors import InputError, ParseError

SAMPLES: list[Any] = [
    "0", "0123", "42", "9" * 9, "9" * 10, "9" * 18, "9" * 19, "9" * 38, "9" * 39, "1" * 4000, "1" * 4400,
    " 5", "5 ", "", "²", "١٢", "0x1a", "0X1A", "1e3", "-1", "+1",
    "0x" + "ab" * 32, "0x" + "AB" * 32, " 0x" + "ab" * 32, "0x" + "ab" * 31, "0x" + "gg" * 32,
    "0x" + "cd" * 20, "0x" + "CD" * 20, "0x52908400098527886E0F7030069857D2E4169EE7", "0x" + "cd" * 19,
]


@pytest.mark.parametrize("parse", list(etl._QUICK), ids=lambda p: getattr(p, "__name__", "parse"))
def test_quick_path_agrees_with_the_parser(parse: Any) -> None:
    table = etl._Table(Path("t.csv"), "transactions")
    for sample in SAMPLES:
        try:
            expected: Any = parse(sample, "c")
        except InputError:
            expected = "refused"
        try:
            got: Any = table.value(3, {"c": sample}, "c", parse)
        except ParseError as error:
            assert str(error).startswith("t.csv:3: column 'c'")
            got = "refused"
        assert (got, type(got)) == (expected, type(expected)), (parse, sample)
