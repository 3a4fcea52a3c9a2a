"""Finished pictures are kept at once, whoever waits for them.

When an image job ends, its PNGs (with their recipes) are written in a thread of their own
(never the engine's worker) into the person's folder and recorded in their work; then the
job lets go of the pictures, so finished jobs listed on the Queue page hold no memory. A
page that was closed or reloaded loses nothing.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from threading import Lock
from typing import TYPE_CHECKING

from webapp.engine import ImageResult, Job, JobStatus
from webapp.image_store import ImageStore, StoredImage
from webapp.png_recipe import a1111_parameters, recipe_of

if TYPE_CHECKING:
    from webapp.services.history import HistoryService

log = logging.getLogger(__name__)

KEEP_SAVED = 500  # finished jobs whose saved images a page may still ask for


class ImageSaver:
    def __init__(self, store: ImageStore, history: HistoryService | None = None):
        self.store = store
        self._history = history
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="atelier-save")
        self._saved: OrderedDict[str, Future] = OrderedDict()
        self._lock = Lock()

    def job_ended(self, job: Job) -> None:
        """An engine listener: a finished image job's pictures go to the writer thread."""
        if job.kind != "image" or job.status != JobStatus.DONE:
            return
        future = self._writer.submit(self._save, job)
        with self._lock:
            self._saved[job.id] = future
            while len(self._saved) > KEEP_SAVED:
                self._saved.popitem(last=False)

    def saved(self, job: Job, timeout: float | None = None) -> list[StoredImage]:
        """The job's stored images, once it has ended and they are written (a blacked-out
        image is not kept). Raises what the job ended with, if it did not finish."""
        job.result(timeout)
        with self._lock:
            future = self._saved.get(job.id)
        if future is None:
            return []  # saved long ago and forgotten here; the person's work has it
        return future.result(timeout)

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    def _save(self, job: Job) -> list[StoredImage]:
        result: ImageResult = job.result()
        flagged = result.flagged or [False] * len(result.images)
        stored = [
            self.store.save(
                job.user,
                job.id,
                index,
                image,
                a1111_parameters(job.request, seed),
                recipe_of(job.request, seed),
            )
            for index, (image, seed, flag) in enumerate(
                zip(result.images, result.seeds, flagged, strict=True)
            )
            if not flag
        ]
        job.release_images()
        for item in stored:
            self._record(job, item)
        return stored

    def _record(self, job: Job, item: StoredImage) -> None:
        if self._history is None:
            return
        try:
            self._history.record_image(job.user, item.path, item.recipe)
        except Exception:  # the PNG is kept; the next start's import lists it
            log.warning("could not record %s in %s's work", item.path.name, job.user.id)
