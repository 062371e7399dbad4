"""The chain store shared by many processes: the process holding the DuckDB file serves the others.

DuckDB lets one process open a database file for writing and no other process open it at all beside
it. FundTrail's server, CLI commands, watchers and ingests must work on one home at the same time, so
the process that opens ``chain.duckdb`` (whichever comes first) becomes its **host**: it keeps its own
connection and answers the others over a local socket, each client connection served by a DuckDB cursor
of its own in a thread of the host. DuckDB's MVCC then gives every client what it gives threads of one
process: snapshot reads while a writer appends, and a write transaction that is committed whole or not
at all.

* **Election without a coordinator.** Opening tries, in a loop bounded by ``FUNDTRAIL_STORE_WAIT``
  seconds: connect to the home's socket; else open the file (and host). The DuckDB file lock decides
  who hosts; the socket exists only while its host holds the lock.
* **Hand-over.** A host that closes stops accepting, lets running requests and open transactions of its
  clients finish (bounded), closes their connections, checkpoints and releases the file. A client whose
  connection ends between statements reconnects, hosting if nobody else does, and replays a read whose
  result it had not fetched yet; a connection lost inside a transaction is an error (the transaction is
  rolled back by DuckDB, as a killed process's would be, and rerunning the command completes it).
* **Crash safety is DuckDB's.** A client killed mid-batch closes its socket: the host rolls its open
  transaction back. A host killed mid-write leaves the WAL that the next host replays on open.
* **Local and same-user only.** The socket lives in Linux's abstract namespace (no file to clean up,
  no path length limit), named from the store file's real path; the host checks every peer's user id
  (``SO_PEERCRED``) and refuses other users. Messages are length-prefixed pickles read by an unpickler
  that constructs only plain values (numbers, strings, dates, decimals, numpy arrays); tables sent to
  ``register`` travel as Arrow IPC streams.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import pickle
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import duckdb

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!Q")
MAX_MESSAGE = 1 << 34  # 16 GiB: a bound on what one frame can make either side allocate
DRAIN_SECONDS = 60.0
_READ_STATEMENT = re.compile(
    r"^\s*(\(\s*)*(select|with|from|show|describe|summarize|explain|values|pragma)\b",
                             re.IGNORECASE)
_BEGIN = re.compile(r"^\s*begin\b", re.IGNORECASE)
_END = re.compile(r"^\s*(commit|rollback|abort|end)\b", re.IGNORECASE)


def socket_name(path: str | Path) -> bytes:
    """The abstract socket name of a store file (the same for every process naming the same file)."""
    real = os.path.realpath(str(path))
    digest = hashlib.sha256(real.encode()).hexdigest()[:40]
    return b"\0fundtrail-store-" + digest.encode()


def wait_seconds() -> float:
    """How long an opener waits for a busy store (``FUNDTRAIL_STORE_WAIT``, default 30 s)."""
    try:
        return max(0.0, float(os.environ.get("FUNDTRAIL_STORE_WAIT", "30")))
    except ValueError:
        return 30.0


# ---------------------------------------------------------------------------------------- framing

_ALLOWED = {
    ("decimal", "Decimal"), ("datetime", "datetime"), ("datetime", "date"), ("datetime", "time"),
    ("datetime", "timedelta"), ("datetime", "timezone"), ("uuid", "UUID"), ("zoneinfo", "ZoneInfo"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "complex"),
    ("builtins", "slice"), ("collections", "OrderedDict"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("numpy.ma.core", "_mareconstruct"),
    ("numpy.ma.core", "MaskedArray"), ("numpy.ma", "MaskedArray"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _PlainUnpickler(pickle.Unpickler):
    """Builds only plain values: any other class in a message is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module == "numpy" and name.endswith("DType")) \
                or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"store service message names a forbidden class {module}.{name}")


def _send(sock: socket.socket, message: Any) -> None:
    body = pickle.dumps(message, protocol=5)
    sock.sendall(_HEADER.pack(len(body)) + body)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        if n == 0:
            raise ConnectionResetError("store service connection closed")
        got += n
    return bytes(buf)


