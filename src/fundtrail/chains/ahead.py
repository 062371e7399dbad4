"""Run a reader in a worker process, a few items ahead, so parsing and writing use two cores.

A reader thread shares the interpreter lock with the writer's own Python work (building Arrow columns,
interning); a process does not. Items cross a pipe pickled, which costs a few percent of what parsing
them did. The worker is a new interpreter (the caller may hold DuckDB's threads, which ``fork`` must not copy,
and ``multiprocessing``'s spawn would import the caller's main script again); it runs a few items
ahead (read off the pipe by a thread of the consumer, :data:`AHEAD_ITEMS`), is killed when the consumer stops
reading, exits when the consumer dies, and hands its exception to the consumer, which raises it after
the items read before it.
Exceptions are rebuilt from their class, arguments and attributes, so FundTrail's errors (whose
constructors take several arguments) arrive whole.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from typing import IO, Any

AHEAD_MIN_BYTES = 16 * 1024 * 1024
"""Inputs smaller than this are read in the caller's process (starting a worker costs ~0.5 s)."""

_ITEM, _END, _ERROR, _EOF = 0, 1, 2, 3


def _pack_error(exc: BaseException) -> tuple[type[BaseException], tuple[Any, ...], dict[str, Any]]:
    return type(exc), exc.args, dict(getattr(exc, "__dict__", {}))


def _unpack_error(packed: tuple[type[BaseException], tuple[Any, ...], dict[str, Any]]) -> BaseException:
    cls, args, attrs = packed
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(attrs)
    return exc


def _child_main() -> None:
    """The worker: reads (function, arguments) pickled on stdin, writes its items pickled on stdout."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # stray prints must not corrupt the stream
    func, args, kwargs = pickle.load(sys.stdin.buffer)

    def send(kind: int, item: Any) -> None:
        blob = pickle.dumps((kind, item), protocol=pickle.HIGHEST_PROTOCOL)
        out.write(struct.pack("<Q", len(blob)))
        out.write(blob)
        out.flush()

    try:
        try:
            for item in func(*args, **kwargs):
                send(_ITEM, item)
            send(_END, None)
        except BaseException as exc:  # handed to the consumer, which raises it
            try:
                send(_ERROR, _pack_error(exc))
            except Exception:  # an exception that does not pickle: its class name and message
                send(_ERROR, (RuntimeError, (f"{type(exc).__name__}: {exc}",), {}))
    except (BrokenPipeError, OSError):  # the consumer stopped reading or died
        os._exit(0)


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise EOFError
    return data


AHEAD_ITEMS = 4
"""Items the consumer's side holds ready (read off the pipe by a thread while the consumer writes)."""


def read_ahead(func: Callable[..., Iterator[Any]], *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
    """The items of ``func(*args, **kwargs)``, produced in a worker process (``func`` at module level).

    The worker is a fresh interpreter (``python -c``: nothing of the caller's ``__main__`` runs again).
    A thread of the caller reads its items off the pipe (unpickling them while the caller works outside
    the interpreter lock, in DuckDB) and holds up to :data:`AHEAD_ITEMS` of them, so the worker is not
    stalled while the caller writes a large batch; the queue and the pipe bound how far it runs ahead.
    """
    worker = subprocess.Popen([sys.executable, "-c", "from fundtrail.chains.ahead import _child_main; "
                               "_child_main()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert worker.stdin is not None and worker.stdout is not None
    stream = worker.stdout
    ready: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=AHEAD_ITEMS)
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            try:
                size = struct.unpack("<Q", _read_exact(stream, 8))[0]
                got: tuple[int, Any] = pickle.loads(_read_exact(stream, size))
            except (EOFError, OSError, ValueError):
                got = (_EOF, None)
            while not stop.is_set():
                try:
                    ready.put(got, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if got[0] != _ITEM:
                return

    reader = threading.Thread(target=drain, name="fundtrail-read-ahead", daemon=True)
    try:
        worker.stdin.write(pickle.dumps((func, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL))
        worker.stdin.close()
        reader.start()
        while True:
            kind, item = ready.get()
            if kind == _ITEM:
                yield item
            elif kind == _END:
                return
            elif kind == _EOF:
                raise RuntimeError(f"the reader process ended without a result (exit code "
                                   f"{worker.wait()})")
            else:
                raise _unpack_error(item)
    finally:
        stop.set()
        if worker.poll() is None:
            worker.kill()
        worker.wait()
        if reader.is_alive():
            reader.join(timeout=5)
        worker.stdout.close()
