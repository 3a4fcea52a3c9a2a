"""Images made on a Ray cluster: a local cluster on this machine with two replicas of tiny-sd
behind the image lane. People's jobs run on both replicas at once and equal the local
engine's pictures; progress arrives; cancel stops only the canceller's job; a replica killed
mid-job hands the job to the other; an address where nothing answers is named at submit."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from webapp.backends.ray_images import (
    Failed,
    ImageReplica,
    RayBatch,
    Step,
    replica_settings,
)
from webapp.engine import ImageRequest, Job, JobStatus
from webapp.engine.factory import build_engine
from webapp.engine.remote_images import ClusterState, remote_batch
from webapp.errors import AtelierError
from webapp.settings import Settings
from webapp.users import User

pytestmark = pytest.mark.ray
NOTHING_THERE = "127.0.0.1:8649"  # a port of this project's range where nothing listens
START_SECONDS = 300
ADA, BOB, CAROL, DAN = (User(n, n.title()) for n in ("ada", "bob", "carol", "dan"))


def image(prompt="a red fox", **options) -> ImageRequest:
    defaults = dict(width=64, height=64, steps=4, seed=7)
    return ImageRequest("tiny-sd", prompt, **{**defaults, **options})


def pixels(picture) -> np.ndarray:
    return np.asarray(picture.convert("RGB"), dtype=np.int16)


def ray_settings(models_dir, address: str, **options) -> Settings:
    values = dict(
        models_dir=models_dir,
        device="cpu",
        ray_address=address,
        ray_replicas=2,
        ray_gpus_per_replica=0,
        ray_cpus_per_replica=0.5,
        batch_window_ms=0,
    )
    return Settings(**{**values, **options})


def wait_for(state: ClusterState, engine, seconds: float) -> None:
    remote = engine.lane("image").remote
    deadline = time.monotonic() + seconds
    while remote.state != state and time.monotonic() < deadline:
        time.sleep(0.2)
    assert remote.state == state, remote.status()


def wait_for_progress(job, steps: int, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while job.progress.step < steps and not job.finished and time.monotonic() < deadline:
        job.wait_for_update(1)
    assert job.progress.step >= steps, (job.status, job.error, job.progress)


def first_steps(jobs, seconds: float) -> dict[str, float]:
    """When each job's first denoising step was seen, watching until all have ended."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + seconds
    while not all(job.finished for job in jobs) and time.monotonic() < deadline:
        for job in jobs:
            if job.progress.step > 0:
                seen.setdefault(job.id, time.time())
        time.sleep(0.02)
    return seen


# -- no cluster -------------------------------------------------------------------------------


@pytest.fixture
def engines():
    made = []

    def make(settings: Settings):
        made.append(build_engine(settings))
        return made[-1]

    yield make
    for engine in made:
        engine.shutdown()


def test_an_address_where_nothing_answers_is_named_at_submit_and_on_the_queue(
    engines, tiny_models_dir
):
    engine = engines(ray_settings(tiny_models_dir, NOTHING_THERE))
    wait_for(ClusterState.DOWN, engine, 30)
    with pytest.raises(AtelierError, match=f"image cluster at {NOTHING_THERE}.*nothing answers"):
        engine.submit(image(), ADA)
    assert any(NOTHING_THERE in notice for notice in engine.notices())


def test_the_doctor_names_an_image_cluster_that_cannot_be_used(make_services, tiny_models_dir):
    services = make_services(
        tiny_models_dir, ray_address=NOTHING_THERE, ray_replicas=2, ray_gpus_per_replica=0
    )
    report = services.system.doctor()  # at once: it waits for the attempt to connect
    check = next(check for check in report.checks if check.name == "image cluster")
    assert not check.ok and check.required and not report.healthy
    assert NOTHING_THERE in check.detail and "nothing answers" in check.detail
    assert "ray start --head" in check.advice


def test_with_the_fallback_on_images_are_made_here_while_the_cluster_is_away(
    engines, tiny_models_dir
):
    settings = ray_settings(tiny_models_dir, NOTHING_THERE, ray_fallback_local=True)
    engine = engines(settings)
    wait_for(ClusterState.DOWN, engine, 30)
    job = engine.submit(image(), ADA)
    assert len(job.result(120).images) == 1
    assert engine.lane("image").remote.placement(job.id) is None  # no replica made it
    assert engine.notices() and "made on this server" in engine.notices()[0]


# -- a local cluster with two replicas --------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    """A Ray cluster on this machine (2 CPUs, no dashboard), for this module only."""
    import ray
    from ray import serve

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def engine(cluster, tiny_models_dir):
    built = build_engine(ray_settings(tiny_models_dir, cluster))
    try:
        wait_for(ClusterState.UP, built, START_SECONDS)
        warm_up = [built.submit(image(steps=1, seed=s), u) for s, u in ((1, CAROL), (2, DAN))]
        for job in warm_up:  # each replica loads tiny-sd before the timings below
            job.result(START_SECONDS)
        yield built
    finally:
        built.shutdown()


