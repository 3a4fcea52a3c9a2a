"""The engine: the one owner of a device. A worker thread takes jobs from a fair queue,
batches compatible ones across users, reports progress, honours cancels and keeps every
failure inside its own job."""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import torch

from webapp.device import free_cached_memory
from webapp.engine.fair_queue import FairQueue
from webapp.engine.jobs import ImageResult, Job, JobStatus, Progress, TextResult
from webapp.engine.requests import ImageRequest, TextRequest
from webapp.errors import AtelierError, Forbidden, ValidationError
from webapp.loader import ModelManager
from webapp.registry import lora_path
from webapp.settings import Settings
from webapp.users import User

log = logging.getLogger(__name__)

PREVIEW_EVERY = 5  # steps between image previews
MAX_TEXT_BATCH = 16  # sequences decoding together
KEEP_FINISHED = 200  # finished jobs kept for the queue page
TEXT_FAILED = (
    "Writing the answer failed. Try again; if it keeps failing, tell your Atelier admin "
    "(the server log has the details)."
)
OOM_MESSAGE = (
    "The GPU ran out of memory for this job. Try a smaller size or fewer images, "
    "or try again when the queue is quieter."
)


def _image_batch_key(job: Job) -> tuple:
    request: ImageRequest = job.request
    return (
        request.model,
        request.mode,
        request.width,
        request.height,
        request.steps,
        request.scheduler,
        request.guidance,
        request.strength,
        request.loras,
    )


def _image_units(job: Job) -> int:
    """A job's share of a batch, in 512×512 images: memory grows with the pixel count."""
    request: ImageRequest = job.request
    return request.num_images * max(1, math.ceil(request.width * request.height / 512**2))


def _failure_message(error: BaseException, otherwise: str) -> str:
    """What the person reads: what to try after running out of memory, or `otherwise`."""
    out_of_memory = (
        isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()
    )
    return OOM_MESSAGE if out_of_memory else otherwise