def _recv(sock: socket.socket) -> Any:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if size > MAX_MESSAGE:
        raise ConnectionResetError(f"store service message of {size} bytes refused")
    return _PlainUnpickler(io.BytesIO(_recv_exact(sock, size))).load()


def _arrow_bytes(table: Any) -> bytes:
    import pyarrow as pa

    if not isinstance(table, pa.Table):
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        else:
            raise TypeError("only pyarrow Tables can be registered on a shared chain store")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _arrow_table(data: bytes) -> Any:
    import pyarrow as pa

    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


# ------------------------------------------------------------------------------------------- host

class StoreHost:
    """Serves one open DuckDB database to other processes of the same user."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str) -> None:
        self.con = con
        self.path = path
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(socket_name(path))
        self._listener.listen(128)
        self._lock = threading.Lock()
        self._clients: dict[int, _ClientSession] = {}
        self._closing = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._accept, name="store-host", daemon=True)
        self._thread.start()
        log.info("chain store %s: serving other processes", path)

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            if uid != os.getuid():
                log.warning("chain store: refused a connection from user id %d", uid)
                conn.close()
                continue
            session = _ClientSession(self, conn)
            with self._lock:
                if self._closing.is_set():
                    conn.close()
                    return
                self._clients[id(session)] = session
            threading.Thread(target=session.run, name="store-client", daemon=True).start()

    def _forget(self, session: _ClientSession) -> None:
        with self._lock:
            self._clients.pop(id(session), None)
            self._idle.notify_all()

    @property
    def clients(self) -> int:
        """How many client connections are open."""
        with self._lock:
            return len(self._clients)

    def close(self, drain: float = DRAIN_SECONDS) -> None:
        """Stop serving: let running requests and open transactions finish (up to ``drain`` s)."""
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        deadline = time.monotonic() + drain
        with self._lock:
            while True:
                for session in list(self._clients.values()):
                    session.release_if_idle()
                if not self._clients or time.monotonic() >= deadline:
                    break
                self._idle.wait(timeout=0.05)
            for session in list(self._clients.values()):  # past the bound: cut them off
                session.release(force=True)
        self._thread.join(timeout=1.0)


class _ClientSession:
    """One client connection, served by a cursor of the host's connection."""

    def __init__(self, host: StoreHost, conn: socket.socket) -> None:
        self.host = host
        self.conn = conn
        self.cursor = host.con.cursor()
        self.in_transaction = False
        self.busy = False
        self.released = False
        self.registered: dict[str, Any] = {}

    def release_if_idle(self) -> None:
        if not self.busy and not self.in_transaction:
            self.release()

    def release(self, force: bool = False) -> None:
        if self.released:
            return
        self.released = True
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)
        if force:
            log.warning("chain store: a client's open transaction was cut off on hand-over")

    def run(self) -> None:
        try:
            while True:
                try:
                    request = _recv(self.conn)
                except (OSError, pickle.UnpicklingError, EOFError, ValueError):
                    return
                with self.host._lock:
                    if self.released:
                        return
                    self.busy = True
                try:
                    reply = self._handle(request)
                finally:
                    with self.host._lock:
                        self.busy = False
                        self.host._idle.notify_all()
                try:
                    _send(self.conn, reply)
                except OSError:
                    return
                if self.host._closing.is_set():
                    with self.host._lock:
                        self.release_if_idle()
        finally:
            with contextlib.suppress(duckdb.Error):
                if self.in_transaction:
                    self.cursor.execute("ROLLBACK")
            with contextlib.suppress(duckdb.Error):
                self.cursor.close()
            self.conn.close()
            self.host._forget(self)

    def _handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        try:
            return {"ok": True, "value": self._do(op, request)}
        except duckdb.Error as error:
            return {"ok": False, "error": type(error).__name__, "message": str(error)}
        except Exception as error:  # noqa: BLE001 - any failure goes back to the client as one error
            return {"ok": False, "error": "Error", "message": f"{type(error).__name__}: {error}"}

    def _do(self, op: Any, request: dict[str, Any]) -> Any:
        cur = self.cursor
        if op == "execute":
            sql = str(request["sql"])
            params = request.get("params")
            if params is None:
                cur.execute(sql)
            else:
                cur.execute(sql, params)
            if _BEGIN.match(sql):
                self.in_transaction = True
            elif _END.match(sql):
                self.in_transaction = False
            return None
        if op == "executemany":
            cur.executemany(str(request["sql"]), request["params"])
            return None
        if op == "fetchall":
            return cur.fetchall()
        if op == "fetchone":
            return cur.fetchone()
        if op == "fetchmany":
            return cur.fetchmany(int(request.get("size", 1)))
        if op == "fetchnumpy":
            return cur.fetchnumpy()
        if op == "description":
            return cur.description
        if op == "arrow":
            params = request.get("params")
            rel = cur.sql(str(request["sql"]), params=params) if params else cur.sql(str(request["sql"]))
            return _arrow_bytes(rel.to_arrow_table()) if rel is not None else None
        if op == "register":
            table = _arrow_table(request["data"])
            name = str(request["name"])
            self.registered[name] = table
            cur.register(name, table)
            return None
        if op == "unregister":
            name = str(request["name"])
            self.registered.pop(name, None)
            cur.unregister(name)
            return None
        if op == "abort":
            if hasattr(cur, "abort"):
                cur.abort()
            return None
        if op == "ping":
            return os.getpid()
        raise ValueError(f"unknown store service operation {op!r}")