@pytest.fixture(scope="module")
def local_engine(tiny_models_dir):
    built = build_engine(Settings(models_dir=tiny_models_dir, device="cpu"))
    yield built
    built.shutdown()


def test_two_peoples_images_are_made_on_both_replicas_at_once_like_the_local_engine(
    engine, local_engine
):
    # Enough steps that each job outlasts the other replica's start (0.2 s under load).
    requests = {ADA: image("a red fox", steps=40), BOB: image("a blue boat", steps=40, seed=3)}
    jobs = {user: engine.submit(request, user) for user, request in requests.items()}
    first_step = first_steps(list(jobs.values()), seconds=240)
    results = {user: job.result(1) for user, job in jobs.items()}
    remote = engine.lane("image").remote
    assert remote.placement(jobs[ADA].id) != remote.placement(jobs[BOB].id)
    ada, bob = jobs[ADA], jobs[BOB]
    # Together: each had made a step before the other was done.
    assert first_step[ada.id] < bob.finished_at and first_step[bob.id] < ada.finished_at
    for user, request in requests.items():
        here = local_engine.submit(request, user).result(240)
        difference = np.abs(pixels(results[user].images[0]) - pixels(here.images[0]))
        assert difference.max() <= 1


def test_progress_and_previews_arrive_from_the_replica(engine):
    job = engine.submit(image(steps=10), ADA)
    seen, previews = set(), 0
    while not job.finished:
        job.wait_for_update(1)
        seen.add(job.progress.step)
        previews += job.preview is not None
    assert job.status == JobStatus.DONE, job.error
    assert len(seen - {0, 10}) >= 3 and previews  # steps in between, and a preview


def test_cancel_stops_only_the_cancellers_job(engine, local_engine):
    adas = engine.submit(image("a long one", steps=120), ADA)
    bobs = engine.submit(image("a short one", steps=6), BOB)
    wait_for_progress(adas, 2)
    assert adas.cancel(ADA)
    result = bobs.result(240)
    assert adas.status == JobStatus.CANCELLED and bobs.status == JobStatus.DONE
    here = local_engine.submit(image("a short one", steps=6), BOB).result(240)
    assert np.abs(pixels(result.images[0]) - pixels(here.images[0])).max() <= 1


def test_a_cancelled_batch_stops_at_its_next_step_and_the_replica_takes_the_next(
    tiny_models_dir,
):
    """The replica itself, outside Serve: closing its stream (what Serve does when the
    response is cancelled) stops the pipeline, so the next batch starts at once."""
    replica = ImageReplica(replica_settings(Settings(models_dir=tiny_models_dir)))

    async def run(batch: RayBatch, close_after_steps: int | None = None) -> float:
        started = time.perf_counter()
        stream = replica.generate(batch)
        async for event in stream:
            if isinstance(event, Step) and event.step == close_after_steps:
                await stream.aclose()
                break
        return time.perf_counter() - started

    async def scenario() -> tuple[float, float]:
        short = _ray_batch(steps=4)
        await run(short)  # loads the model
        alone = await run(short)
        await run(_ray_batch(steps=150), close_after_steps=2)
        return alone, await run(short)

    alone, after_a_cancel = in_a_thread_of_its_own(scenario())
    # Not stopped, the 148 steps left would come first: about 37 times `alone`.
    assert after_a_cancel < 5 * alone + 1


def test_a_model_the_replicas_do_not_have_fails_with_a_message(tmp_path):
    """A replica whose models folder lacks the model (not the shared folder Atelier reads)."""
    (tmp_path / "models").mkdir()
    replica = ImageReplica(replica_settings(Settings(models_dir=tmp_path / "models")))

    async def events() -> list:
        return [event async for event in replica.generate(_ray_batch(steps=2))]

    *_, last = in_a_thread_of_its_own(events())
    assert isinstance(last, Failed)
    assert last.message.startswith("On the image cluster:") and "tiny-sd" in last.message
    assert "same models folder" in last.message and "tell your Atelier admin" in last.message


def in_a_thread_of_its_own(coroutine):
    """Run `coroutine` to its end in a new event loop on another thread: the session's
    browser tests (Playwright's sync API) keep an event loop running on this one."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _ray_batch(steps: int) -> RayBatch:
    return remote_batch([Job(image(steps=steps), ADA, "image")])


def test_a_killed_replica_hands_the_job_to_the_other_from_the_start(engine, local_engine):
    import ray

    request = image("a lighthouse", steps=30, seed=11)
    job = engine.submit(request, ADA)
    wait_for_progress(job, 3)
    remote = engine.lane("image").remote
    killed = remote.placement(job.id)
    ray.kill(ray.get_actor(killed, namespace="serve"), no_restart=True)
    result = job.result(300)
    assert remote.placement(job.id) != killed
    here = local_engine.submit(request, ADA).result(240)
    assert np.abs(pixels(result.images[0]) - pixels(here.images[0])).max() <= 1