class Engine:
    def __init__(
        self,
        manager: ModelManager,
        settings: Settings,
        image_runner: Callable[..., list[Any]] | None = None,
        preview: Callable[[torch.Tensor, str], list[Any]] | None = None,
    ):
        from webapp.backends import diffusion

        self.manager = manager
        self.settings = settings
        self._run_images = image_runner or diffusion.generate_images
        self._preview = preview or diffusion.latent_preview
        self._queue = FairQueue(settings.queue_max_per_user, settings.queue_max_total)
        self._lock = threading.Condition()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._running: list[Job] = []
        self._seconds_per_job = {"image": 0.0, "text": 0.0}
        self._text: _TextSession | None = None
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="atelier-engine", daemon=True)
        self._worker.start()

    # -- the public face ------------------------------------------------------------------

    def submit(self, request: ImageRequest | TextRequest, user: User) -> Job:
        """Queue a request for `user`; raises ValidationError, ModelNotFound or QueueFull."""
        kind = "image" if isinstance(request, ImageRequest) else "text"
        request.check()
        entry = self.manager.registry().get(request.model)
        if entry.kind != kind:
            raise ValidationError(
                f"{request.model!r} is a {entry.kind} model; choose a {kind} model.", field="model"
            )
        for lora in getattr(request, "loras", ()):
            lora_path(self.settings.models_dir, lora.name)
        if kind == "image" and self.settings.safety_checker and not self._safety_model():
            raise AtelierError(
                "The NSFW safety checker is turned on but its weights are not installed, so "
                "no image can be made. Tell your Atelier admin (`atelier doctor` explains)."
            )
        job = Job(request=request, user=user, kind=kind, _cancel=self.cancel)
        with self._lock:
            if self._stopping:
                raise AtelierError("Atelier is shutting down; try again in a moment.")
            self._queue.push(job)
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
            self._queue.remove(job)
            job.cancelled_by = by_user.display_name
            job._finish(JobStatus.CANCELLED)
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

    def queue_length(self) -> int:
        with self._lock:
            return len(self._queue)

    def running_count(self) -> int:
        with self._lock:
            return sum(not j.finished for j in self._running)

    def shutdown(self, timeout: float = 30) -> None:
        """Cancel every waiting and running job, and stop the worker."""
        with self._lock:
            self._stopping = True
            for job in [*self._queue.order(), *self._running]:
                self._queue.remove(job)
                job.cancelled_by = "the server (shutting down)"
                job._finish(JobStatus.CANCELLED, error="Atelier is shutting down.")
            self._lock.notify_all()
        self._worker.join(timeout)

    # -- position and ETA -----------------------------------------------------------------

    def _estimate(self) -> None:
        """Fill in queue positions and ETAs (called with the lock held)."""
        now = time.time()
        remaining = {"image": 0.0, "text": 0.0}
        for job in self._running:
            if job.finished:
                continue
            per_job = self._seconds_per_job[job.kind]
            done = job.progress.fraction
            if done > 0 and job.started_at:
                elapsed = now - job.started_at
                job.eta_seconds = elapsed / done * (1 - done)
            else:
                job.eta_seconds = per_job or None
            remaining[job.kind] = max(remaining[job.kind], job.eta_seconds or 0.0)
        ahead = {"image": 0, "text": 0}
        for position, job in enumerate(self._queue.order(), start=1):
            job.position = position
            per_job = self._seconds_per_job[job.kind]
            batch = self.settings.max_batch_images if job.kind == "image" else MAX_TEXT_BATCH
            job.eta_seconds = (
                remaining[job.kind] + (ahead[job.kind] // batch + 1) * per_job if per_job else None
            )
            ahead[job.kind] += 1

    def _record(self, kind: str, seconds: float) -> None:
        previous = self._seconds_per_job[kind]
        self._seconds_per_job[kind] = seconds if not previous else 0.7 * previous + 0.3 * seconds

    # -- the worker -----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                while (
                    not self._stopping
                    and not self._queue.has("image")
                    and not (self._text is not None or self._queue.has("text"))
                ):
                    self._lock.wait()
                if self._stopping and self._text is None:
                    return
            try:
                self._serve_once()
            except Exception:  # a bug here must not kill the worker
                log.exception("engine worker error")
            if len(self._running) > MAX_TEXT_BATCH or len(self._jobs) > KEEP_FINISHED * 2:
                self._forget_old_jobs()

    def _serve_once(self) -> None:
        if self._text is not None or self._has_queued("text"):
            self._text_step()
        if self._has_queued("image") and not self._stopping:
            self._image_batch()

    def _has_queued(self, kind: str) -> bool:
        with self._lock:
            return self._queue.has(kind)

    def _forget_old_jobs(self) -> None:
        with self._lock:
            finished = [job_id for job_id, job in self._jobs.items() if job.finished]
            for job_id in finished[: max(0, len(finished) - KEEP_FINISHED // 2)]:
                del self._jobs[job_id]
            self._running = [job for job in self._running if not job.finished]

    # -- images ---------------------------------------------------------------------------

    def _image_batch(self) -> None:
        with self._lock:
            jobs = self._queue.take_batch(
                "image",
                key=_image_batch_key,
                max_units=self.settings.max_batch_images,
                units=_image_units,
            )
            for job in jobs:
                job._start()
            self._running.extend(jobs)
        if jobs:
            self._run_image_jobs(jobs)

    def _run_image_jobs(self, jobs: list[Job]) -> None:
        """Run jobs as one pipeline call; on failure split the batch in halves and retry, so a
        fault (or an out-of-memory) ends up failing only the job that causes it."""
        jobs = [job for job in jobs if not job.finished]
        if not jobs:
            return
        started = time.perf_counter()
        try:
            images = self._generate(jobs)
            images, flagged = self._check_safety(images)
        except AtelierError as error:
            for job in jobs:
                job._finish(JobStatus.FAILED, error=error.message)
            return
        except Exception as error:
            message = _failure_message(
                error,
                "Making this image failed. Try other settings; if it keeps failing, "
                "tell your Atelier admin (the server log has the details).",
            )
            del error
            self._release_memory()
            if len(jobs) > 1:
                log.warning("image batch of %d failed; retrying in halves", len(jobs))
                middle = len(jobs) // 2
                self._run_image_jobs(jobs[:middle])
                self._run_image_jobs(jobs[middle:])
                return
            log.exception("image job %s failed", jobs[0].id)
            jobs[0]._finish(JobStatus.FAILED, error=message)
            return
        seconds = time.perf_counter() - started
        with self._lock:
            self._record("image", seconds)
        for job in jobs:
            count = job.request.num_images
            mine, images = images[:count], images[count:]
            mine_flagged, flagged = flagged[:count], flagged[count:]
            seeds = [job.request.seed + i for i in range(count)]
            job._finish(
                JobStatus.DONE,
                ImageResult(images=mine, seeds=seeds, seconds=seconds, flagged=mine_flagged),
            )

    def _safety_model(self) -> str | None:
        checkers = self.manager.registry().of_kind("safety")
        return checkers[0].name if checkers else None

    def _check_safety(self, images: list[Any]) -> tuple[list[Any], list[bool]]:
        """Black out what the NSFW checker flags, when the admin has turned it on."""
        if not self.settings.safety_checker:
            return images, [False] * len(images)
        from PIL import Image

        with self.manager.use(self._safety_model()) as checker:
            flags = checker.flags(images)
        return [
            Image.new("RGB", image.size) if flag else image
            for image, flag in zip(images, flags, strict=True)
        ], flags

    def _generate(self, jobs: list[Job]) -> list[Any]:
        from webapp.backends import diffusion
        from webapp.backends.diffusion import BatchSettings, ImageRow

        first: ImageRequest = jobs[0].request
        rows, owners = [], []
        for job in jobs:
            request: ImageRequest = job.request
            for index in range(request.num_images):
                rows.append(
                    ImageRow(
                        request.prompt,
                        request.negative_prompt,
                        request.seed + index,
                        request.init_image,
                        request.mask,
                    )
                )
                owners.append(job)
        batch = BatchSettings(
            mode=first.mode,
            width=first.width,
            height=first.height,
            steps=first.steps,
            guidance=first.guidance,
            scheduler=first.scheduler,
            strength=first.strength,
        )
        family = self.manager.registry().get(first.model).family
        total = _effective_steps(first)

        def on_step(step: int, latents: torch.Tensor) -> bool:
            previews = self._preview(latents, family) if step % PREVIEW_EVERY == 0 else None
            for index, job in enumerate(owners):
                if job.finished or (index > 0 and owners[index - 1] is job):
                    continue
                changes: dict[str, Any] = {"progress": Progress(min(step, total), total)}
                if previews is not None:
                    changes["preview"] = previews[index]
                job._update(**changes)
            return all(job.finished for job in owners)

        loras = [
            (lora.name, lora_path(self.settings.models_dir, lora.name), lora.weight)
            for lora in first.loras
        ]
        with self.manager.use(first.model) as pipe, diffusion.loras_applied(pipe, loras):
            return self._run_images(pipe, rows, batch, on_step)

    # -- text -----------------------------------------------------------------------------

    def _text_step(self) -> None:
        """Admit waiting text jobs into the decoding batch, then make one token for each."""
        session = self._text
        if session is None:
            with self._lock:
                first = self._queue.take_batch("text", key=lambda j: j.model, max_units=1)
                self._running.extend(first)
            if not first:
                return
            session = self._text = _TextSession(self.manager, first[0].model)
            if not session.open(first[0]):
                self._text = None
                return
        self._admit_text_jobs(session)
        session.drop_cancelled()
        self._finish_text_jobs(session)  # some end at their first token
        try:
            session.step()
        except Exception as error:
            self._fail_text_session(session, error)
            return
        self._finish_text_jobs(session)
        if not session.active:
            session.close()
            self._text = None

    def _finish_text_jobs(self, session: _TextSession) -> None:
        for seconds in session.finish_done():
            with self._lock:
                self._record("text", seconds)

    def _admit_text_jobs(self, session: _TextSession) -> None:
        with self._lock:
            other_model_waiting = self._queue.has("text") and any(
                j.kind == "text" and j.model != session.model for j in self._queue.order()
            )
            if other_model_waiting or not session.can_join:
                return  # let this batch drain so the other model gets its turn
            free = MAX_TEXT_BATCH - len(session)
            jobs = (
                self._queue.take_batch(
                    "text",
                    key=lambda j: j.model,
                    max_units=free,
                    accept=lambda j: j.model == session.model,
                )
                if free > 0
                else []
            )
            self._running.extend(jobs)
        for job in jobs:
            session.add(job)

    def _fail_text_session(self, session: _TextSession, error: Exception) -> None:
        log.exception("text batch for %s failed", session.model)
        message = _failure_message(error, TEXT_FAILED)
        for job in session.jobs():
            job._finish(JobStatus.FAILED, error=message)
        session.close()
        self._text = None
        self._release_memory()

    def _release_memory(self) -> None:
        """After a failure: drop what the failed call held, and give cached GPU memory back."""
        gc.collect()
        free_cached_memory(self.manager.device)


def _effective_steps(request: ImageRequest) -> int:
    """Image-to-image runs only the last `strength` share of the steps."""
    if request.mode == "text-to-image":
        return request.steps
    return max(1, min(request.steps, int(request.steps * request.strength)))


class _TextSession:
    """The decoding batch of one text model, held loaded while it has sequences."""

    def __init__(self, manager: ModelManager, model: str):
        self.manager = manager
        self.model = model
        self._hold = ExitStack()
        self._batch = None
        self._jobs: dict[str, Job] = {}

    def open(self, job: Job) -> bool:
        from webapp.backends.textgen import DecodeBatch

        try:
            text_model = self._hold.enter_context(self.manager.use(self.model))
        except AtelierError as error:
            job._finish(JobStatus.FAILED, error=error.message)
            return False
        self._batch = DecodeBatch(text_model)
        self._context = text_model.context_length
        self.add(job)
        return True

    def __len__(self) -> int:
        return len(self._batch) if self._batch else 0

    @property
    def active(self) -> bool:
        return bool(self._batch and len(self._batch))

    @property
    def can_join(self) -> bool:
        return self._batch is not None and self._batch.can_join

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def add(self, job: Job) -> None:
        from webapp.backends.textgen import Sampling, Sequence

        request: TextRequest = job.request
        job._start()
        try:
            prompt = self._batch.prompt_ids([vars(m) for m in request.messages])
            if len(prompt) + request.max_new_tokens > self._context:
                raise ValidationError(
                    f"The input is {len(prompt)} tokens and up to {request.max_new_tokens} more "
                    f"are asked for, but {self.model} reads at most {self._context}. Shorten the "
                    f"input by about {len(prompt) + request.max_new_tokens - self._context} "
                    "tokens or ask for a shorter answer.",
                    field="input",
                )
            sampling = Sampling(
                request.max_new_tokens,
                request.sampling_temperature,
                request.top_p,
                request.seed,
                request.stop,
            )
            sequence = Sequence(key=job.id, prompt_ids=prompt, sampling=sampling)
            self._batch.add([sequence])
        except AtelierError as error:
            job._finish(JobStatus.FAILED, error=error.message)
            return
        except Exception as error:  # a fault while joining fails the joining job only
            log.exception("text job %s could not join the batch", job.id)
            job._finish(JobStatus.FAILED, error=_failure_message(error, TEXT_FAILED))
            return
        self._jobs[job.id] = job
        self._publish(job, sequence)

    def drop_cancelled(self) -> None:
        cancelled = {job_id for job_id, job in self._jobs.items() if job.finished}
        for job_id in cancelled:
            del self._jobs[job_id]
        self._batch.remove(cancelled)

    def step(self) -> None:
        """One token for every sequence (finished ones were removed before)."""
        if not self.active:
            return
        self._batch.step()
        for sequence in self._batch.sequences:
            job = self._jobs.get(sequence.key)
            if job is not None:
                self._publish(job, sequence)

    def _publish(self, job: Job, sequence) -> None:
        request: TextRequest = job.request
        changes: dict[str, Any] = {
            "text": self._batch.visible_text(sequence),
            "progress": Progress(len(sequence.generated), request.max_new_tokens),
        }
        if sequence.generated and job.first_token_at is None:
            changes["first_token_at"] = time.time()
        job._update(**changes)

    def finish_done(self) -> list[float]:
        """End the jobs whose sequences finished; their durations in seconds."""
        done = [s for s in self._batch.sequences if s.finished]
        finished = []
        for sequence in self._batch.remove({s.key for s in done}):
            job = self._jobs.pop(sequence.key)
            if sequence.finish_reason == "error":
                job._finish(JobStatus.FAILED, error=TEXT_FAILED)
                continue
            seconds = time.time() - (job.started_at or time.time())
            first = (job.first_token_at or time.time()) - (job.started_at or time.time())
            result = TextResult(
                text=sequence.text,
                tokens=len(sequence.generated),
                finish_reason=sequence.finish_reason,
                seconds=seconds,
                first_token_seconds=first,
            )
            job._update(text=sequence.text)
            job._finish(JobStatus.DONE, result)
            finished.append(seconds)
        return finished

    def close(self) -> None:
        self._batch = None
        self._hold.close()