# ----------------------------------------------------------------------------------------- client

def connect(path: str | Path) -> socket.socket | None:
    """A connection to the host of ``path``, or None when no process serves it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(socket_name(path))
    except (ConnectionRefusedError, FileNotFoundError):
        sock.close()
        return None
    return sock


class RemoteResult:
    """What ``execute`` returns on a shared store: the fetch methods of a DuckDB result."""

    def __init__(self, con: RemoteConnection) -> None:
        self._con = con

    def fetchall(self) -> list[tuple[Any, ...]]:  # noqa: D102
        return list(self._con._fetch("fetchall"))

    def fetchone(self) -> tuple[Any, ...] | None:  # noqa: D102
        value: tuple[Any, ...] | None = self._con._fetch("fetchone")
        return value

    def fetchmany(self, size: int = 1) -> list[tuple[Any, ...]]:  # noqa: D102
        return list(self._con._fetch("fetchmany", size=size))

    def fetchnumpy(self) -> dict[str, Any]:  # noqa: D102
        value: dict[str, Any] = self._con._fetch("fetchnumpy")
        return value

    @property
    def description(self) -> Any:  # noqa: D102
        return self._con._fetch("description")


class RemoteRelation:
    """What ``sql`` returns on a shared store (read to Arrow)."""

    def __init__(self, con: RemoteConnection, sql: str, params: Any) -> None:
        self._con, self._sql, self._params = con, sql, params

    def to_arrow_table(self) -> Any:  # noqa: D102
        data = self._con._call({"op": "arrow", "sql": self._sql, "params": self._params}, replay=True)
        return None if data is None else _arrow_table(data)

    arrow = to_arrow_table

    def fetchall(self) -> list[tuple[Any, ...]]:  # noqa: D102
        return self._con.execute(self._sql, self._params).fetchall()


class RemoteConnection:
    """A DuckDB connection look-alike whose statements run in the store's host process.

    It implements what FundTrail's store users call: ``execute`` (then ``fetchall``, ``fetchone``,
    ``fetchmany``, ``fetchnumpy``, ``description``), ``executemany``, ``sql(...).to_arrow_table()``,
    ``register`` (pyarrow Tables) and ``unregister``, ``cursor``, ``abort`` and ``close``.
    """

    def __init__(self, path: str, reconnect: Callable[[], socket.socket]) -> None:
        self.path = path
        self._reconnect = reconnect
        self._sock: socket.socket | None = reconnect()
        self._in_transaction = False
        self._last: tuple[str, Any] | None = None  # the last statement, replayed for a pending read
        self._registered: dict[str, bytes] = {}
        self._lock = threading.Lock()

    # -- transport
    def _ensure(self) -> socket.socket:
        if self._sock is None:
            self._sock = self._reconnect()
            for name, data in self._registered.items():  # the new host needs our staged tables again
                _send(self._sock, {"op": "register", "name": name, "data": data})
                self._check(_recv(self._sock))
        return self._sock

    def _roundtrip(self, request: dict[str, Any]) -> Any:
        sock = self._ensure()
        _send(sock, request)
        return _recv(sock)

    def _call(self, request: dict[str, Any], *, replay: bool = False) -> Any:
        with self._lock:
            try:
                reply = self._roundtrip(request)
            except (OSError, EOFError) as error:
                self._drop()
                if self._in_transaction or not replay:
                    self._in_transaction = False
                    raise duckdb.ConnectionException(
                        f"the chain store's host process went away during a statement ({error}); "
                        "its transaction was rolled back: rerun the command") from None
                reply = self._roundtrip(request)
            return self._check(reply)

    @staticmethod
    def _check(reply: dict[str, Any]) -> Any:
        if reply.get("ok"):
            return reply.get("value")
        kind = getattr(duckdb, str(reply.get("error")), None)
        if not (isinstance(kind, type) and issubclass(kind, duckdb.Error)):
            kind = duckdb.Error
        raise kind(str(reply.get("message")))

    def _drop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def _peer_gone(self) -> bool:
        """True when the host has closed this idle connection (a hand-over between statements)."""
        if self._sock is None:
            return True
        try:
            data = self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return data == b""

    # -- the connection API
    def execute(self, sql: str, params: Any = None) -> RemoteResult:  # noqa: D102
        if not self._in_transaction and self._peer_gone():
            self._drop()
        read = bool(_READ_STATEMENT.match(sql))
        self._call({"op": "execute", "sql": sql, "params": params}, replay=read and not self._in_transaction)
        if _BEGIN.match(sql):
            self._in_transaction = True
        elif _END.match(sql):
            self._in_transaction = False
        self._last = (sql, params) if read else None
        return RemoteResult(self)

    def _fetch(self, op: str, **extra: Any) -> Any:
        with self._lock:
            try:
                reply = self._roundtrip({"op": op, **extra})
            except (OSError, EOFError):
                self._drop()
                if self._last is None or self._in_transaction:
                    raise duckdb.ConnectionException(
                        "the chain store's host process went away before a result was read: rerun the command"
                    ) from None
                sql, params = self._last  # a read: run it again on the new host, then fetch
                self._check(self._roundtrip({"op": "execute", "sql": sql, "params": params}))
                reply = self._roundtrip({"op": op, **extra})
            return self._check(reply)

    def executemany(self, sql: str, params: Any) -> RemoteConnection:  # noqa: D102
        self._call({"op": "executemany", "sql": sql, "params": [list(p) for p in params]})
        return self

    def sql(self, sql: str, params: Any = None) -> RemoteRelation:  # noqa: D102
        return RemoteRelation(self, sql, params)

    def register(self, name: str, table: Any) -> RemoteConnection:  # noqa: D102
        data = _arrow_bytes(table)
        self._call({"op": "register", "name": name, "data": data})
        self._registered[name] = data
        return self

    def unregister(self, name: str) -> RemoteConnection:  # noqa: D102
        self._registered.pop(name, None)
        self._call({"op": "unregister", "name": name}, replay=True)
        return self

    def abort(self) -> None:  # noqa: D102
        if self._sock is not None:
            self._call({"op": "abort"}, replay=True)

    def cursor(self) -> RemoteConnection:
        """Another connection to the same host (one per thread, as DuckDB cursors)."""
        return RemoteConnection(self.path, self._reconnect)

    def host_pid(self) -> int:
        """The process id of the store's host."""
        return int(self._call({"op": "ping"}, replay=True))

    def close(self) -> None:  # noqa: D102
        self._drop()


