"""Background jobs: long analyses (big traces, path searches on hubs) run off the request threads.

A route submits work and waits a short while; when the work is not done by then the route answers
``202 Accepted`` with the job's id, and the client polls ``GET /jobs/{id}``. Jobs belong to the user who
started them: another user asking for one gets 404. Finished jobs are kept for ``keep_seconds``.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from fundtrail.api.errors import FieldError
from fundtrail.errors import FundTrailError, NotFoundError

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One piece of background work and, once finished, its result or error."""

    id: str
    kind: str
    owner: int
    created: float
    future: Future[Any]
    finished: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        """``running``, ``done`` or ``failed``."""
        if not self.future.done():
            return "running"
        return "failed" if self.future.exception() is not None else "done"


class JobManager:
    """A small pool of worker threads and the jobs they ran."""

    def __init__(self, workers: int = 2, keep_seconds: float = 3600.0, max_jobs: int = 200) -> None:
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.keep_seconds = keep_seconds
        self.max_jobs = max_jobs

    def submit(self, kind: str, owner: int, work: Callable[[], Any], **meta: Any) -> Job:
        """Start ``work`` in the pool; the job is registered before it runs."""
        self._expire()
        job_id = secrets.token_hex(12)

        def run() -> Any:
            try:
                return work()
            except (FundTrailError, FieldError):  # bad input or a refusal: the job's problem, not a failure
                raise
            except Exception:
                log.exception("job %s (%s) failed", job_id, kind)
                raise
            finally:
                with self._lock:
                    if job_id in self._jobs:
                        self._jobs[job_id].finished = time.time()

        with self._lock:
            if self._pool is None:  # started on first use, again after a shutdown (a new app lifespan)
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="fundtrail-job")
            future = self._pool.submit(run)
            job = Job(job_id, kind, owner, time.time(), future, meta=meta)
            self._jobs[job_id] = job
        return job

    def wait(self, job: Job, seconds: float) -> bool:
        """Wait up to ``seconds`` for the job; true when it finished (done or failed)."""
        try:
            job.future.exception(timeout=seconds)
        except FutureTimeout:
            return False
        return True

    def get(self, job_id: str, owner: int) -> Job:
        """The job, when ``owner`` started it; NotFoundError otherwise."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.owner != owner:
            raise NotFoundError("job", job_id)
        return job

    def _expire(self) -> None:
        now = time.time()
        with self._lock:
            old = [k for k, j in self._jobs.items()
                   if j.finished is not None and now - j.finished > self.keep_seconds]
            for key in old:
                del self._jobs[key]
            finished = sorted((j.finished, k) for k, j in self._jobs.items() if j.finished is not None)
            while len(self._jobs) > self.max_jobs and finished:
                del self._jobs[finished.pop(0)[1]]

    def shutdown(self) -> None:
        """Stop the workers; queued jobs are cancelled, running ones finish on their own."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
