"""Group commit of audit records: the records of many concurrent reads in one transaction, one signed head.

A read of case data runs in a snapshot (no write lock) and may disclose nothing before its audit records
are durable. :class:`GroupCommit` takes the records of each read (:meth:`GroupCommit.commit`, which
blocks), and one writer thread per process appends every record waiting at that moment in ONE write
transaction (:func:`fundtrail.audit.log.append_prepared`: hash chain and Merkle frontier as one append at
a time would leave them, ONE signed tree head), then wakes the reads it wrote. While it writes, the next
reads queue up and form the next group: the busier the service, the larger the groups.

The writer holds the database's write lock, which the writers of the other workers wait for: what does
not depend on a record's place in the log (its details' JSON, its time-stamp text) is made in the read's
own thread (:func:`fundtrail.audit.log.prepare`), and the coroutines waiting on one event loop
(:meth:`GroupCommit.commit_async`) are woken with one call per group.

When the transaction fails (the database is unavailable, or the log no longer matches its newest signed
head and :mod:`fundtrail.audit.log` refuses to extend it), every read of the group gets the error and
discloses nothing. The transaction runs inside ``guard`` (the service's writer queue), as every other
write of the service does.

A read may also say which generation of the data it read (``generation=``, with ``data_generation``
telling the writer how to read the current one in its transaction): when the data has moved on by the
time its group is written, its records are left out and :meth:`GroupCommit.commit` answers False, for
the read to read again. A read that is written was therefore current when its records were committed.
:attr:`GroupCommit.generation` is the generation the newest group saw.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session

from fundtrail.audit import log as audit_log
from fundtrail.audit.keys import AgencyKey, load_or_create
from fundtrail.audit.verifier import SignedHead

log = logging.getLogger(__name__)

MAX_GROUP = 2000
"""At most this many records in one transaction (the rest form the next group)."""


class WritableDatabase(Protocol):
    """What the group commit needs of a database (:class:`fundtrail.cases.db.CaseDB` is one)."""

    @property
    def home(self) -> Path:
        """The FundTrail home, holding the agency key."""
        ...

    def transaction(self) -> AbstractContextManager[Session]:
        """One transaction, committed at the end of the block."""
        ...


@dataclass
class _Ticket:
    entries: Sequence[Mapping[str, Any]]
    """The read's records, made ready for the log (:func:`fundtrail.audit.log.prepare`)."""
    generation: int | None = None
    """The generation of the data the read disclosed; None: written whatever it is now."""
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    written: bool = False
    loop: asyncio.AbstractEventLoop | None = None
    """The event loop of a coroutine waiting for the ticket (:meth:`GroupCommit.commit_async`), if any."""
    woken: asyncio.Future[None] | None = None
    """The future that coroutine awaits, set in ``loop`` once the ticket is done."""


@dataclass
class GroupStats:
    """What the writer did: transactions (each with one signed head), records, failed transactions, and
    reads left out because the data had changed since."""

    groups: int = 0
    records: int = 0
    failed: int = 0
    outdated: int = 0


