"""Strings of the graph's text columns read without Arrow's compute module equal Arrow's ``take``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from fundtrail.analysis import graph
from fundtrail.analysis.graph import take_texts


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_direct_read_equals_arrow_take(kind: pa.DataType, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow.compute  # noqa: F401  (for the reference)

    texts = pa.array(["bc1qabc", "", "dé😀fg", "x" * 70, "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"], kind)
    cases = [np.array([2, 0, 1, 3, 2, 4]), np.array([1]), np.zeros(0, dtype=np.int64)]
    for array in (texts, texts.slice(1), texts.slice(2, 2)):
        for ids in cases:
            ids = ids[ids < len(array)]
            expected = array.take(pa.array(ids, pa.int64())).to_pylist()
            monkeypatch.delitem(sys.modules, "pyarrow.compute")  # as in a process that never imported it
            assert take_texts(array, ids) == expected
            monkeypatch.undo()
            assert take_texts(array, ids) == expected  # through Arrow
    monkeypatch.delitem(sys.modules, "pyarrow.compute")
    with pytest.raises(IndexError):
        take_texts(texts, np.array([5]))


def test_nulls_and_many_strings_go_through_arrow() -> None:
    with_nulls = pa.array(["a", None, "b"])
    assert take_texts(with_nulls, np.array([1, 2, 0])) == [None, "b", "a"]
    many = pa.array([f"t{i}" for i in range(graph._DIRECT_TEXTS + 10)])
    ids = np.arange(len(many))[::-1]
    assert take_texts(many, ids) == [f"t{i}" for i in ids.tolist()]


def test_a_trace_process_does_not_import_arrow_compute() -> None:
    """Reading a few strings leaves Arrow's compute module unimported (what a CLI trace pays for)."""
    probe = ("import sys, numpy as np, pyarrow as pa\n"
             "from fundtrail.analysis.graph import take_texts\n"
             "assert take_texts(pa.array(['a', 'bc']), np.array([1, 0])) == ['bc', 'a']\n"
             "print('pyarrow.compute' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          timeout=120)
    assert done.stdout.strip() == "False"
