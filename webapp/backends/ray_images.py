"""Images made on a Ray cluster: a Ray Serve deployment holding diffusers pipelines.

Each replica (one per GPU, on any node of the cluster) is a small engine of its own: the
project's model manager and registry over the same models folder (so the same checks:
safetensors only, no remote code), and one batch at a time on a single thread. A batch
streams events back: a `Step` per denoising step (with previews now and then), then `Done`
with the pictures as arrays, or `Failed` with a message a person can act on. When the
caller cancels the response, the pipeline stops at its next step.

Atelier's side (`webapp/engine/remote_images.py`) keeps the queue, fairness and the jobs;
this module knows nothing of them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from webapp.backends.diffusion import BatchSettings, ImageRow

log = logging.getLogger(__name__)

APP_NAME = "atelier-images"
NAMESPACE = "atelier"
PREVIEW_EVERY = 5  # steps between previews, as on the local lane
PROBE_SECONDS = 3
# The settings a replica reads: where the models are, and how to load them.
REPLICA_SETTINGS = (
    "models_dir",
    "dtype",
    "memory_budget_gb",
    "channels_last",
    "compile_unet",
    "safety_checker",
    "allow_pickle",
)


@dataclass(frozen=True)
class RayBatch:
    """One pipeline call: what all images share, one row per image, and the LoRAs."""

    model: str
    rows: tuple[ImageRow, ...]
    settings: BatchSettings
    loras: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Started:
    replica: str  # the replica's actor name, for the log and the admin


@dataclass(frozen=True)
class Step:
    step: int
    total: int
    previews: list[Any] | None = None  # uint8 arrays [height, width, 3], one per image


@dataclass(frozen=True)
class Done:
    images: list[Any]  # uint8 arrays [height, width, 3], in row order
    flagged: list[bool] = field(default_factory=list)


@dataclass(frozen=True)
class Failed:
    message: str


class ClusterUnreachable(Exception):
    """Nothing answers at the cluster's address."""


# -- the replica, on the cluster ------------------------------------------------------------


class ImageReplica:
    """The body of the Serve deployment (made one by `deploy`)."""

    def __init__(self, settings: dict[str, Any]):
        from webapp.device import memory_budget_bytes, resolve_device
        from webapp.loader import ModelManager
        from webapp.offline import use_offline_environment
        from webapp.registry import LiveRegistry
        from webapp.settings import Settings

        use_offline_environment()
        self.settings = Settings(**settings, device="auto")
        device = resolve_device(self.settings)
        self.registry = LiveRegistry(self.settings)
        budget = memory_budget_bytes(self.settings, device)
        self.manager = ModelManager(self.registry, device, budget, self.settings)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="atelier-replica")
        self._name = _replica_name()

    async def generate(self, batch: RayBatch) -> AsyncIterator[Any]:
        """The events of one batch, as they happen."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()

        def send(event: Any) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        yield Started(self._name)
        # The next batch waits for this one on the replica's one thread.
        loop.run_in_executor(self._executor, self._run, batch, send, stop)
        try:
            while True:
                event = await events.get()
                yield event
                if isinstance(event, Done | Failed):
                    break
        finally:
            stop.set()  # cancelled or closed: the pipeline stops at its next step

    def _run(self, batch: RayBatch, send, stop: threading.Event) -> None:
        """On the replica's one thread: the batch, from load to pictures."""
        try:
            send(self._generate(batch, send, stop))
        except Exception as error:
            send(Failed(_failure(error)))
        finally:
            self.manager.release_memory()

    def _generate(self, batch: RayBatch, send, stop: threading.Event) -> Done | Failed:
        import numpy as np

        from webapp.backends import diffusion
        from webapp.engine.image_lane import effective_steps
        from webapp.registry import lora_path

        entry = self.registry().get(batch.model, kind="image")
        total = effective_steps(batch.settings)
        loras = [
            (name, lora_path(self.settings.models_dir, name), weight)
            for name, weight in batch.loras
        ]

        def on_step(step: int, latents) -> bool:
            previews = None
            if step % PREVIEW_EVERY == 0:
                previews = [np.asarray(p) for p in diffusion.latent_preview(latents, entry.family)]
            send(Step(min(step, total), total, previews))
            return stop.is_set()

        with self.manager.use(batch.model) as pipe, diffusion.loras_applied(pipe, loras):
            images = diffusion.generate_images(pipe, list(batch.rows), batch.settings, on_step)
        if stop.is_set():
            return Failed("Cancelled.")
        images, flagged = self._check_safety(images)
        return Done([np.asarray(image.convert("RGB")) for image in images], flagged)

    def _check_safety(self, images: list[Any]) -> tuple[list[Any], list[bool]]:
        if not self.settings.safety_checker:
            return images, [False] * len(images)
        from PIL import Image

        checkers = self.registry().of_kind("safety")
        if not checkers:
            raise RuntimeError("the safety checker is on but its weights are not installed")
        with self.manager.use(checkers[0].name) as checker:
            flags = checker.flags(images)
        pairs = zip(images, flags, strict=True)
        return [Image.new("RGB", image.size) if flag else image for image, flag in pairs], flags


