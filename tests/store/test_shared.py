"""One chain store, many processes: the process holding the file hosts it, the others go through it.

Each test starts a real second process (``python -c``) on the same home; the two talk over the store's
local socket exactly as a server, an ingest and CLI commands do.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from fundtrail.store import ChainStore, service

pytestmark = pytest.mark.timeout(120)

HOST = textwrap.dedent("""
    import sys, time
    from fundtrail.store import ChainStore
    store = ChainStore.open_home(sys.argv[1])
    store.con.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER, v VARCHAR)")
    print("hosting", flush=True)
    for line in sys.stdin:
        if line.strip() == "close":
            store.close()
            print("closed", flush=True)
        elif line.strip() == "insert":
            store.con.execute("INSERT INTO t VALUES (100, 'host')")
            print("inserted", flush=True)
    time.sleep(600)
""")

CLIENT_IN_TRANSACTION = textwrap.dedent("""
    import sys, time
    from fundtrail.store import ChainStore
    store = ChainStore.open_home(sys.argv[1])
    store.con.execute("BEGIN TRANSACTION")
    store.con.execute("INSERT INTO t SELECT i, 'half-written' FROM range(1000) r(i)")
    print("written", flush=True)
    time.sleep(600)
""")


def start(code: str, home: Path, expect: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", code, str(home)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line == expect, f"second process said {line!r}"
    return process


def tell(process: subprocess.Popen[str], command: str, expect: str) -> None:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(command + "\n")
    process.stdin.flush()
    assert process.stdout.readline().strip() == expect


@pytest.fixture()
def host(home: Path) -> Iterator[subprocess.Popen[str]]:
    process = start(HOST, home, "hosting")
    yield process
    process.kill()
    process.wait()


def test_a_second_process_reads_and_writes_through_the_host(home: Path, host: subprocess.Popen[str]) -> None:
    with ChainStore.open_home(home) as store:
        assert not service.hosted_here(store.path)
        assert store.con.host_pid() == host.pid  # type: ignore[attr-defined]
        store.con.execute("BEGIN TRANSACTION")
        store.con.execute("INSERT INTO t VALUES (?, ?), (?, ?)", [1, "a", 2, None])
        store.con.execute("COMMIT")
        assert store.query("SELECT k, v FROM t ORDER BY k") == [(1, "a"), (2, None)]
        assert store.con.execute("SELECT sum(k)::HUGEINT, 1.5::DECIMAL(3,1) FROM t").fetchone() == (3, 1.5)
        cols = store.con.execute("SELECT k FROM t ORDER BY k").fetchnumpy()
        assert list(cols["k"]) == [1, 2]
        import pyarrow as pa

        store.con.register("_staged", pa.table({"k": [7, 8]}))
        assert store.query("SELECT sum(k) FROM _staged") == [(15,)]
        assert store.con.sql("SELECT k FROM t ORDER BY k").to_arrow_table().column("k").to_pylist() == [1, 2]
        with pytest.raises(duckdb.CatalogException):
            store.query("SELECT * FROM no_such_table")
    tell(host, "insert", "inserted")
    with ChainStore.open_home(home, read_only=True) as store:
        assert store.query("SELECT count(*) FROM t") == [(3,)]


def test_a_reader_sees_a_snapshot_while_a_writer_appends(home: Path, host: subprocess.Popen[str]) -> None:
    with ChainStore.open_home(home) as reader, ChainStore.open_home(home) as writer:
        reader.con.execute("BEGIN TRANSACTION")
        assert reader.query("SELECT count(*) FROM t") == [(0,)]
        writer.con.execute("INSERT INTO t SELECT i, 'new' FROM range(50) r(i)")
        assert reader.query("SELECT count(*) FROM t") == [(0,)]  # still its snapshot
        reader.con.execute("COMMIT")
        assert reader.query("SELECT count(*) FROM t") == [(50,)]


def test_a_client_killed_inside_a_transaction_leaves_nothing(home: Path, host: subprocess.Popen[str]) -> None:
    client = start(CLIENT_IN_TRANSACTION, home, "written")
    client.send_signal(signal.SIGKILL)
    client.wait()
    deadline = time.monotonic() + 10
    with ChainStore.open_home(home) as store:
        while store.query("SELECT count(*) FROM t WHERE v = 'half-written'") != [(0,)]:
            assert time.monotonic() < deadline, "the killed client's rows became visible"
            time.sleep(0.05)
        store.con.execute("INSERT INTO t VALUES (1, 'after')")  # no conflict left behind
        assert store.query("SELECT count(*) FROM t") == [(1,)]


def test_the_store_is_handed_over_when_its_host_closes(home: Path, host: subprocess.Popen[str]) -> None:
    store = ChainStore.open_home(home)
    try:
        store.con.execute("INSERT INTO t VALUES (1, 'before')")
        tell(host, "close", "closed")
        # the idle connection was closed by the host: the next statement finds a new host (this process)
        assert store.query("SELECT k, v FROM t") == [(1, "before")]
        store.con.execute("INSERT INTO t VALUES (2, 'after')")
        assert store.query("SELECT count(*) FROM t") == [(2,)]
        assert service.hosted_here(store.path)
    finally:
        store.close()


def test_a_killed_host_is_replaced_and_its_committed_writes_kept(
        home: Path, host: subprocess.Popen[str]) -> None:
    with ChainStore.open_home(home) as store:
        store.con.execute("INSERT INTO t SELECT i, 'kept' FROM range(10) r(i)")
        host.send_signal(signal.SIGKILL)
        host.wait()
        # a read is replayed on the new host (this process, after DuckDB replays the WAL)
        assert store.query("SELECT count(*) FROM t WHERE v = 'kept'") == [(10,)]
        assert service.hosted_here(store.path)


def test_a_transaction_cut_by_a_dying_host_is_an_error_not_a_silent_retry(
        home: Path, host: subprocess.Popen[str]) -> None:
    with ChainStore.open_home(home) as store:
        store.con.execute("BEGIN TRANSACTION")
        store.con.execute("INSERT INTO t VALUES (1, 'lost')")
        host.send_signal(signal.SIGKILL)
        host.wait()
        with pytest.raises(duckdb.ConnectionException, match="rerun the command"):
            store.con.execute("COMMIT")
        assert store.query("SELECT count(*) FROM t") == [(0,)]


def test_messages_may_only_build_plain_values() -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("true",))

    with pytest.raises(pickle.UnpicklingError, match="forbidden class"):
        service._PlainUnpickler(io.BytesIO(pickle.dumps({"op": Evil()}))).load()
    import datetime
    import decimal

    import numpy as np

    plain = {"n": 2**100, "d": decimal.Decimal("1.5"),
             "t": datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC), "a": np.arange(3),
             "m": np.ma.masked_array([1, 2], mask=[False, True]), "o": np.array([None, "x"])}
    back = service._PlainUnpickler(io.BytesIO(pickle.dumps(plain, protocol=5))).load()
    assert back["n"] == 2**100 and back["d"] == decimal.Decimal("1.5") and list(back["a"]) == [0, 1, 2]
    assert back["m"].mask.tolist() == [False, True] and back["o"].tolist() == [None, "x"]


def test_other_users_are_refused(home: Path, host: subprocess.Popen[str]) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to connect as another user")
    code = textwrap.dedent("""
        import os, sys
        from fundtrail.store import service
        os.setuid(65534)
        s = service.connect(sys.argv[1] + "/chain.duckdb")
        try:
            s.sendall(b"x" * 8)
            answer = s.recv(1)
        except (ConnectionResetError, BrokenPipeError):
            answer = b""
        print("refused" if answer == b"" else "served", flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", code, str(home)], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "refused", out.stderr


def test_a_forked_child_does_not_take_itself_for_the_host(home: Path) -> None:
    store = ChainStore.open_home(home)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the parent's DuckDB connection and socket are not the child's to use
        os.write(write, b"host" if service.hosted_here(store.path) else b"not host")
        os._exit(0)
    try:
        os.close(write)
        assert os.read(read, 16) == b"not host"
        assert service.hosted_here(store.path)
        store.close()
        assert service.connect(Path(home) / "chain.duckdb") is None
    finally:
        os.close(read)
        os.waitpid(pid, 0)


def test_a_table_registered_after_the_store_was_opened_exists_at_the_next_open(home: Path) -> None:
    from fundtrail.store import schema

    first = ChainStore.open_home(home)  # this process hosts from here on
    try:
        name = "late_registered_table"
        schema.register_table(name, "chain VARCHAR, n INTEGER")
        try:
            with ChainStore.open_home(home) as second:
                assert second.query(f"SELECT count(*) FROM {name}") == [(0,)]
        finally:
            schema.EXTRA_TABLES.pop(name, None)
    finally:
        first.close()