class GroupCommit:
    """The audit writer of one process: :meth:`commit` returns once the records are committed."""

    def __init__(self, db: WritableDatabase, guard: Callable[[], AbstractContextManager[None]] | None = None,
                 *, data_generation: Callable[[Session], int | None] | None = None, pause: float = 0.0
                 ) -> None:
        self.db = db
        self._guard = guard or nullcontext
        self._data_generation = data_generation
        self._queue: queue.SimpleQueue[_Ticket | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self._key: AgencyKey | None = None
        self.pause = pause
        self.generation: int | None = None
        """The data's generation as the newest group's transaction saw it (None before the first)."""
        self.stats = GroupStats()

    def commit(self, entries: Sequence[audit_log.Entry], *, generation: int | None = None) -> bool:
        """Append ``entries`` (in order, with the records of other reads around them) and wait until
        they are committed; raises the transaction's error when they could not be. False (nothing
        written) when the data is no longer at ``generation``."""
        ticket = self._ticket(entries, generation)
        if ticket is None:
            return True
        self._queue.put(ticket)
        ticket.done.wait()
        return self._outcome(ticket)

    async def commit_async(self, entries: Sequence[audit_log.Entry], *,
                           generation: int | None = None) -> bool:
        """:meth:`commit` for a coroutine: it waits without holding a thread."""
        ticket = self._ticket(entries, generation)
        if ticket is None:
            return True
        ticket.loop = asyncio.get_running_loop()
        ticket.woken = woken = ticket.loop.create_future()
        self._queue.put(ticket)
        await asyncio.shield(woken)  # a caller that goes away leaves its records to be written
        return self._outcome(ticket)

    def _ticket(self, entries: Sequence[audit_log.Entry], generation: int | None) -> _Ticket | None:
        if not entries:
            return None
        # made ready here, in the read's thread, not while the writer holds the head: a record that
        # cannot be written fails its read alone
        prepared = audit_log.prepare(entries)
        self._running()
        return _Ticket(prepared, generation if self._data_generation is not None else None)

    @staticmethod
    def _outcome(ticket: _Ticket) -> bool:
        if ticket.error is not None:
            raise _copy(ticket.error)
        return ticket.written

    def close(self) -> None:
        """Write what is queued, then stop the writer thread (the next commit starts another, as the
        database's engine opens new connections after it was closed)."""
        with self._start:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
                thread.join()

    def _running(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._start:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="fundtrail-audit-writer", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            count = len(first.entries)
            stop = False
            while count < MAX_GROUP:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
                count += len(more.entries)
            try:
                self._write(group)
            except BaseException:  # the writer must outlive any error: readers wait for it
                log.exception("the audit writer failed after a group")
                for ticket in group:
                    if not ticket.done.is_set():
                        ticket.error = ticket.error or RuntimeError("the audit writer failed")
                        ticket.done.set()
            if stop:
                return

    def _write(self, group: list[_Ticket]) -> None:
        current: int | None = None
        later: list[tuple[Path, SignedHead]] = []
        taken: list[_Ticket] = []
        entries: list[Mapping[str, Any]] = []
        try:
            with self._guard(), self.db.transaction() as session:
                later = audit_log.keep_head_later(session)
                if self._data_generation is not None:
                    current = self._data_generation(session)
                taken = [t for t in group if t.generation is None or t.generation == current]
                entries = [e for ticket in taken for e in ticket.entries]
                if entries:
                    if self._key is None:
                        self._key = load_or_create(self.db.home)
                    audit_log.append_prepared(session, entries, key=self._key)
        except BaseException as error:  # every read of the group fails with it; the writer goes on
            log.error("could not write the audit records of %d reads: %s", len(group), error)
            self.stats.failed += 1
            for ticket in group:
                ticket.error = error
        else:
            self.generation = current
            if entries:
                self.stats.groups += 1
                self.stats.records += len(entries)
            self.stats.outdated += len(group) - len(taken)
            for ticket in taken:
                ticket.written = True
        waiting: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for ticket in group:
            ticket.done.set()
            if ticket.loop is not None and ticket.woken is not None:
                waiting.setdefault(ticket.loop, []).append(ticket.woken)
        for loop, futures in waiting.items():  # one wake-up per event loop for all its waiters
            try:
                loop.call_soon_threadsafe(_wake, futures)
            except RuntimeError:  # its event loop has closed: nobody waits any more
                pass
        for home, head in later:  # the home's copy of the newest head, once nobody waits for it
            try:
                audit_log.remember_head(home, head)
            except OSError as error:
                log.warning("could not keep the newest audit head in the home: %s", error)
        if self.pause and self._queue.qsize():
            time.sleep(self.pause)  # let another process's writer have its turn before the next group


def _wake(futures: list[asyncio.Future[None]]) -> None:
    """Wake the coroutines waiting for a group's tickets (in their event loop)."""
    for future in futures:
        if not future.done():
            future.set_result(None)


def _copy(error: BaseException) -> BaseException:
    """A copy of ``error`` to raise in one waiting thread (the same object raised in many threads at once
    would share one traceback)."""
    try:
        return copy.copy(error)
    except Exception:  # an exception that cannot be copied is raised as it is
        return error
