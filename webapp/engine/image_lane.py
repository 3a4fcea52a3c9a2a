"""The image lane: batches of compatible image jobs from every person, one pipeline call each,
with one random generator per image, progress and previews, and cancel at the next step.
With a Ray cluster set (`remote_images.py`), the batches are made there instead."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from webapp.backends import diffusion
from webapp.engine.core import Engine
from webapp.engine.failures import failure_message
from webapp.engine.image_batch import batch_rows, batch_settings
from webapp.engine.jobs import ImageResult, Job, JobStatus, Progress
from webapp.engine.lane import Lane
from webapp.engine.remote_images import ClusterState, RemoteImages
from webapp.engine.requests import ImageRequest
from webapp.errors import AtelierError
from webapp.registry import lora_path

log = logging.getLogger(__name__)

PREVIEW_EVERY = 5  # steps between image previews
IMAGE_FAILED = (
    "Making this image failed. Try other settings; if it keeps failing, tell your Atelier "
    "admin (the server log has the details)."
)

ImageRunner = Callable[..., list[Any]]
Previewer = Callable[[torch.Tensor, str], list[Any]]


def batch_key(job: Job) -> tuple:
    """Jobs with the same key run as one pipeline call."""
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


def batch_units(job: Job) -> int:
    """A job's share of a batch, in 512×512 images: memory grows with the pixel count."""
    request: ImageRequest = job.request
    return request.num_images * max(1, math.ceil(request.width * request.height / 512**2))


def effective_steps(request: ImageRequest) -> int:
    """Image-to-image runs only the last `strength` share of the steps."""
    if request.mode == "text-to-image":
        return request.steps
    return max(1, min(request.steps, int(request.steps * request.strength)))


