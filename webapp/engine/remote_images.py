"""Image jobs made on a Ray cluster (the deployment is `webapp/backends/ray_images.py`).

Atelier keeps what is its own: the image lane gathers batches from the fair queue as it
does for its own device and sends each to the cluster, at most one per replica at once.
Each batch streams from a thread of its own (it waits on the network and never touches
torch): progress and previews reach the jobs as the replica makes them; once every job of
a batch is cancelled, its response is cancelled too, which stops the pipeline at its next
step. A batch whose replica dies is sent again from the start (Serve routes it to a live
replica), and fails with a message after `ATTEMPTS` tries.

The cluster is reached in the background at start. Until it answers jobs wait; when it
cannot be reached they are told so at submit (or, by setting, made on this server's device).
"""

from __future__ import annotations

import logging
import threading
import time
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from webapp.backends.ray_images import Done, Failed, RayBatch, Started, Step
from webapp.engine.image_batch import batch_rows, batch_settings
from webapp.engine.jobs import ImageResult, Job, JobStatus, Progress
from webapp.engine.requests import ImageRequest
from webapp.settings import env_name

if TYPE_CHECKING:
    from webapp.engine.core import Engine
    from webapp.settings import Settings

log = logging.getLogger(__name__)

ATTEMPTS = 3  # sends of one batch, when replicas die under it
RETRY_PAUSE_SECONDS = 1.0  # lets Serve learn that a replica died before the next send
CONNECT_SECONDS = 300  # the longest the cluster may take to answer and start its replicas
RECONNECT_SECONDS = 30  # how soon a submit may try an unreachable cluster again
KEEP_PLACEMENTS = 200  # which replica made which job, for the admin


class ClusterState(StrEnum):
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"


class RemoteImages:
    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.address = settings.ray_address
        self.replicas = settings.ray_replicas
        self._settings = settings
        self._lock = threading.Lock()
        self._state = ClusterState.CONNECTING
        self._problem = ""
        self._since = time.monotonic()
        self._handle: Any = None
        self._busy = 0
        self._placements: dict[str, str] = {}  # job id -> replica id
        self._settled = threading.Event()  # set when a connection attempt has ended
        self._connect_in_background()

    # -- the cluster ------------------------------------------------------------------------

    def _connect_in_background(self) -> None:
        self._settled.clear()
        threading.Thread(target=self._connect, name="atelier-ray-connect", daemon=True).start()

    def _connect(self) -> None:
        from webapp.backends import ray_images

        try:
            ray_images.connect(self.address)
            handle = ray_images.deploy(self._settings)
        except Exception as error:
            log.warning("the image cluster at %s cannot be used: %s", self.address, error)
            with self._lock:
                self._state, self._problem = ClusterState.DOWN, _short(error)
                self._since = time.monotonic()
        else:
            log.info("images are made on the Ray cluster at %s", self.address)
            with self._lock:
                self._state, self._handle, self._problem = ClusterState.UP, handle, ""
        finally:
            self._settled.set()
            self.engine.wake()

    def wait_settled(self, timeout: float) -> ClusterState:
        """The state once the connection attempt under way has ended (or `timeout` passed)."""
        self._settled.wait(timeout)
        return self.state

    @property
    def state(self) -> ClusterState:
        with self._lock:
            return self._state_now()

    def _state_now(self) -> ClusterState:
        late = time.monotonic() - self._since > CONNECT_SECONDS
        if self._state == ClusterState.CONNECTING and late:
            self._state = ClusterState.DOWN
            self._problem = f"it did not start its replicas within {CONNECT_SECONDS} s"
        return self._state

    def seconds_to_connect(self) -> float:
        """How long the worker may wait for the connection before looking again."""
        with self._lock:
            return max(0.0, self._since + CONNECT_SECONDS - time.monotonic())

    def try_again_if_down(self) -> None:
        """A cluster that could not be reached is tried again, at most every half minute."""
        with self._lock:
            again = (
                self._state_now() == ClusterState.DOWN
                and self._handle is None
                and time.monotonic() - self._since > RECONNECT_SECONDS
            )
            if again:
                self._state, self._since = ClusterState.CONNECTING, time.monotonic()
        if again:
            self._connect_in_background()

    def unreachable_message(self) -> str:
        with self._lock:
            problem = self._problem
        return (
            f"Images are made on the image cluster at {self.address}, which cannot be used "
            f"now ({problem}). Try again in a few minutes; if it keeps failing, tell your "
            f"Atelier admin (`atelier doctor` checks the cluster; {env_name('ray_fallback_local')}"
            "=true makes images on this server meanwhile)."
        )

    def status(self) -> dict[str, Any]:
        """The cluster as the Queue page and the doctor show it."""
        with self._lock:
            return {
                "address": self.address,
                "state": str(self._state_now()),
                "problem": self._problem,
                "replicas": self.replicas,
                "busy": self._busy,
            }

    def placement(self, job_id: str) -> str | None:
        """The replica that made (or makes) a job."""
        with self._lock:
            return self._placements.get(job_id)

    # -- batches ----------------------------------------------------------------------------

    def free_slots(self) -> int:
        with self._lock:
            if self._state_now() != ClusterState.UP:
                return 0
            return max(0, self.replicas - self._busy)

    def start(self, jobs: list[Job], total_steps: int) -> None:
        """Send a batch to the cluster, streaming from a thread of its own."""
        with self._lock:
            self._busy += 1
        batch = remote_batch(jobs)
        threading.Thread(
            target=self._serve,
            args=(jobs, batch, total_steps),
            name=f"atelier-ray-{jobs[0].id}",
            daemon=True,
        ).start()

    def _serve(self, jobs: list[Job], batch: RayBatch, total: int) -> None:
        try:
            for attempt in range(1, ATTEMPTS + 1):
                if self._stream(jobs, batch):
                    return
                for job in jobs:  # what the lost replica showed is started again
                    job._update(progress=Progress(0, total), preview=None)
                if attempt < ATTEMPTS:
                    time.sleep(RETRY_PAUSE_SECONDS)
            _fail(jobs, REPLICAS_LOST)
        except Exception:
            log.exception("an image batch on the cluster failed")
            _fail(jobs, CLUSTER_FAILED)
        finally:
            with self._lock:
                self._busy -= 1
            self.engine.wake()

    def _stream(self, jobs: list[Job], batch: RayBatch) -> bool:
        """One send of the batch; True once it is over (made, failed or cancelled), False
        when the replica died under it."""
        from ray.exceptions import ActorUnavailableError, RayActorError

        started = time.perf_counter()
        response = self._handle.generate.remote(batch)
        owners = _first_rows(jobs)
        try:
            for event in response:
                if all(job.finished for job in jobs):
                    response.cancel()  # everyone cancelled: the replica stops
                    return True
                if isinstance(event, Started):
                    self._place(jobs, event.replica)
                elif isinstance(event, Step):
                    _publish_step(jobs, owners, event)
                elif isinstance(event, Done):
                    _deliver(jobs, event, time.perf_counter() - started)
                    self.engine.record("image", time.perf_counter() - started)
                    return True
                elif isinstance(event, Failed):
                    _fail(jobs, event.message)
                    return True
        except (RayActorError, ActorUnavailableError) as error:
            log.warning("an image replica died during %s: %s", jobs[0].id, _short(error))
            return all(job.finished for job in jobs)
        return all(job.finished for job in jobs)  # a stream that ended early: send again

    def _place(self, jobs: list[Job], replica: str) -> None:
        with self._lock:
            for job in jobs:
                self._placements[job.id] = replica
            for job_id in list(self._placements)[:-KEEP_PLACEMENTS]:
                del self._placements[job_id]


