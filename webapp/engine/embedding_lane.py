"""The embedding lane: texts become vectors, a small batch per step.

Requests for one model are served together: each step takes the next few texts round-robin
from every running request (so a question's one text never waits behind a long document's
hundreds) and runs them through the model in one forward pass. The model stays loaded
while requests run.
"""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

import numpy as np

from webapp.engine.core import Engine
from webapp.engine.failures import failure_message
from webapp.engine.jobs import EmbeddingResult, Job, JobStatus, Progress
from webapp.engine.lane import Lane
from webapp.engine.requests import EmbeddingRequest
from webapp.errors import AtelierError

log = logging.getLogger(__name__)

TEXTS_PER_STEP = 32  # one forward pass
MAX_EMBEDDING_JOBS = 16  # requests served together
EMBEDDING_FAILED = (
    "Indexing the text failed. Try again; if it keeps failing, tell your Atelier admin "
    "(the server log has the details)."
)


def _embed(model, texts):
    from webapp.backends.embedding import embed

    return embed(model, texts)


@dataclass
class _Run:
    job: Job
    texts: tuple[str, ...]
    done: int = 0  # texts embedded so far (they are taken in order)
    vectors: np.ndarray | None = None
    tokens: int = 0
    truncated: int = 0
    started: float = field(default_factory=time.time)


class EmbeddingLane(Lane):
    kind = "embedding"
    interleaves = True  # a question's vector is one short pass: never wait for an image batch
    capacity = MAX_EMBEDDING_JOBS

    def __init__(self, engine: Engine, embed=_embed):
        super().__init__(engine)
        self._embed = embed
        self._model: str | None = None
        self._handle = None
        self._hold = ExitStack()
        self._runs: list[_Run] = []

    def admit(self, request: EmbeddingRequest, job: Job) -> None:
        self.engine.registry().get(request.model, kind="embedding")

    def ready_in(self, now: float) -> float | None:
        if self._runs or self.engine.queued(self.kind):
            return 0.0
        return None

    def step(self, nested: bool) -> None:
        """Take waiting requests for the running model, then embed the next batch."""
        self._join()
        self._runs = [run for run in self._runs if not run.job.finished]  # cancelled
        if not self._runs:
            self.release()
            return
        batch = self._next_batch()
        texts = [run.texts[index] for run, index in batch]
        try:
            embedded = self._embed(self._handle, texts)
        except Exception as error:
            log.exception("embedding with %s failed", self._model)
            message = failure_message(error, EMBEDDING_FAILED)
            for run in {id(run): run for run, _ in batch}.values():
                run.job._finish(JobStatus.FAILED, error=message)
            self.release()
            self.engine.manager.release_memory()
            return
        self._scatter(batch, embedded)
        self._finish_done()

    def release(self) -> None:
        self._hold.close()
        self._hold = ExitStack()
        self._model = self._handle = None
        for run in self._runs:
            if not run.job.finished:
                run.job._finish(JobStatus.FAILED, error=EMBEDDING_FAILED)
        self._runs = []

    # -- the steps -------------------------------------------------------------------------

    def _join(self) -> None:
        """Requests join the running model's; with none running, the next model in line is
        loaded. Another model waiting lets this one drain first."""
        queued = self.engine.queued(self.kind)
        if not queued:
            return
        if self._runs and any(job.model != self._model for job in queued):
            return
        free = MAX_EMBEDDING_JOBS - len(self._runs)
        if free <= 0:
            return
        model = self._model
        jobs = self.engine.take(
            self.kind,
            key=lambda job: job.model,
            max_units=free,
            accept=lambda job: model is None or job.model == model,
        )
        if not jobs:
            return
        if self._model is None:
            try:
                self._handle = self._hold.enter_context(self.engine.manager.use(jobs[0].model))
                self._model = jobs[0].model
            except AtelierError as error:
                for job in jobs:
                    job._finish(JobStatus.FAILED, error=error.message)
                return
        for job in jobs:
            self._runs.append(_Run(job, job.request.texts))
            job._update(progress=Progress(0, len(job.request.texts)), stage="Indexing")

    def _next_batch(self) -> list[tuple[_Run, int]]:
        """Up to TEXTS_PER_STEP (run, text index) pairs, one per run per round."""
        batch: list[tuple[_Run, int]] = []
        taken = {id(run): run.done for run in self._runs}
        while len(batch) < TEXTS_PER_STEP:
            added = False
            for run in self._runs:
                index = taken[id(run)]
                if index < len(run.texts) and len(batch) < TEXTS_PER_STEP:
                    batch.append((run, index))
                    taken[id(run)] = index + 1
                    added = True
            if not added:
                break
        return batch

    def _scatter(self, batch: list[tuple[_Run, int]], embedded) -> None:
        for row, (run, index) in enumerate(batch):
            if run.vectors is None:
                width = embedded.vectors.shape[1]
                run.vectors = np.empty((len(run.texts), width), dtype=np.float32)
            run.vectors[index] = embedded.vectors[row]
            run.done = index + 1
            run.tokens += int(embedded.lengths[row])
            run.truncated += embedded.truncated(row)
        for run in {id(run): run for run, _ in batch}.values():
            run.job._update(
                progress=Progress(run.done, len(run.texts)),
                stage=f"{run.done:,} of {len(run.texts):,} passages indexed",
            )

    def _finish_done(self) -> None:
        now = time.time()
        for run in [run for run in self._runs if run.done == len(run.texts)]:
            self._runs.remove(run)
            result = EmbeddingResult(
                vectors=run.vectors,
                model=self._model or run.job.model,
                tokens=run.tokens,
                truncated=run.truncated,
                seconds=now - run.started,
            )
            if run.job._finish(JobStatus.DONE, result):
                self.engine.record(self.kind, now - (run.job.started_at or now))
