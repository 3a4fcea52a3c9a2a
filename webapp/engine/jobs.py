"""A Job: one request on its way through the engine, safe to read from any thread."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from webapp.errors import AtelierError
from webapp.users import User


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})


class JobFailed(AtelierError):
    """The job ended with an error; the message says what to do."""


class JobCancelled(AtelierError):
    """The job was cancelled before it finished."""


@dataclass(frozen=True)
class ImageResult:
    images: list[Any]  # PIL images, in request order
    seeds: list[int]
    seconds: float
    # True where the safety checker blacked the image out.
    flagged: list[bool] = field(default_factory=list)


@dataclass(frozen=True)
class TextResult:
    text: str
    tokens: int
    finish_reason: str  # stop | length | eos
    seconds: float
    first_token_seconds: float
    prompt_tokens: int = 0  # what the model read before answering


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: Any  # numpy float32 [texts, dimensions], each row of length 1, in request order
    model: str
    tokens: int  # tokens read
    truncated: int  # texts longer than the model reads, cut at its limit
    seconds: float


@dataclass(frozen=True)
class TrainingSample:
    prompt: str  # what was asked (a held-back example's input)
    base: str  # the base model's answer
    tuned: str  # the tuned voice's answer
    reference: str  # the approved text


@dataclass(frozen=True)
class TrainingResult:
    adapter_folder: str  # safetensors and its config, written whole
    steps: int
    losses: tuple[float, ...]  # the training loss at each step, resumed steps included
    perplexity_before: float  # the held-back answers' perplexity under the base
    perplexity_after: float  # and under the tuned voice
    samples: tuple[TrainingSample, ...]
    tokens: int  # tokens the run trained on (this run, not those before a resume)
    seconds: float  # training time of this run, evaluation not included
    resumed_from: int = 0  # the checkpoint's step, or 0 for a fresh start

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Progress:
    step: int
    total: int

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


@dataclass(eq=False)
class Job:
    request: Any
    user: User
    kind: str  # the lane that runs it: image | text | embedding | document | training
    client: str = "page"  # where it came from: page | cli | api
    id: str = field(default_factory=lambda: f"job-{uuid.uuid4().hex[:12]}")
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    status: JobStatus = JobStatus.QUEUED
    progress: Progress = field(default_factory=lambda: Progress(0, 0))
    preview: Any = None  # latest preview image (image jobs)
    text: str = ""  # text so far (text jobs; a document job's final answer)
    stage: str = ""  # what a long job is doing, in words ("12 of 42 pages read")
    # What a long job reports beyond its progress, as plain data (a training run's losses).
    details: Any = None
    error: str | None = None
    cancelled_by: str | None = None
    # What submit prepared for the lane: the prompt's token ids, for text.
    prompt_ids: tuple[int, ...] = field(default=(), repr=False)
    _result: Any = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    _changed: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _cancel: Callable[[Job, User], bool] | None = field(default=None, repr=False)
    _ended: Callable[[Job], None] | None = field(default=None, repr=False)
    _watchers: list[Callable[[], None]] = field(default_factory=list, repr=False)
    # Filled in by the engine when asked: place in the queue and estimated seconds to finish.
    position: int | None = None
    eta_seconds: float | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    @property
    def model(self) -> str:
        return self.request.model

    def result(self, timeout: float | None = None) -> ImageResult | TextResult:
        """Wait for the job; its result, or JobFailed / JobCancelled / TimeoutError."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.id} is still {self.status} after {timeout} s")
        if self.status == JobStatus.FAILED:
            raise JobFailed(self.error or "The job failed.")
        if self.status == JobStatus.CANCELLED:
            raise JobCancelled(f"The job was cancelled by {self.cancelled_by}.")
        return self._result

    @property
    def outcome(self) -> Any:
        """A done job's result without waiting (None otherwise): for end listeners, which
        run before those waiting on `result()` are woken."""
        return self._result if self.status == JobStatus.DONE else None

    def cancel(self, by_user: User) -> bool:
        """Ask the engine to cancel; only the owner or an admin may (else Forbidden)."""
        return self._cancel(self, by_user) if self._cancel else False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends or `timeout` passes; True if it ended."""
        return self._done.wait(timeout)

    def wait_for_update(self, timeout: float) -> None:
        """Block until the job changes (a step, a token, the end) or `timeout` passes."""
        with self._changed:
            if not self.finished:
                self._changed.wait(timeout)

    def watch(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback()` at every change (a step, a token, the end) until it is stopped,
        from the thread that made the change (the engine's: keep it to a wake-up, such as
        an event loop's `call_soon_threadsafe`). Returns what stops it."""
        with self._changed:
            self._watchers.append(callback)
            ended = self.finished
        if ended:
            callback()

        def stop() -> None:
            with self._changed:
                if callback in self._watchers:
                    self._watchers.remove(callback)

        return stop

    def _tell_watchers(self) -> None:
        with self._changed:
            watchers = list(self._watchers)
        for callback in watchers:
            callback()

    def stream(self, poll_seconds: float = 0.05) -> Iterator[str]:
        """Text as it is made, piece by piece, until the job ends (for st.write_stream)."""
        sent = 0
        while True:
            with self._changed:
                if len(self.text) == sent and not self.finished:
                    self._changed.wait(poll_seconds)
                text, finished = self.text, self.finished
            if len(text) > sent:
                yield text[sent:]
                sent = len(text)
            if finished and sent >= len(text):
                return

    # -- called by the engine's worker only ------------------------------------------------

    def _update(self, **changes: Any) -> None:
        with self._changed:
            if self.finished:  # a step that ran past a Stop: what was shown then is kept
                return
            for name, value in changes.items():
                setattr(self, name, value)
            self._changed.notify_all()
        self._tell_watchers()

    def _start(self) -> None:
        self._update(status=JobStatus.RUNNING, started_at=time.time(), position=0)

    def _finish(self, status: JobStatus, result: Any = None, error: str | None = None) -> bool:
        with self._changed:
            if self.finished:
                return False
            self.status, self._result, self.error = status, result, error
            self.finished_at = time.time()
            self.position = None
            self.eta_seconds = 0.0
            self._changed.notify_all()
        # Listeners first, so that whoever waits for the job finds their work started.
        if self._ended is not None:
            self._ended(self)
        self._done.set()
        self._tell_watchers()
        return True

    def release_images(self) -> None:
        """Drop a finished image job's pictures once they are stored elsewhere: finished
        jobs stay listed for a while, and their images would fill the memory."""
        if isinstance(self._result, ImageResult):
            self._result = replace(self._result, images=[])