class ImageLane(Lane):
    kind = "image"

    def __init__(
        self,
        engine: Engine,
        runner: ImageRunner | None = None,
        preview: Previewer | None = None,
        gather_seconds: float = 0.1,
    ):
        super().__init__(engine)
        self.capacity = engine.settings.max_batch_images
        self._run_images = runner or diffusion.generate_images
        self._preview = preview or diffusion.latent_preview
        self._gather_seconds = gather_seconds
        settings = engine.settings
        self.remote = RemoteImages(engine, settings) if settings.ray_address else None
        self._fallback = settings.ray_fallback_local

    # -- at submit --------------------------------------------------------------------------

    def admit(self, request: ImageRequest, job: Job) -> None:
        settings = self.engine.settings
        self.engine.registry().get(request.model, kind="image")
        for lora in request.loras:
            lora_path(settings.models_dir, lora.name)
        if settings.safety_checker and not self._safety_model():
            raise AtelierError(
                "The NSFW safety checker is turned on but its weights are not installed, so "
                "no image can be made. Tell your Atelier admin (`atelier doctor` explains)."
            )
        if self.remote is not None:
            self.remote.try_again_if_down()
            if self.remote.state == ClusterState.DOWN and not self._fallback:
                raise AtelierError(self.remote.unreachable_message())

    def notices(self) -> list[str]:
        if self.remote is None or self.remote.state != ClusterState.DOWN:
            return []
        if self._fallback:
            return [
                f"The image cluster at {self.remote.address} cannot be used now; images are "
                "made on this server meanwhile, more slowly."
            ]
        return [self.remote.unreachable_message()]

    # -- on the worker ----------------------------------------------------------------------

    def ready_in(self, now: float) -> float | None:
        """A batch starts once its first job has waited the gathering window (so people who
        press Generate together share it), or at once when a full batch is waiting."""
        queued = self.engine.queued(self.kind)
        if not queued:
            return None
        if self.remote is not None:
            state = self.remote.state
            if state == ClusterState.CONNECTING:
                return self.remote.seconds_to_connect()
            if state == ClusterState.UP and not self.remote.free_slots():
                return None  # a dispatch thread wakes the worker when a replica is free
            if state == ClusterState.DOWN and not self._fallback:
                return 0.0  # tell the waiting jobs at once
        if sum(batch_units(job) for job in queued) >= self.capacity:
            return 0.0
        oldest = min(job.submitted_at for job in queued)
        return max(0.0, oldest + self._gather_seconds - now)

    def step(self, nested: bool) -> None:
        if self.remote is not None and self._step_remote():
            return
        jobs = self.engine.take(self.kind, batch_key, self.capacity, units=batch_units)
        if jobs:
            self._run(jobs)

    def _step_remote(self) -> bool:
        """Send the next batch to a free replica, or fail the waiting jobs when the cluster
        cannot be used; False when they are to be made here instead (the fallback)."""
        state = self.remote.state
        if state == ClusterState.DOWN:
            if self._fallback:
                return False
            for job in self.engine.take(self.kind, batch_key, self.capacity, units=batch_units):
                job._finish(JobStatus.FAILED, error=self.remote.unreachable_message())
            return True
        free = self.remote.free_slots()
        if state != ClusterState.UP or not free:
            return True
        # Spread what waits over the free replicas: two people's jobs on two replicas end
        # sooner than both on one.
        waiting = sum(batch_units(job) for job in self.engine.queued(self.kind))
        share = min(self.capacity, max(1, math.ceil(waiting / free)))
        jobs = self.engine.take(self.kind, batch_key, share, units=batch_units)
        if jobs:
            self.remote.start(jobs, effective_steps(jobs[0].request))
        return True

    def _run(self, jobs: list[Job]) -> None:
        """Run jobs as one pipeline call; on failure split the batch in halves and retry, so a
        fault (or an out-of-memory) ends up failing only the job that causes it."""
        jobs = [job for job in jobs if not job.finished]
        if not jobs:
            return
        started = time.perf_counter()
        try:
            images, flagged = self._check_safety(self._generate(jobs))
        except AtelierError as error:
            for job in jobs:
                job._finish(JobStatus.FAILED, error=error.message)
            return
        except Exception as error:
            message = failure_message(error, IMAGE_FAILED)
            del error
            self.engine.manager.release_memory()
            if len(jobs) > 1:
                log.warning("image batch of %d failed; retrying in halves", len(jobs))
                middle = len(jobs) // 2
                self._run(jobs[:middle])
                self._run(jobs[middle:])
                return
            log.exception("image job %s failed", jobs[0].id)
            jobs[0]._finish(JobStatus.FAILED, error=message)
            return
        seconds = time.perf_counter() - started
        self.engine.record(self.kind, seconds)
        for job in jobs:
            count = job.request.num_images
            mine, images = images[:count], images[count:]
            mine_flagged, flagged = flagged[:count], flagged[count:]
            seeds = [job.request.seed + i for i in range(count)]
            job._finish(
                JobStatus.DONE,
                ImageResult(images=mine, seeds=seeds, seconds=seconds, flagged=mine_flagged),
            )

    def _generate(self, jobs: list[Job]) -> list[Any]:
        first: ImageRequest = jobs[0].request
        rows = batch_rows(jobs)
        owners = [job for job in jobs for _ in range(job.request.num_images)]
        batch = batch_settings(first)
        family = self.engine.registry().get(first.model).family
        on_step = self._step_callback(owners, family, effective_steps(first))
        loras = [
            (lora.name, lora_path(self.engine.settings.models_dir, lora.name), lora.weight)
            for lora in first.loras
        ]
        with self.engine.manager.use(first.model) as pipe, diffusion.loras_applied(pipe, loras):
            return self._run_images(pipe, rows, batch, on_step)

    def _step_callback(self, owners: list[Job], family: str, total: int):
        """After each denoising step: progress and previews for each job, a step for the
        lanes that interleave (text keeps streaming), and True once every job is cancelled."""

        def on_step(step: int, latents: torch.Tensor) -> bool:
            previews = self._preview(latents, family) if step % PREVIEW_EVERY == 0 else None
            for index, job in enumerate(owners):
                if job.finished or (index > 0 and owners[index - 1] is job):
                    continue
                changes: dict[str, Any] = {"progress": Progress(min(step, total), total)}
                if previews is not None:
                    changes["preview"] = previews[index]
                job._update(**changes)
            self.engine.interleave(self)
            return all(job.finished for job in owners)

        return on_step

    # -- the NSFW safety checker ------------------------------------------------------------

    def _safety_model(self) -> str | None:
        checkers = self.engine.registry().of_kind("safety")
        return checkers[0].name if checkers else None

    def _check_safety(self, images: list[Any]) -> tuple[list[Any], list[bool]]:
        """Black out what the NSFW checker flags, when the admin has turned it on."""
        if not self.engine.settings.safety_checker:
            return images, [False] * len(images)
        from PIL import Image

        with self.engine.manager.use(self._safety_model()) as checker:
            flags = checker.flags(images)
        return [
            Image.new("RGB", image.size) if flag else image
            for image, flag in zip(images, flags, strict=True)
        ], flags