# ------------------------------------------------------------------------- one store per process

class _Shared:
    """What this process holds of one store file: how many stores use it, and the host if it hosts."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.users = 0
        self.con: duckdb.DuckDBPyConnection | None = None
        self.host: StoreHost | None = None


_REGISTRY: dict[str, _Shared] = {}
_REGISTRY_LOCK = threading.RLock()


def holder(error: duckdb.Error) -> str | None:
    """The process a DuckDB lock error names ("PID n, file"), or None for other errors."""
    held = re.search(r"Conflicting lock is held in (.+?) \(PID (\d+)\)", str(error))
    return None if held is None else f"PID {held.group(2)}, {Path(held.group(1)).name}"


def _open_file(path: str,
               prepare: Callable[[duckdb.DuckDBPyConnection], None]) -> duckdb.DuckDBPyConnection | None:
    """Open the file for writing, or None when another process holds it."""
    try:
        con = duckdb.connect(path)
    except duckdb.IOException as error:
        if holder(error) is None:
            raise
        return None
    try:
        prepare(con)
    except BaseException:
        con.close()
        raise
    return con


def _attach(shared: _Shared, prepare: Callable[[duckdb.DuckDBPyConnection], None],
            busy: Callable[[str], BaseException]) -> socket.socket | None:
    """Make this process host ``shared`` or find its host; the socket to the host, None when hosting."""
    deadline = time.monotonic() + wait_seconds()
    pause = 0.01
    last_holder = "another process"
    while True:
        if shared.host is not None:
            return None
        sock = connect(shared.path)
        if sock is not None:
            return sock
        con = _open_file(shared.path, prepare)
        if con is not None:
            try:
                shared.host = StoreHost(con, shared.path)
            except OSError:  # a host appeared between our two checks: it holds the name
                con.close()
                continue
            shared.con = con
            return None
        try:
            duckdb.connect(shared.path, read_only=True).close()
        except duckdb.IOException as error:
            last_holder = holder(error) or last_holder
        if time.monotonic() >= deadline:
            raise busy(last_holder)
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


def acquire(path: str | Path, prepare: Callable[[duckdb.DuckDBPyConnection], None],
            busy: Callable[[str], BaseException]) -> tuple[Any, bool]:
    """A connection to the shared store at ``path``: (connection, hosted here).

    The connection is a cursor of this process's own connection when this process hosts the store,
    else a :class:`RemoteConnection` to the host. Pair every call with :func:`release`.
    """
    key = os.path.realpath(str(path))
    with _REGISTRY_LOCK:
        shared = _REGISTRY.setdefault(key, _Shared(key))
        sock = _attach(shared, prepare, busy)
        shared.users += 1
        if sock is None:
            assert shared.con is not None
            cursor = shared.con.cursor()
            try:  # tables registered since the host opened (a layer imported later) exist from now on
                prepare(cursor)
            except BaseException:
                cursor.close()
                shared.users -= 1
                raise
            return cursor, True

        first = [sock]

        def reconnect() -> socket.socket:
            if first:
                return first.pop()
            with _REGISTRY_LOCK:
                again = _attach(shared, prepare, busy)
                if again is not None:
                    return again
                own = connect(shared.path)  # we host now: talk to our own host like any client
                if own is None:
                    raise duckdb.ConnectionException(f"chain store {shared.path}: no host answers")
                return own

        remote = RemoteConnection(key, reconnect)
        try:  # the tables this process's layers registered, which the host may not know
            prepare(cast(duckdb.DuckDBPyConnection, remote))
        except BaseException:
            remote.close()
            shared.users -= 1
            raise
        return remote, False


def release(path: str | Path, drain: float = DRAIN_SECONDS) -> None:
    """One store of ``path`` closed in this process; the last one hands the store over."""
    key = os.path.realpath(str(path))
    with _REGISTRY_LOCK:
        shared = _REGISTRY.get(key)
        if shared is None:
            return
        shared.users -= 1
        if shared.users > 0:
            return
        del _REGISTRY[key]
        host, con = shared.host, shared.con
        shared.host = shared.con = None
    if host is not None:
        host.close(drain)
    if con is not None:
        try:
            con.execute("CHECKPOINT")
        except duckdb.Error as error:
            log.warning("checkpoint on close skipped: %s", error)
        con.close()


def _forget_after_fork() -> None:
    """In a forked child: drop the inherited hosts (their sockets stay the parent's to serve and close)."""
    for shared in _REGISTRY.values():
        if shared.host is not None:  # close the child's copies only: a shutdown would reach the parent's
            shared.host._listener.close()
            for session in shared.host._clients.values():
                session.conn.close()
        shared.host = shared.con = None
    _REGISTRY.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def hosted_here(path: str | Path) -> bool:
    """True when this process hosts the store at ``path``."""
    shared = _REGISTRY.get(os.path.realpath(str(path)))
    return shared is not None and shared.host is not None