REPLICAS_LOST = (
    "The image cluster lost the machine making this image, more than once. Try again in a "
    "minute; if it keeps failing, tell your Atelier admin (`atelier doctor` checks the cluster)."
)
CLUSTER_FAILED = (
    "The image cluster failed while making this image. Try again; if it keeps failing, tell "
    "your Atelier admin (the server log has the details)."
)


def remote_batch(jobs: list[Job]) -> RayBatch:
    """The jobs of one batch as the replica reads them."""
    first: ImageRequest = jobs[0].request
    rows = tuple(batch_rows(jobs))
    settings = batch_settings(first)
    loras = tuple((lora.name, lora.weight) for lora in first.loras)
    return RayBatch(first.model, rows, settings, loras)


def _first_rows(jobs: list[Job]) -> list[int]:
    """The index of each job's first image in the batch's rows."""
    starts, row = [], 0
    for job in jobs:
        starts.append(row)
        row += job.request.num_images
    return starts


def _publish_step(jobs: list[Job], owners: list[int], event: Step) -> None:
    from PIL import Image

    for job, row in zip(jobs, owners, strict=True):
        changes: dict[str, Any] = {"progress": Progress(event.step, event.total)}
        if event.previews is not None:
            changes["preview"] = Image.fromarray(event.previews[row])
        job._update(**changes)


def _deliver(jobs: list[Job], done: Done, seconds: float) -> None:
    from PIL import Image

    images = [Image.fromarray(pixels) for pixels in done.images]
    flagged = done.flagged or [False] * len(images)
    for job in jobs:
        count = job.request.num_images
        mine, images = images[:count], images[count:]
        mine_flagged, flagged = flagged[:count], flagged[count:]
        seeds = [job.request.seed + i for i in range(count)]
        job._finish(
            JobStatus.DONE,
            ImageResult(images=mine, seeds=seeds, seconds=seconds, flagged=mine_flagged),
        )


def _fail(jobs: list[Job], message: str) -> None:
    for job in jobs:
        job._finish(JobStatus.FAILED, error=message)


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]