def _failure(error: Exception) -> str:
    from webapp.engine.failures import failure_message
    from webapp.errors import AtelierError, ModelNotFound

    if isinstance(error, ModelNotFound):
        return (
            f"On the image cluster: {error.message} Its machines must see the same models "
            "folder as Atelier: tell your Atelier admin (docs/deploy.md explains)."
        )
    if isinstance(error, AtelierError):
        return f"On the image cluster: {error.message}"
    log.exception("an image batch failed on this replica")
    return failure_message(
        error,
        "Making this image failed on the image cluster. Try other settings; if it keeps "
        "failing, tell your Atelier admin (the replica's log has the details).",
    )


def _replica_name() -> str:
    try:
        from ray import serve

        return serve.get_replica_context().replica_id.to_full_id_str()
    except Exception:  # outside Serve (a test calling the class directly)
        return "local"


# -- Atelier's side: reaching the cluster ----------------------------------------------------


def replica_settings(settings: Any) -> dict[str, Any]:
    """What a replica needs of Atelier's settings (plain values, sent to the cluster)."""
    return {name: getattr(settings, name) for name in REPLICA_SETTINGS}


def probe(address: str) -> None:
    """A plain TCP connection to the cluster's address: Ray itself would wait for minutes
    before saying that nothing answers there."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_SECONDS):
            return
    except OSError as error:
        raise ClusterUnreachable(f"nothing answers at {address} ({error})") from None


def connect(address: str) -> None:
    """Join the cluster at `address` as a driver (or use the connection this process has)."""
    try:
        import ray
    except ImportError:
        raise ClusterUnreachable(
            "Ray is not installed on this server: pip install 'atelier[ray]'"
        ) from None
    probe(address)
    if ray.is_initialized():
        here = ray.get_runtime_context().gcs_address
        if not _same_address(here, address):
            raise ClusterUnreachable(f"this process is already connected to {here}")
        return
    ray.init(
        address=address,
        namespace=NAMESPACE,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )


def deploy(settings: Any) -> Any:
    """Run the image deployment on the cluster (or update it) and return a streaming handle
    to it. Waits until its replicas are up."""
    from ray import serve

    deployment = serve.deployment(
        ImageReplica,
        name="ImageReplica",
        num_replicas=settings.ray_replicas,
        max_ongoing_requests=1,  # one batch at a time: Atelier keeps the queue
        ray_actor_options={
            "num_gpus": settings.ray_gpus_per_replica,
            "num_cpus": settings.ray_cpus_per_replica,
        },
        health_check_period_s=2,
        graceful_shutdown_timeout_s=5,
    )
    serve.start(proxy_location="Disabled")
    handle = serve.run(
        deployment.bind(replica_settings(settings)), name=APP_NAME, route_prefix=None
    )
    return handle.options(stream=True)


def _same_address(here: str, wanted: str) -> bool:
    def resolved(address: str) -> tuple[str, str]:
        host, _, port = address.rpartition(":")
        try:
            return socket.gethostbyname(host), port
        except OSError:
            return host, port

    return resolved(here) == resolved(wanted)
