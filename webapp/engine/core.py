"""The engine: the one owner of a device.

A worker thread is the only thread that runs models: it serves the lanes (one per kind of
work) from a fair queue, runs model loads and unloads asked for by admins, and keeps
every failure inside its own job. Pages and services submit jobs and watch them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from webapp.engine.failures import FAILED_MESSAGE, failure_message
from webapp.engine.fair_queue import FairQueue
from webapp.engine.jobs import Job, JobStatus
from webapp.errors import AtelierError, Forbidden
from webapp.users import User

if TYPE_CHECKING:
    from webapp.engine.lane import Lane
    from webapp.engine.tokens import TokenCounter
    from webapp.loader import ModelManager, ModelStats
    from webapp.registry import Registry
    from webapp.settings import Settings

log = logging.getLogger(__name__)

SubmitCheck = Callable[[Any, User, list[Job]], None]

KEEP_FINISHED = 200  # finished jobs kept for the Queue page
WORKER_CALL_SECONDS = 600  # the longest a page waits for a load on the worker


class Engine:
    def __init__(self, manager: ModelManager, settings: Settings, tokens: TokenCounter):
        self.manager = manager
        self.settings = settings
        self.tokens = tokens
        self._lanes: dict[str, Lane] = {}
        self._queue = FairQueue(settings.queue_max_per_user, settings.queue_max_total)
        self._lock = threading.Condition()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._running: dict[str, list[Job]] = {}
        self._seconds_per_job: dict[str, float] = {}
        self._calls: deque[tuple[Callable[[], Any], Future]] = deque()
        self._submit_checks: list[SubmitCheck] = []
        self._end_listeners: list[Callable[[Job], None]] = []
        self._turn = 0  # which lane the worker looks at first, in rotation
        self._nested = False
        self._stopping = False
        self._restarts = 0
        self._worker = threading.Thread(target=self._work, name="atelier-engine", daemon=True)

    def add_lane(self, lane: Lane) -> None:
        self._lanes[lane.kind] = lane
        self._running[lane.kind] = []
        self._seconds_per_job[lane.kind] = 0.0

    def start(self) -> Engine:
        self._worker.start()
        return self

    def add_submit_check(self, check: SubmitCheck) -> None:
        """`check(request, user, their_unfinished_jobs)` runs at every submit and may refuse
        with an AtelierError (a quota, say)."""
        self._submit_checks.append(check)

    def add_end_listener(self, listener: Callable[[Job], None]) -> None:
        """`listener(job)` is called once when any job ends (done, failed or cancelled), in
        the thread that ended it: keep it quick, hand slow work to a thread of its own."""
        self._end_listeners.append(listener)

    # -- jobs: the public face -------------------------------------------------------------

    def submit(self, request: Any, user: User, client: str = "page") -> Job:
        """Queue a request for `user`; raises ValidationError, ModelNotFound, QueueFull or
        what a submit check raises (QuotaExceeded)."""
        lane = self._lanes.get(request.kind)
        if lane is None:
            raise AtelierError(f"This engine does not run {request.kind} jobs.")
        request.check()
        for check in self._submit_checks:
            with self._lock:
                theirs = [j for j in self._jobs.values() if j.user.id == user.id and not j.finished]
            check(request, user, theirs)
        job = Job(
            request=request,
            user=user,
            kind=request.kind,
            client=client,
            _cancel=self.cancel,
            _ended=self._job_ended,
        )
        lane.admit(request, job)
        with self._lock:
            if self._stopping:
                raise AtelierError("Atelier is shutting down; try again in a moment.")
            self._queue.push(job, retry_after=self._seconds_until_room(job.kind))
            self._jobs[job.id] = job
            self._lock.notify_all()
        return job

    def cancel(self, job: Job, by_user: User) -> bool:
        """Cancel a job: only its owner or an admin may. Queued jobs leave the queue; running
        ones end now for their owner and stop computing at the next step or token."""
        if by_user.id != job.user.id and not by_user.is_admin:
            raise Forbidden("You can only cancel your own jobs.")
        with self._lock:
            if job.finished:
                return False
            queued = self._queue.remove(job)
            job.cancelled_by = by_user.display_name
            job._finish(JobStatus.CANCELLED)
            if not queued:
                self._lanes[job.kind].cancel(job)
            self._lock.notify_all()
        return True

    def jobs(self, user: User, everyone: bool = False) -> list[Job]:
        """This user's jobs (admins may ask for everyone's), newest first, with position and ETA."""
        if everyone and not user.is_admin:
            raise Forbidden("Only an admin can see everyone's jobs.")
        with self._lock:
            self._estimate()
            jobs = [j for j in self._jobs.values() if everyone or j.user.id == user.id]
        return sorted(jobs, key=lambda j: j.submitted_at, reverse=True)

    def get_job(self, job_id: str, user: User) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or (job.user.id != user.id and not user.is_admin):
                raise Forbidden("That job does not exist or is not yours.")
            self._estimate()
            return job

    def lane(self, kind: str) -> Lane:
        return self._lanes[kind]

    def notices(self) -> list[str]:
        """What people should know about the engine's lanes now (a backend that is down)."""
        return [notice for lane in self._lanes.values() for notice in lane.notices()]

    def queue_length(self) -> int:
        with self._lock:
            return len(self._queue)

    def running_count(self) -> int:
        with self._lock:
            return sum(not job.finished for jobs in self._running.values() for job in jobs)

    def shutdown(self, timeout: float = 30) -> None:
        """Cancel every waiting and running job, stop the worker, unload every model."""
        with self._lock:
            self._stopping = True
            running = [job for jobs in self._running.values() for job in jobs]
            for job in [*self._queue.order(), *running]:
                self._queue.remove(job)
                job.cancelled_by = "the server (shutting down)"
                job._finish(JobStatus.CANCELLED, error="Atelier is shutting down.")
            self._lock.notify_all()
        if self._worker.is_alive():
            self._worker.join(timeout)

    def _job_ended(self, job: Job) -> None:
        for listener in self._end_listeners:
            try:
                listener(job)
            except Exception:  # a listener's fault never reaches the job or the worker
                log.exception("a job-end listener failed for %s", job.id)

    # -- models: asked of the worker, the only thread that loads them -----------------------

    @property
    def device(self) -> Any:
        return self.manager.device

    def memory_budget_bytes(self) -> int:
        return self.manager.budget_bytes

    def resident_bytes(self) -> int:
        return self.manager.resident_bytes()

    def registry(self) -> Registry:
        return self.manager.registry()

    def rescan(self) -> Registry:
        return self.manager.registry.rescan()

    def model_stats(self) -> list[ModelStats]:
        return self.manager.stats()

    def load_model(self, name: str) -> ModelStats:
        self.on_worker(lambda: self.manager.get(name))
        return self.manager.stats_of(name)

    def unload_model(self, name: str) -> bool:
        return self.on_worker(lambda: self.manager.unload(name))

    def pin_model(self, name: str) -> None:
        self.on_worker(lambda: self.manager.pin(name))

    def unpin_model(self, name: str) -> None:
        self.manager.unpin(name)

    def on_worker(self, call: Callable[[], Any], timeout: float = WORKER_CALL_SECONDS) -> Any:
        """Run `call` on the worker thread, between two steps of work; its result or error."""
        if threading.current_thread() is self._worker or not self._worker.is_alive():
            return call()
        future: Future = Future()
        with self._lock:
            if self._stopping:
                raise AtelierError("Atelier is shutting down; try again in a moment.")
            self._calls.append((call, future))
            self._lock.notify_all()
        return future.result(timeout)

    # -- for lanes, on the worker thread ----------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    def take(
        self, kind: str, key: Callable[[Job], Hashable], max_units: int, **options: Any
    ) -> list[Job]:
        """The next batch of `kind` from the fair queue (`FairQueue.take_batch`: `units` and
        `accept` may narrow it), marked running."""
        with self._lock:
            jobs = self._queue.take_batch(kind, key, max_units, **options)
            for job in jobs:
                job._start()
            self._running[kind].extend(jobs)
        return jobs

    def wake(self) -> None:
        """Something changed outside the worker (a remote slot came free): look again."""
        with self._lock:
            self._lock.notify_all()

    def queued(self, kind: str) -> list[Job]:
        """The waiting jobs of `kind`, in the order they would be served."""
        with self._lock:  # re-entrant: lanes ask from ready_in, with the lock held
            return [job for job in self._queue.order() if job.kind == kind]

    def record(self, kind: str, seconds: float) -> None:
        """How long a job of `kind` took, for estimates."""
        with self._lock:
            previous = self._seconds_per_job[kind]
            self._seconds_per_job[kind] = (
                seconds if not previous else 0.7 * previous + 0.3 * seconds
            )

    def interleave(self, current: Lane) -> None:
        """Called by a lane in the middle of a long step: the lanes that interleave take one
        step each, so their jobs never wait for the long one to end."""
        if self._nested:
            return
        self._nested = True
        try:
            with self._lock:
                now = time.time()
                ready = [
                    lane
                    for lane in self._lanes.values()
                    if lane is not current and lane.interleaves and lane.ready_in(now) == 0
                ]
            for lane in ready:
                self._step(lane, nested=True)
        finally:
            self._nested = False

    def serve_waiting(self, current: Lane) -> None:
        """Called by a lane between two units of background work (a training step): the
        asked-for calls and every other lane with work ready are served first, round after
        round, until nothing else waits. Interactive work never waits for the background."""
        while not self._stopping:
            with self._lock:
                calls = bool(self._calls)
                now = time.time()
                ready = [
                    lane
                    for lane in self._lanes.values()
                    if lane is not current and lane.ready_in(now) == 0
                ]
            if calls:
                self._run_calls()
            elif not ready:
                return
            for lane in ready:
                self._step(lane, nested=False)
                self._tidy()

    # -- the worker -------------------------------------------------------------------------

    def _work(self) -> None:
        """The worker's life. A fault in the loop itself (not in a lane: those fail their
        own jobs) fails what was running and starts the loop again, so waiting jobs are
        served by a live worker, never left to a dead thread."""
        while True:
            try:
                self._serve()
                break
            except BaseException:
                log.exception("the engine's worker loop failed; starting it again")
                self._restarts += 1
                self._fail_running(FAILED_MESSAGE)
                if self._stopping:
                    break
        for lane in self._lanes.values():
            self._release(lane)
        self.manager.unload_all()

    def _serve(self) -> None:
        while (lane := self._next_work()) is not None:
            if lane == "calls":
                self._run_calls()
                continue
            self._step(lane, nested=False)
            self._tidy()

    def _fail_running(self, message: str, kind: str | None = None) -> None:
        with self._lock:
            running = [
                job
                for lane_kind, jobs in self._running.items()
                if kind in (None, lane_kind)
                for job in jobs
                if not job.finished
            ]
        for job in running:
            job._finish(JobStatus.FAILED, error=message)
        for lane in self._lanes.values():
            if kind in (None, lane.kind):
                self._release(lane)

    def health(self) -> dict[str, Any]:
        """The engine's state, for a health check: is the worker alive, how often has its
        loop been started again, what waits and runs, which models are loaded."""
        with self._lock:
            queued, running = len(self._queue), self.running_count()
        return {
            "worker_alive": self._worker.is_alive(),
            "worker_restarts": self._restarts,
            "stopping": self._stopping,
            "queued": queued,
            "running": running,
            "models_loaded": [stats.name for stats in self.manager.stats()],
        }

    def _next_work(self) -> Lane | str | None:
        """Wait until a lane has work (taking turns), a call is asked for, or the engine
        stops with nothing left running."""
        with self._lock:
            while True:
                if self._calls:
                    return "calls"
                busy = any(not job.finished for jobs in self._running.values() for job in jobs)
                if self._stopping and not busy:
                    return None
                now = time.time()
                lanes = list(self._lanes.values())
                lanes = lanes[self._turn :] + lanes[: self._turn]
                waits = [(lane, lane.ready_in(now)) for lane in lanes]
                for lane, wait in waits:
                    if wait == 0:
                        self._turn = (list(self._lanes.values()).index(lane) + 1) % len(lanes)
                        return lane
                pending = [wait for _, wait in waits if wait is not None]
                self._lock.wait(min(pending) if pending else None)

    def _step(self, lane: Lane, nested: bool) -> None:
        """One step of a lane; a fault fails the lane's running jobs, never the worker."""
        try:
            lane.step(nested)
        except Exception as error:
            log.exception("the %s lane failed", lane.kind)
            message = failure_message(error, FAILED_MESSAGE)
            del error
            self._fail_running(message, kind=lane.kind)

    def _release(self, lane: Lane) -> None:
        try:
            lane.release()
        except Exception:
            log.exception("releasing the %s lane failed", lane.kind)
        self.manager.release_memory()

    def _run_calls(self) -> None:
        with self._lock:
            calls, self._calls = list(self._calls), deque()
        for call, future in calls:
            try:
                future.set_result(call())
            except BaseException as error:
                future.set_exception(error)

    def _tidy(self) -> None:
        """Forget finished running jobs, and the oldest finished jobs beyond a few hundred."""
        with self._lock:
            for kind, jobs in self._running.items():
                self._running[kind] = [job for job in jobs if not job.finished]
            if len(self._jobs) > KEEP_FINISHED * 2:
                finished = [job_id for job_id, job in self._jobs.items() if job.finished]
                for job_id in finished[: max(0, len(finished) - KEEP_FINISHED // 2)]:
                    del self._jobs[job_id]

    # -- position and estimates -------------------------------------------------------------

    def _seconds_until_room(self, kind: str) -> int:
        """When the queue will next take jobs of `kind` off its list: as the running batch
        ends (lock held)."""
        self._estimate()
        running = [j.eta_seconds or 0.0 for j in self._running[kind] if not j.finished]
        seconds = max(running) if running else self._seconds_per_job[kind]
        return max(1, math.ceil(seconds or 10))

    def _estimate(self) -> None:
        """Fill in queue positions and ETAs (called with the lock held)."""
        now = time.time()
        remaining = dict.fromkeys(self._lanes, 0.0)
        for kind, jobs in self._running.items():
            for job in jobs:
                if job.finished:
                    continue
                done = job.progress.fraction
                if done > 0 and job.started_at:
                    job.eta_seconds = (now - job.started_at) / done * (1 - done)
                else:
                    job.eta_seconds = self._seconds_per_job[kind] or None
                remaining[kind] = max(remaining[kind], job.eta_seconds or 0.0)
        ahead = dict.fromkeys(self._lanes, 0)
        for position, job in enumerate(self._queue.order(), start=1):
            job.position = position
            per_job = self._seconds_per_job[job.kind]
            batches_ahead = ahead[job.kind] // self._lanes[job.kind].capacity
            job.eta_seconds = (
                remaining[job.kind] + (batches_ahead + 1) * per_job if per_job else None
            )
            ahead[job.kind] += 1
