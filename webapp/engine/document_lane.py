"""The document lane: summaries, extractions, questions and comparisons over whole documents.

A document job is one engine job with many model calls: first every map prompt (each quotes
a window of the document), many decoding at once; then, for a task that reduces, the answers
combined in rounds that fit the model's context, down to one final answer. The lane keeps
its own decode batch for one text model: each step is one prefill of joining prompts (a
bounded number of tokens) or one decode step for every running prompt, so the worker keeps
turning to image and text work, and a 200-page summary never holds up a colleague.

Running jobs share the batch's places round-robin; a job's coverage (every map prompt
answered) is counted here and handed to its task at the end.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from webapp.backends.textgen import DecodeBatch, Sampling, Sequence
from webapp.engine.core import Engine
from webapp.engine.failures import failure_message
from webapp.engine.jobs import Job, JobStatus, Progress
from webapp.engine.lane import Lane
from webapp.engine.requests import DocumentOutcome, DocumentRequest
from webapp.errors import AtelierError, ValidationError

log = logging.getLogger(__name__)

MAX_DOCUMENT_SEQUENCES = 8  # prompts decoding together
MAX_DOCUMENT_JOBS = 4  # document jobs sharing the batch
FINAL = -1  # the index of a task's last reduce prompt
MARGIN_TOKENS = 16  # between counting notes one by one and counting them together
MIN_NOTE_TOKENS = 24
DOCUMENT_FAILED = (
    "Reading the document failed. Try again; if it keeps failing, tell your Atelier admin "
    "(the server log has the details)."
)
TOO_SMALL = (
    "{model} reads too little at once to combine the notes on this document. Choose a "
    "model with a longer context, or a shorter length."
)


@dataclass
class _Run:
    """One document job on its way: prompts waiting, running and answered."""

    job: Job
    request: DocumentRequest
    context: int
    pending: deque = field(default_factory=deque)  # (index, messages, max_new_tokens)
    running: set = field(default_factory=set)
    answers: dict = field(default_factory=dict)  # index -> text, this round
    notes: tuple[str, ...] = ()  # the map answers, in order
    visited: set = field(default_factory=set)  # map prompts the model answered
    reducing: bool = False
    tokens: int = 0
    done_prompts: int = 0
    total_prompts: int = 0
    read_units: set = field(default_factory=set)

    @property
    def task(self) -> Any:
        return self.request.task

    @property
    def round_done(self) -> bool:
        return not self.pending and not self.running


class DocumentLane(Lane):
    kind = "document"
    capacity = MAX_DOCUMENT_JOBS

    def __init__(self, engine: Engine, decode_batch=DecodeBatch):
        super().__init__(engine)
        self._decode_batch = decode_batch
        self._model: str | None = None
        self._hold = ExitStack()
        self._batch = None
        self._runs: dict[str, _Run] = {}

    # -- at submit --------------------------------------------------------------------------

    def admit(self, request: DocumentRequest, job: Job) -> None:
        """The model reads text, and the longest map prompt and its answer fit it."""
        self.engine.registry().get(request.model, kind="text")
        prompts = request.task.map_prompts()
        longest = max(prompts, key=lambda p: sum(len(m.content) for m in p.messages))
        tokens = self.engine.tokens
        count = len(tokens.chat_ids(request.model, [vars(m) for m in longest.messages]))
        limit = tokens.context_length(request.model)
        if count + longest.max_new_tokens > limit:
            raise ValidationError(
                f"A part of this document is too long for {request.model} ({count:,} tokens "
                f"and {longest.max_new_tokens:,} for the answer; it reads {limit:,}).",
                field="model",
            )

    # -- on the worker ----------------------------------------------------------------------

    def ready_in(self, now: float) -> float | None:
        if self._runs or self.engine.queued(self.kind):
            return 0.0
        return None

    def step(self, nested: bool) -> None:
        """Jobs join; prompts join the batch (one bounded prefill) or every running prompt
        gets one more token; answers are collected and jobs move on or finish."""
        self._join()
        self._drop_cancelled()
        if not self._runs:
            self.release()
            return
        try:
            if not self._fill():
                self._batch.step()
            self._collect()
        except Exception as error:
            self._fail_all(error)
            return
        for run in list(self._runs.values()):
            self._advance(run)
        if not self._runs:
            self.release()

    def release(self) -> None:
        for run in self._runs.values():
            run.job._finish(JobStatus.FAILED, error=DOCUMENT_FAILED)
        self._runs = {}
        self._batch = None
        self._hold.close()
        self._hold = ExitStack()
        self._model = None

    # -- jobs joining and leaving ----------------------------------------------------------

    def _join(self) -> None:
        queued = self.engine.queued(self.kind)
        if not queued or len(self._runs) >= MAX_DOCUMENT_JOBS:
            return
        if self._runs and any(job.model != self._model for job in queued):
            return  # let this model's jobs drain so the other model gets its turn
        model = self._model
        jobs = self.engine.take(
            self.kind,
            key=lambda job: job.model,
            max_units=MAX_DOCUMENT_JOBS - len(self._runs),
            accept=lambda job: model is None or job.model == model,
        )
        if jobs and self._model is None:
            try:
                text_model = self._hold.enter_context(self.engine.manager.use(jobs[0].model))
                self._batch = self._decode_batch(text_model)
                self._model = jobs[0].model
            except AtelierError as error:
                for job in jobs:
                    job._finish(JobStatus.FAILED, error=error.message)
                return
        context = self.engine.tokens.context_length(self._model) if jobs else 0
        for job in jobs:
            run = _Run(job, job.request, context)
            prompts = run.task.map_prompts()
            run.pending.extend((i, p.messages, p.max_new_tokens) for i, p in enumerate(prompts))
            run.total_prompts = len(prompts) + (1 if run.task.reduce_tokens else 0)
            self._runs[job.id] = run
            self._publish(run)

    def _drop_cancelled(self) -> None:
        for job_id in [job_id for job_id, run in self._runs.items() if run.job.finished]:
            del self._runs[job_id]
            if self._batch is not None:
                self._batch.remove({s.key for s in self._batch.sequences if s.key[0] == job_id})

    # -- prompts joining the batch ---------------------------------------------------------

    def _fill(self) -> bool:
        """Start waiting prompts, round-robin across jobs, within the free places and the
        prefill budget; True when some joined (their prefill was this step's work)."""
        if len(self._batch) and not self._batch.can_join:
            return False
        free = MAX_DOCUMENT_SEQUENCES - len(self._batch)
        joining: list[Sequence] = []
        budget = self._batch.prefill_tokens
        while free > len(joining) and budget > 0:
            added = False
            for run in list(self._runs.values()):
                if not run.pending or free <= len(joining) or budget <= 0:
                    continue
                sequence = self._sequence(run)
                if sequence is None:
                    continue
                joining.append(sequence)
                budget -= len(sequence.prompt_ids)
                added = True
            if not added:
                break
        if not joining:
            return False
        self._batch.add(joining)
        return True

    def _sequence(self, run: _Run) -> Sequence | None:
        index, messages, max_new_tokens = run.pending.popleft()
        ids = self._batch.prompt_ids([vars(m) for m in messages])
        if len(ids) + max_new_tokens > run.context:
            run.job._finish(JobStatus.FAILED, error=TOO_SMALL.format(model=self._model))
            return None
        run.running.add(index)
        request = run.request
        sampling = Sampling(
            max_new_tokens, request.sampling_temperature, 1.0, request.seed + max(index, 0)
        )
        return Sequence(key=(run.job.id, index), prompt_ids=ids, sampling=sampling)

    # -- answers ---------------------------------------------------------------------------

    def _collect(self) -> None:
        """Answers that ended go to their jobs; the streaming answer is shown as it grows."""
        done = {s.key for s in self._batch.sequences if s.finished}
        for sequence in self._batch.remove(done):
            run = self._runs.get(sequence.key[0])
            if run is None:
                continue
            index = sequence.key[1]
            run.running.discard(index)
            if sequence.finish_reason == "error":
                run.job._finish(JobStatus.FAILED, error=DOCUMENT_FAILED)
                continue
            run.answers[index] = sequence.text
            run.tokens += len(sequence.generated)
            run.done_prompts += 1
            if not run.reducing:
                run.visited.add(index)
                run.read_units.update(run.task.map_prompts()[index].units)
            self._publish(run)
        for sequence in self._batch.sequences:
            run = self._runs.get(sequence.key[0])
            if run is not None and self._streams(run, sequence.key[1]):
                run.job._update(text=self._batch.visible_text(sequence))

    @staticmethod
    def _streams(run: _Run, index: int) -> bool:
        """The answer people watch being written: the final one, or a lone prompt's."""
        return index == FINAL or (not run.task.reduce_tokens and run.total_prompts == 1)

    def _advance(self, run: _Run) -> None:
        """A job whose round is over: from the map answers to the reduce rounds, and from
        the final answer to the result."""
        if run.job.finished:
            self._runs.pop(run.job.id, None)
            return
        if not run.round_done:
            return
        if not run.reducing:
            run.notes = tuple(run.answers.get(i, "") for i in range(len(run.task.map_prompts())))
            inputs = [run.task.map_note(i, note) for i, note in enumerate(run.notes)]
            if not run.task.reduce_tokens:
                self._finish(run, None)
                return
            run.reducing = True
        elif FINAL in run.answers:
            self._finish(run, run.answers[FINAL])
            return
        else:
            inputs = [run.answers[i] for i in sorted(run.answers)]
        run.answers = {}
        groups = self._groups(run, inputs)
        if groups is None:
            run.job._finish(JobStatus.FAILED, error=TOO_SMALL.format(model=self._model))
            self._runs.pop(run.job.id, None)
            return
        tokens = run.task.reduce_tokens
        if len(groups) == 1:
            run.pending.append((FINAL, run.task.reduce_messages(groups[0], True), tokens))
        else:
            run.total_prompts += len(groups)
            for number, group in enumerate(groups):
                run.pending.append((number, run.task.reduce_messages(group, False), tokens))
        self._publish(run)

    def _groups(self, run: _Run, notes: list[str]) -> list[list[str]] | None:
        """The notes in consecutive groups whose reduce prompt fits the context. Notes too
        long to go two by two are shortened to half the room each (marked with …), so the
        rounds always end; None when the context has no room for notes at all."""
        count = self._batch.prompt_ids
        base = len(count([vars(m) for m in run.task.reduce_messages([], True)]))
        room = run.context - run.task.reduce_tokens - base - MARGIN_TOKENS
        if room < MIN_NOTE_TOKENS * 2:
            return None
        sizes = [len(count([{"role": "user", "content": note}])) for note in notes]
        if len(notes) > 1:
            half = room // 2
            for index, size in enumerate(sizes):
                if size > half:
                    keep = max(1, len(notes[index]) * half // size - 2)
                    notes[index] = notes[index][:keep].rstrip() + " …"
                    sizes[index] = half
        groups: list[list[str]] = []
        used = 0
        for note, size in zip(notes, sizes, strict=True):
            if groups and used + size <= room:
                groups[-1].append(note)
                used += size
            else:
                groups.append([note])
                used = size
        return groups

    def _finish(self, run: _Run, final: str | None) -> None:
        self._runs.pop(run.job.id, None)
        now = time.time()
        started = run.job.started_at or now
        outcome = DocumentOutcome(
            notes=run.notes,
            final=final,
            visited=tuple(sorted(run.visited)),
            tokens=run.tokens,
            seconds=now - started,
        )
        try:
            result = run.task.finish(outcome)
        except Exception:
            log.exception("finishing document job %s failed", run.job.id)
            run.job._finish(JobStatus.FAILED, error=DOCUMENT_FAILED)
            return
        if final is not None or self._streams(run, 0):
            run.job._update(text=final if final is not None else run.notes[0])
        if run.job._finish(JobStatus.DONE, result):
            self.engine.record(self.kind, now - started)

    def _publish(self, run: _Run) -> None:
        task = run.task
        if run.reducing:
            count = len(run.read_units)
            read = (
                f"all {count:,} {task.unit}s read"
                if count == task.unit_count
                else f"{count:,} of {task.unit_count:,} {task.unit}s read"
            )
            stage = f"Writing the {task.name} from the notes ({read})"
        elif run.total_prompts == 1 and not task.reduce_tokens:
            stage = "Writing the answer"
        else:
            read = len(run.read_units)
            stage = f"{task.unit.capitalize()} {read:,} of {task.unit_count:,} read"
        run.job._update(progress=Progress(run.done_prompts, run.total_prompts), stage=stage)

    def _fail_all(self, error: Exception) -> None:
        log.exception("document batch for %s failed", self._model)
        message = failure_message(error, DOCUMENT_FAILED)
        for run in self._runs.values():
            run.job._finish(JobStatus.FAILED, error=message)
        self._runs = {}
        self.release()
        self.engine.manager.release_memory()
