"""The engine's lanes: one thread runs models, no kind of work freezes another, faults stay
inside their own job, and batches gather people who press Generate together."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import torch

from tests.conftest import REPO
from tests.fakes import CannedDecodeBatch, Recorder, SlowImages
from webapp.engine import ChatMessage, ImageRequest, JobFailed, JobStatus, TextRequest
from webapp.engine.factory import build_engine
from webapp.services import build_services
from webapp.services.images import ImageForm
from webapp.settings import Settings
from webapp.users import User

ADA, BOB, CAROL = User("ada", "Ada"), User("bob", "Bob"), User("carol", "Carol")
ADMIN = User("root", "Admin", is_admin=True)
WORKER = "atelier-engine"


def image(prompt="a red fox", **options) -> ImageRequest:
    return ImageRequest("tiny-sd", prompt, **{"width": 64, "height": 64, "steps": 4, **options})


def text(prompt="hello", **options) -> TextRequest:
    options = {"max_new_tokens": 8, "temperature": 0.0, **options}
    return TextRequest("tiny-llm", (ChatMessage("user", prompt),), **options)


@pytest.fixture
def settings(engine_settings):
    return engine_settings


# -- one thread runs torch ------------------------------------------------------------------


def test_request_and_job_types_import_no_torch_and_set_no_environment():
    code = (
        "import os, sys\n"
        "import webapp.engine, webapp.engine.requests, webapp.engine.jobs\n"
        "import webapp.text_tools, webapp.png_recipe, webapp.backends\n"
        "print('torch' in sys.modules, 'HF_HUB_OFFLINE' in os.environ)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.stdout.split() == ["False", "False"], result.stderr


@pytest.fixture
def torch_threads(monkeypatch):
    """The names of the threads that run any torch module."""
    seen: set[str] = set()
    call = torch.nn.Module.__call__

    def recording(module, *args, **kwargs):
        seen.add(threading.current_thread().name)
        return call(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "__call__", recording)
    return seen


def test_loads_checks_and_jobs_run_torch_only_on_the_engine_thread(settings, torch_threads):
    services = build_services(settings)
    try:
        services.models.load("tiny-llm", ADMIN)  # the Models page's Load button
        services.models.pin("tiny-sd", ADMIN)
        run = services.images.generate(ImageForm("red fox " * 40, model="tiny-sd", steps=2), ADA)
        assert run.dropped_words  # the prompt check answered in this (page) thread
        services.images.finish(run, ADA, timeout=60)
        tool = services.text.run_tool("summarise", {"text": "Anna books a room."}, BOB)
        tool.jobs[0].result(60)
        assert {stats.loaded_on for stats in services.engine.model_stats()} == {WORKER}
    finally:
        services.close()
    assert torch_threads == {WORKER}


def test_page_threads_checking_prompts_never_break_running_image_jobs(make_engine):
    engine = make_engine()
    long_prompt = "a detailed photo of a red fox in a snowy forest at dawn " * 12
    stop = threading.Event()
    failures: list[BaseException] = []

    def check_prompts():
        while not stop.is_set():
            try:
                engine.tokens.dropped_words("tiny-sd", long_prompt)
                engine.tokens.chat_ids("tiny-llm", [{"role": "user", "content": long_prompt}])
            except BaseException as error:  # any error here is the race
                failures.append(error)

    checkers = [threading.Thread(target=check_prompts) for _ in range(6)]
    for checker in checkers:
        checker.start()
    try:
        jobs = [engine.submit(image(long_prompt, seed=i), User(f"u{i}", "U")) for i in range(8)]
        results = [job.result(120) for job in jobs]
    finally:
        stop.set()
        for checker in checkers:
            checker.join()
    assert failures == []
    assert all(len(result.images) == 1 for result in results)


# -- no lane freezes another ----------------------------------------------------------------


def test_text_streams_while_an_image_batch_runs(make_engine):
    slow = SlowImages(steps=60, step_seconds=0.02)
    engine = make_engine(image_runner=slow)
    picture = engine.submit(image("a long batch"), ADA)
    while picture.progress.step < 2:
        picture.wait_for_update(5)
    answer = engine.submit(text("hi", max_new_tokens=12), BOB)
    answer.result(30)
    assert not picture.finished, "the text job waited for the image batch to end"
    assert picture.result(30).images


def test_a_text_job_for_a_cold_model_starts_during_an_image_batch(make_engine):
    slow = SlowImages(steps=200, step_seconds=0.02)
    engine = make_engine(image_runner=slow)
    picture = engine.submit(image("a long batch"), ADA)
    while picture.progress.step < 2:
        picture.wait_for_update(5)
    answer = engine.submit(text("hi", max_new_tokens=4), BOB)
    assert answer.result(60).tokens > 0
    assert not picture.finished
    picture.cancel(ADA)


# -- batches that gather --------------------------------------------------------------------


def test_people_pressing_generate_together_share_one_batch(make_engine):
    recorder = Recorder()
    engine = make_engine(image_runner=recorder, batch_window_seconds=0.2)
    users = [User(f"user-{i}", f"User {i}") for i in range(8)]
    barrier = threading.Barrier(8)
    jobs = [None] * 8

    def press(index):
        barrier.wait()
        jobs[index] = engine.submit(image(f"item {index}"), users[index])

    threads = [threading.Thread(target=press, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for job in jobs:
        job.result(30)
    assert len(recorder.calls) == 1 and len(recorder.calls[0]) == 8


def test_a_full_batch_starts_without_waiting_for_the_window(make_engine):
    recorder = Recorder()
    engine = make_engine(image_runner=recorder, batch_window_seconds=60)
    jobs = [engine.submit(image(f"p{i}", num_images=4), User(f"u{i}", "U")) for i in range(2)]
    assert all(job.result(10).images for job in jobs)  # 8 images fill the batch at once


def test_a_lone_request_waits_no_longer_than_the_window(make_engine):
    engine = make_engine(image_runner=Recorder(), batch_window_seconds=0.5)
    job = engine.submit(image("alone"), ADA)
    assert not job.wait(0.2)  # still gathering
    assert job.result(10).images


# -- faults stay in their own job -----------------------------------------------------------


def test_a_failing_text_lane_fails_its_jobs_and_images_go_on(make_engine, monkeypatch):
    monkeypatch.setattr(CannedDecodeBatch, "fail_steps", True)
    slow = SlowImages(steps=20, step_seconds=0.01)
    engine = make_engine(decode_batch=CannedDecodeBatch, image_runner=slow)
    picture = engine.submit(image("still made"), ADA)
    words = engine.submit(text("hi", max_new_tokens=20), BOB)
    with pytest.raises(JobFailed, match="Writing the answer failed"):
        words.result(30)
    assert picture.result(30).images
    assert engine.submit(image("and after"), ADA).result(30).images
    assert engine.running_count() == 0


def test_a_model_unloaded_by_an_admin_while_jobs_wait_is_loaded_again(make_engine):
    recorder = Recorder()
    recorder.gate.clear()
    engine = make_engine(image_runner=recorder)
    first = engine.submit(image("first", width=72), ADA)
    assert recorder.in_first_call.wait(30)
    waiting = engine.submit(text("next in line"), BOB)
    recorder.gate.set()
    first.result(30)
    engine.unload_model("tiny-llm")
    assert waiting.result(60).tokens > 0


def test_cancelling_one_job_in_a_mixed_load_leaves_the_others_alone(make_engine):
    engine = make_engine(image_runner=SlowImages(steps=30, step_seconds=0.01))
    pictures = [engine.submit(image(f"p{i}"), User(f"u{i}", "U")) for i in range(3)]
    answers = [
        engine.submit(text(f"q{i}", max_new_tokens=40), User(f"t{i}", "T")) for i in range(3)
    ]
    while not answers[1].text:
        answers[1].wait_for_update(5)
    assert answers[1].cancel(User("t1", "T"))
    assert all(job.result(60) for job in pictures)
    assert answers[0].result(60).tokens and answers[2].result(60).tokens
    assert answers[1].status == JobStatus.CANCELLED


def test_a_fault_in_the_worker_loop_starts_it_again_and_serving_goes_on(make_engine):
    engine = make_engine(image_runner=Recorder())
    real, calls = engine._next_work, []

    def faulty():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("injected fault in the worker loop")
        return real()

    engine._next_work = faulty
    jobs = [engine.submit(image(f"p{i}"), ADA) for i in range(3)]
    for job in jobs:
        job.wait(30)
    assert [job.status for job in jobs].count(JobStatus.DONE) >= 2
    after = engine.submit(image("after the fault"), BOB)
    assert after.result(30).images
    deadline = time.monotonic() + 10  # the fault may come on the idle call after the last job
    while engine.health()["worker_restarts"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    health = engine.health()
    assert health["worker_alive"] and health["worker_restarts"] == 1


def test_a_full_queue_says_when_to_try_again(tiny_models_dir):
    from webapp.errors import QueueFull

    recorder = Recorder()
    recorder.gate.clear()
    settings = Settings(models_dir=tiny_models_dir, device="cpu", queue_max_per_user=1)
    engine = build_engine(settings, image_runner=recorder)
    try:
        engine.submit(image("running"), ADA)
        assert recorder.in_first_call.wait(30)
        engine.submit(image("waiting"), ADA)
        with pytest.raises(QueueFull, match=r"Try again in about \d+ s") as caught:
            engine.submit(image("one too many"), ADA)
        assert caught.value.retry_after >= 1
    finally:
        recorder.gate.set()
        engine.shutdown()
