"""What one pipeline call makes from a batch of image jobs: a row per image (each with its own
seed) and the settings they all share. The local lane and the Ray replicas read the same."""

from __future__ import annotations

from webapp.backends.diffusion import BatchSettings, ImageRow
from webapp.engine.jobs import Job
from webapp.engine.requests import ImageRequest


def batch_rows(jobs: list[Job]) -> list[ImageRow]:
    """A row for every image of every job, in the jobs' order."""
    return [
        ImageRow(r.prompt, r.negative_prompt, r.seed + index, r.init_image, r.mask)
        for r in (job.request for job in jobs)
        for index in range(r.num_images)
    ]


def batch_settings(first: ImageRequest) -> BatchSettings:
    """What every image of a batch shares (the batch key makes them equal across its jobs)."""
    return BatchSettings(
        mode=first.mode,
        width=first.width,
        height=first.height,
        steps=first.steps,
        guidance=first.guidance,
        scheduler=first.scheduler,
        strength=first.strength,
    )
