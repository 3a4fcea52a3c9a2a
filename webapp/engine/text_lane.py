"""The text lane: the requests for one model decode together, a new one joins the running
batch at the next token, and each step makes one token for every sequence. Models served
elsewhere (OpenAI-compatible servers, `remote_text.py`) stream from there instead."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from webapp.backends import voice_adapters
from webapp.backends.textgen import DecodeBatch, Sampling, Sequence
from webapp.engine.core import Engine
from webapp.engine.failures import failure_message
from webapp.engine.jobs import Job, JobStatus, Progress, TextResult
from webapp.engine.lane import Lane
from webapp.engine.remote_text import RemoteText
from webapp.engine.requests import TextRequest
from webapp.engine.tokens import surely_fits, too_long_message
from webapp.errors import AtelierError, ValidationError

log = logging.getLogger(__name__)

MAX_TEXT_BATCH = 16  # sequences decoding together
TEXT_FAILED = (
    "Writing the answer failed. Try again; if it keeps failing, tell your Atelier admin "
    "(the server log has the details)."
)


class TextLane(Lane):
    kind = "text"
    interleaves = True
    capacity = MAX_TEXT_BATCH

    def __init__(self, engine: Engine, decode_batch=DecodeBatch):
        super().__init__(engine)
        self._decode_batch = decode_batch
        self._session: _Session | None = None
        self.remote = RemoteText(engine, engine.settings.text_servers)

    # -- at submit --------------------------------------------------------------------------

    def admit(self, request: TextRequest, job: Job) -> None:
        """Check that the prompt and the answer fit the model, tokenizing the prompt once,
        here. A chat that surely fits a served model is not counted: asking its server would
        delay the answer, and the server refuses what does not fit."""
        self.engine.registry().get(request.model, kind="text")
        tokens = self.engine.tokens
        messages = [vars(m) for m in request.messages]
        limit = tokens.context_length(request.model)
        if tokens.counted_by_server(request.model) and surely_fits(
            messages, request.max_new_tokens, limit
        ):
            return
        prompt = tokens.chat_ids(request.model, messages, continues=request.continues)
        if len(prompt) + request.max_new_tokens > limit:
            raise ValidationError(
                too_long_message(request.model, limit, len(prompt), request.max_new_tokens),
                field="input",
            )
        job.prompt_ids = tuple(prompt)

    # -- on the worker ----------------------------------------------------------------------

    def ready_in(self, now: float) -> float | None:
        if self._session is not None:
            return 0.0
        for job in self.engine.queued(self.kind):
            if not self.remote.serves(job.model) or self.remote.ready(job):
                return 0.0
        return None

    def step(self, nested: bool) -> None:
        """Send waiting jobs for served models to their servers; then, for a local model,
        admit waiting jobs (one prefill for all of them) and make one token for each."""
        self._start_remote()
        session = self._session or self._open()
        if session is None:
            return
        self._admit(session)
        session.drop_finished_jobs()
        session.finish_done()  # some end at their first token
        try:
            session.step()
        except Exception as error:
            self._fail(session, error)
            return
        session.finish_done()
        if not session.active:
            self.release()

    def release(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _start_remote(self) -> None:
        """As many waiting jobs of each served model as its replicas have room for, in the
        fair queue's order."""
        for waiting in self.engine.queued(self.kind):
            if not self.remote.serves(waiting.model) or not self.remote.ready(waiting):
                continue
            taken = self.engine.take(
                self.kind,
                key=lambda j: j.model,
                max_units=1,
                accept=lambda j, model=waiting.model: j.model == model,
            )
            for job in taken:
                if not self.remote.start(job):  # only this thread claims room: never here
                    job._finish(JobStatus.FAILED, error="No text server had room; try again.")

    def _open(self) -> _Session | None:
        """A session for the model of the next waiting job, holding that model loaded."""
        first = self.engine.take(
            self.kind,
            key=lambda job: job.model,
            max_units=1,
            accept=lambda job: not self.remote.serves(job.model),
        )
        if not first:
            return None
        try:
            self._session = _Session(self.engine, first[0].model, self._decode_batch)
        except AtelierError as error:
            first[0]._finish(JobStatus.FAILED, error=error.message)
            return None
        self._session.add(first)
        return self._session

    def _admit(self, session: _Session) -> None:
        """Jobs for the session's model join it, as many prompt tokens as one prefill pass
        reads, unless another model waits its turn."""
        queued = [j for j in self.engine.queued(self.kind) if not self.remote.serves(j.model)]
        if any(job.model != session.model for job in queued) or not session.can_join:
            return  # let this batch drain so the other model gets its turn
        free = MAX_TEXT_BATCH - len(session)
        if free <= 0 or not queued:
            return
        jobs = self.engine.take(
            self.kind,
            key=lambda job: job.model,
            max_units=session.prefill_tokens,
            units=lambda job: len(job.prompt_ids),
            max_jobs=free,
            accept=lambda job: job.model == session.model,
        )
        session.add(jobs)

    def _fail(self, session: _Session, error: Exception) -> None:
        log.exception("text batch for %s failed", session.model)
        message = failure_message(error, TEXT_FAILED)
        for job in session.jobs():
            job._finish(JobStatus.FAILED, error=message)
        self.release()
        self.engine.manager.release_memory()


class _Session:
    """The decoding batch of one text model, holding the model loaded while it has work."""

    def __init__(self, engine: Engine, model: str, decode_batch):
        self.engine = engine
        self.model = model
        self._hold = ExitStack()
        self._text_model = self._hold.enter_context(engine.manager.use(model))
        self._batch = decode_batch(self._text_model)
        self._jobs: dict[str, Job] = {}

    def __len__(self) -> int:
        return len(self._batch)

    @property
    def active(self) -> bool:
        return len(self._batch) > 0

    @property
    def can_join(self) -> bool:
        return self._batch.can_join

    @property
    def prefill_tokens(self) -> int:
        return self._batch.prefill_tokens

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def add(self, jobs: list[Job]) -> None:
        """Prefill the jobs' prompts together; a fault here fails only these jobs."""
        jobs = [job for job in jobs if not job.finished and self._attach_voice(job)]
        if not jobs:
            return
        sequences = [self._sequence(job) for job in jobs]
        try:
            self._batch.add(sequences)
        except Exception as error:
            log.exception("text jobs could not join the batch for %s", self.model)
            message = failure_message(error, TEXT_FAILED)
            for job in jobs:
                job._finish(JobStatus.FAILED, error=message)
            return
        for job, sequence in zip(jobs, sequences, strict=True):
            self._jobs[job.id] = job
            self._publish(job, sequence)

    def _attach_voice(self, job: Job) -> bool:
        """Attach the job's tuned voice to the cached model (once); False if it failed."""
        adapter = job.request.adapter
        if adapter is None:
            return True
        try:
            voice_adapters.attach(self._text_model.model, adapter.name, Path(adapter.folder))
        except AtelierError as error:
            job._finish(JobStatus.FAILED, error=error.message)
            return False
        except Exception:
            log.exception("the voice %s could not be attached to %s", adapter.name, self.model)
            job._finish(JobStatus.FAILED, error=TEXT_FAILED)
            return False
        return True

    @staticmethod
    def _sequence(job: Job) -> Sequence:
        request: TextRequest = job.request
        sampling = Sampling(
            request.max_new_tokens,
            request.sampling_temperature,
            request.top_p,
            request.seed,
            request.stop,
            request.repetition_penalty,
        )
        adapter = request.adapter.name if request.adapter else None
        return Sequence(
            key=job.id, prompt_ids=list(job.prompt_ids), sampling=sampling, adapter=adapter
        )

    def drop_finished_jobs(self) -> None:
        """Cancelled (or otherwise ended) jobs leave the batch."""
        ended = {job_id for job_id, job in self._jobs.items() if job.finished}
        for job_id in ended:
            del self._jobs[job_id]
        self._batch.remove(ended)

    def step(self) -> None:
        """One token for every sequence (finished ones were removed before)."""
        if not self.active:
            return
        self._batch.step()
        for sequence in self._batch.sequences:
            job = self._jobs.get(sequence.key)
            if job is not None:
                self._publish(job, sequence)

    def _publish(self, job: Job, sequence: Sequence) -> None:
        request: TextRequest = job.request
        changes: dict[str, Any] = {
            "text": self._batch.visible_text(sequence),
            "progress": Progress(len(sequence.generated), request.max_new_tokens),
        }
        if sequence.generated and job.first_token_at is None:
            changes["first_token_at"] = time.time()
        job._update(**changes)

    def finish_done(self) -> None:
        """End the jobs whose sequences finished."""
        done = {s.key for s in self._batch.sequences if s.finished}
        for sequence in self._batch.remove(done):
            job = self._jobs.pop(sequence.key)
            if sequence.finish_reason == "error":
                job._finish(JobStatus.FAILED, error=TEXT_FAILED)
                continue
            now = time.time()
            result = TextResult(
                text=sequence.text,
                tokens=len(sequence.generated),
                finish_reason=sequence.finish_reason,
                seconds=now - job.submitted_at,
                first_token_seconds=(job.first_token_at or now) - job.submitted_at,
                prompt_tokens=len(sequence.prompt_ids),
            )
            job._update(text=sequence.text)
            job._finish(JobStatus.DONE, result)
            self.engine.record("text", now - (job.started_at or now))

    def close(self) -> None:
        self._batch = None
        self._hold.close()
