"""The engine: one owner of the device, fair queue, batching, progress, cancel, faults."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from tests.fakes import Recorder
from webapp.backends.textgen import CPU_PREFILL_TOKENS, DecodeBatch
from webapp.engine import (
    ChatMessage,
    ImageRequest,
    JobCancelled,
    JobFailed,
    JobStatus,
    TextRequest,
)
from webapp.engine.factory import build_engine
from webapp.errors import Forbidden, QueueFull, ValidationError
from webapp.settings import Settings
from webapp.users import User

ADA, BOB, CAROL = User("ada", "Ada"), User("bob", "Bob"), User("carol", "Carol")
ADMIN = User("root", "Admin", is_admin=True)


def image(prompt="a red fox", **options) -> ImageRequest:
    defaults = dict(width=64, height=64, steps=4, seed=7)
    return ImageRequest("tiny-sd", prompt, **{**defaults, **options})


def text(prompt="hello", **options) -> TextRequest:
    defaults = dict(max_new_tokens=8, temperature=0.0)
    return TextRequest("tiny-llm", (ChatMessage("user", prompt),), **{**defaults, **options})


def pixels(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture).astype(int)


def assert_same_image(alone: Image.Image, batched: Image.Image) -> None:
    """Same picture: batched kernels may round the last bit differently, never more."""
    difference = np.abs(pixels(alone) - pixels(batched))
    assert difference.max() <= 1, difference.max()
    assert (difference > 0).mean() < 0.005


@pytest.fixture
def engine_settings(tiny_models_dir):
    return Settings(
        models_dir=tiny_models_dir,
        device="cpu",
        queue_max_per_user=30,
        queue_max_total=60,
        max_batch_images=4,
    )


@pytest.fixture
def engine(engine_settings):
    built = build_engine(engine_settings)
    yield built
    built.shutdown()


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def fake_engine(engine_settings, recorder):
    built = build_engine(engine_settings, image_runner=recorder)
    yield built
    recorder.gate.set()
    built.shutdown()


def hold_worker(engine, recorder):
    """Occupy the worker with a blocker job so the next submissions queue up together."""
    recorder.gate.clear()
    blocker = engine.submit(image("blocker", width=72), ADMIN)
    assert recorder.in_first_call.wait(30)
    return blocker


# -- real tiny models ------------------------------------------------------------------------


def test_image_job_reports_monotonic_progress_and_previews(engine):
    job = engine.submit(image(steps=10), ADA)
    seen = []
    while not job.finished:
        seen.append(job.progress.step)
        job._done.wait(0.001)
    result = job.result(60)
    assert seen == sorted(seen)
    assert job.progress.step == job.progress.total == 10
    assert isinstance(job.preview, Image.Image)
    assert len(result.images) == 1 and result.images[0].size == (64, 64)
    assert result.seeds == [7]


def test_request_for_n_images_uses_one_seed_per_image(engine):
    result = engine.submit(image(num_images=3, seed=40), ADA).result(60)
    assert result.seeds == [40, 41, 42]
    alone = engine.submit(image(seed=41), ADA).result(60).images[0]
    assert_same_image(alone, result.images[1])


def test_sixteen_threads_mixed_jobs_match_their_solo_runs(engine):
    requests = [
        image(f"fox {i}", seed=i, scheduler=("euler", "euler_a")[i % 2])
        if i % 2 == 0 or i < 8
        else text(f"question {i}", seed=i, temperature=(0.0, 0.8)[i % 4 // 2])
        for i in range(16)
    ]
    solo = [engine.submit(request, ADA).result(120) for request in requests]
    users = [User(f"user-{i}", f"User {i}") for i in range(16)]
    barrier = threading.Barrier(16)

    def submit(index):
        barrier.wait()
        return engine.submit(requests[index], users[index]).result(120)

    with ThreadPoolExecutor(16) as pool:
        together = list(pool.map(submit, range(16)))
    for alone, batched in zip(solo, together, strict=True):
        if hasattr(alone, "images"):
            assert_same_image(alone.images[0], batched.images[0])
        else:
            assert batched.text == alone.text
            assert batched.tokens == alone.tokens


def test_text_streams_tokens_and_a_short_request_does_not_wait_for_a_long_one(engine):
    long_job = engine.submit(text("tell me a long story", max_new_tokens=900), ADA)
    while not long_job.text:
        long_job._done.wait(0.001)
    short_job = engine.submit(text("hi", max_new_tokens=4), BOB)
    short = short_job.result(60)
    assert not long_job.finished, "the short job had to wait for the long one"
    pieces = list(long_job.stream())
    assert len(pieces) > 1
    assert "".join(pieces) == long_job.result(60).text
    assert short.tokens <= 4


class PrefillRecorder(DecodeBatch):
    """The real decoder, recording the prompt lengths of each prefill pass."""

    passes: list[list[int]] = []

    def add(self, sequences):
        self.passes.append([len(s.prompt_ids) for s in sequences])
        super().add(sequences)


def test_people_who_ask_together_are_read_a_pass_at_a_time_and_the_first_starts_first(
    engine_settings, recorder
):
    PrefillRecorder.passes = []
    engine = build_engine(engine_settings, image_runner=recorder, decode_batch=PrefillRecorder)
    try:
        blocker = hold_worker(engine, recorder)
        people = [User(f"p{n}", f"P{n}") for n in range(5)]
        jobs = [engine.submit(text(f"note {n}: " + "plan the launch " * 60), person)
                for n, person in enumerate(people)]  # fmt: skip
        recorder.gate.set()
        blocker.result(30)
        for job in jobs:
            job.result(120)
    finally:
        engine.shutdown()
    budget = CPU_PREFILL_TOKENS
    assert len(PrefillRecorder.passes) > 1
    assert all(len(lengths) == 1 or sum(lengths) <= budget for lengths in PrefillRecorder.passes)
    assert sorted(n for lengths in PrefillRecorder.passes for n in lengths) == sorted(
        len(job.prompt_ids) for job in jobs
    )
    assert jobs[0].first_token_at < jobs[-1].first_token_at


def test_text_stream_yields_the_whole_answer(engine):
    job = engine.submit(text("a poem please", max_new_tokens=30, temperature=0.9, seed=3), ADA)
    streamed = "".join(job.stream())
    assert streamed == job.result(30).text
    assert job.result().tokens <= 30


def test_cancel_stops_a_running_text_job_at_the_next_token(engine):
    job = engine.submit(text("go on", max_new_tokens=800), ADA)
    while len(job.text) < 3:
        job._done.wait(0.001)
    assert job.cancel(ADA) is True
    with pytest.raises(JobCancelled):
        job.result(5)
    assert job.progress.step < 800
    assert engine.submit(text("still serving?"), BOB).result(30).tokens > 0


def test_stop_strings_end_the_answer_before_them(engine):
    free = engine.submit(text("continue", max_new_tokens=40, temperature=0.9, seed=1), ADA)
    answer = free.result(30).text
    stop = answer[5:8]
    stopped = engine.submit(
        text("continue", max_new_tokens=40, temperature=0.9, seed=1, stop=(stop,)), ADA
    ).result(30)
    assert stopped.finish_reason == "stop"
    assert stop not in stopped.text and answer.startswith(stopped.text)


def test_input_longer_than_the_context_is_refused_at_submit_with_how_much_to_cut(engine):
    with pytest.raises(ValidationError, match="Cut about") as caught:
        engine.submit(text("word " * 900, max_new_tokens=500), ADA)
    assert caught.value.field == "input"
    assert engine.queue_length() == 0


# -- fake runner: order, cancel and faults ---------------------------------------------------


def test_one_users_many_jobs_do_not_hold_back_another_user_by_more_than_one_batch(
    fake_engine, recorder
):
    blocker = hold_worker(fake_engine, recorder)
    ada_jobs = [fake_engine.submit(image(f"ada {i}", width=64 + 8 * i), ADA) for i in range(6)]
    bob_job = fake_engine.submit(image("bob", width=128), BOB)
    assert fake_engine.get_job(bob_job.id, BOB).position == 2
    recorder.gate.set()
    for job in [blocker, *ada_jobs, bob_job]:
        job.result(30)
    order = [prompts[0] for prompts in recorder.calls]
    assert order.index("bob") <= order.index("ada 0") + 1


def test_compatible_jobs_of_different_users_run_in_one_call(fake_engine, recorder):
    blocker = hold_worker(fake_engine, recorder)
    jobs = [fake_engine.submit(image(f"user {u.id}"), u) for u in (ADA, BOB, CAROL)]
    jobs.append(fake_engine.submit(image("other size", width=96), ADA))
    recorder.gate.set()
    for job in [blocker, *jobs]:
        job.result(30)
    assert ["user ada", "user bob", "user carol"] in recorder.calls
    assert ["other size"] in recorder.calls


def test_batch_size_is_bounded_by_settings(fake_engine, recorder):
    blocker = hold_worker(fake_engine, recorder)
    jobs = [fake_engine.submit(image(f"p{i}", num_images=2), User(f"u{i}", "U")) for i in range(5)]
    recorder.gate.set()
    for job in [blocker, *jobs]:
        job.result(30)
    assert max(len(call) for call in recorder.calls) <= 4


def test_only_the_owner_or_an_admin_can_cancel(fake_engine, recorder):
    blocker = hold_worker(fake_engine, recorder)
    job = fake_engine.submit(image("mine"), ADA)
    with pytest.raises(Forbidden):
        job.cancel(BOB)
    assert job.status == JobStatus.QUEUED
    assert job.cancel(ADA) is True
    other = fake_engine.submit(image("admin cancels"), BOB)
    assert other.cancel(ADMIN) is True
    recorder.gate.set()
    blocker.result(30)
    assert job.status == other.status == JobStatus.CANCELLED
    assert all("mine" not in call for call in recorder.calls)


def test_cancel_in_a_shared_batch_leaves_other_users_images_alone(fake_engine, recorder):
    blocker = hold_worker(fake_engine, recorder)
    ada_job = fake_engine.submit(image("ada"), ADA)
    bob_job = fake_engine.submit(image("bob"), BOB)
    recorder.on_step_hook = lambda step, prompts: (
        step == 2 and "ada" in prompts and ada_job.cancel(ADA)
    )
    recorder.gate.set()
    blocker.result(30)
    assert len(bob_job.result(30).images) == 1
    with pytest.raises(JobCancelled):
        ada_job.result(30)
    assert ["ada", "bob"] in recorder.calls


def test_a_failing_job_fails_alone_and_the_worker_keeps_serving(fake_engine, recorder):
    recorder.fail_prompts = {"boom"}
    blocker = hold_worker(fake_engine, recorder)
    jobs = [
        fake_engine.submit(image(p), u) for p, u in (("ok 1", ADA), ("boom", BOB), ("ok 2", CAROL))
    ]
    recorder.gate.set()
    blocker.result(30)
    assert jobs[0].result(30).images and jobs[2].result(30).images
    with pytest.raises(JobFailed, match="server log"):
        jobs[1].result(30)
    assert fake_engine.submit(image("after"), BOB).result(30).images


def test_out_of_memory_batch_is_split_in_halves_before_failing(fake_engine, recorder):
    recorder.oom_above = 2
    blocker = hold_worker(fake_engine, recorder)
    jobs = [fake_engine.submit(image(f"p{i}"), User(f"u{i}", "U")) for i in range(4)]
    recorder.gate.set()
    blocker.result(30)
    assert all(job.result(30).images for job in jobs)
    assert sorted(len(call) for call in recorder.calls[1:]) == [2, 2]


def test_out_of_memory_single_job_says_what_to_try(fake_engine, recorder):
    recorder.oom_above = 0
    job = fake_engine.submit(image(), ADA)
    with pytest.raises(JobFailed, match="smaller size or fewer images"):
        job.result(30)


def test_per_user_and_global_caps_refuse_with_a_clear_message(tiny_models_dir, recorder):
    settings = Settings(
        models_dir=tiny_models_dir, device="cpu", queue_max_per_user=2, queue_max_total=3
    )
    capped = build_engine(settings, image_runner=recorder)
    try:
        blocker = hold_worker(capped, recorder)
        capped.submit(image("a1"), ADA)
        capped.submit(image("a2"), ADA)
        with pytest.raises(QueueFull, match="You already have 2 jobs waiting"):
            capped.submit(image("a3"), ADA)
        capped.submit(image("b1"), BOB)
        with pytest.raises(QueueFull, match="queue is full"):
            capped.submit(image("c1"), CAROL)
        recorder.gate.set()
        blocker.result(30)
    finally:
        recorder.gate.set()
        capped.shutdown()


def test_queued_jobs_show_position_and_own_jobs_only(fake_engine, recorder):
    blocker = hold_worker(fake_engine, recorder)
    mine = fake_engine.submit(image("ada 1", width=80), ADA)
    theirs = fake_engine.submit(image("bob 1", width=88), BOB)
    assert [job.id for job in fake_engine.jobs(ADA)] == [mine.id]
    assert {job.id for job in fake_engine.jobs(ADMIN, everyone=True)} >= {mine.id, theirs.id}
    assert (mine.position, theirs.position) == (1, 2)
    with pytest.raises(Forbidden):
        fake_engine.jobs(BOB, everyone=True)
    with pytest.raises(Forbidden):
        fake_engine.get_job(mine.id, BOB)
    recorder.gate.set()
    blocker.result(30)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (image(""), "prompt"),
        (image(width=100), "width"),
        (image(steps=0), "steps"),
        (image(scheduler="magic"), "scheduler"),
        (text("   "), "input"),
        (text(temperature=5.0), "temperature"),
    ],
)
def test_bad_requests_are_refused_at_submit_with_the_field(fake_engine, request_, field):
    with pytest.raises(ValidationError) as caught:
        fake_engine.submit(request_, ADA)
    assert caught.value.field == field


def test_a_text_model_cannot_make_images(fake_engine):
    with pytest.raises(ValidationError, match="is a text model"):
        fake_engine.submit(ImageRequest("tiny-llm", "a fox", width=64, height=64), ADA)


@pytest.fixture
def lora_engine(models_dir):
    from webapp.testmodels import make_test_lora

    make_test_lora(models_dir / "tiny-sd", models_dir / "loras" / "bold-style.safetensors")
    built = build_engine(Settings(models_dir=models_dir, device="cpu"))
    yield built
    built.shutdown()


def test_lora_changes_the_image_and_is_removed_afterwards(lora_engine):
    from webapp.engine import LoraWeight

    plain = lora_engine.submit(image(), ADA).result(60).images[0]
    styled = lora_engine.submit(image(loras=(LoraWeight("bold-style", 1.0),)), ADA).result(60)
    assert np.abs(pixels(styled.images[0]) - pixels(plain)).max() > 10
    zero = lora_engine.submit(image(loras=(LoraWeight("bold-style", 0.0),)), ADA).result(60)
    assert_same_image(plain, zero.images[0])
    assert_same_image(plain, lora_engine.submit(image(), ADA).result(60).images[0])


def test_unknown_lora_is_refused_with_what_is_installed(lora_engine):
    from webapp.engine import LoraWeight

    with pytest.raises(ValidationError, match="Available: bold-style") as caught:
        lora_engine.submit(image(loras=(LoraWeight("../../etc/passwd", 1.0),)), ADA)
    assert caught.value.field == "loras"


def test_large_images_take_more_of_a_batch(fake_engine, recorder):
    blocker = hold_worker(fake_engine, recorder)
    big = [
        fake_engine.submit(image(f"big {i}", width=1024, height=512), User(f"u{i}", "U"))
        for i in range(3)
    ]
    recorder.gate.set()
    for job in [blocker, *big]:
        job.result(30)
    assert sorted(len(call) for call in recorder.calls[1:]) == [1, 2]  # 2 units each, cap 4


def test_shutdown_cancels_running_and_waiting_jobs_promptly(engine_settings):
    engine = build_engine(engine_settings)
    running = engine.submit(text("go on", max_new_tokens=900), ADA)
    while not running.text:
        running._done.wait(0.001)
    waiting = engine.submit(image("never made"), BOB)
    engine.shutdown(timeout=10)
    assert not engine._worker.is_alive()
    assert running.status == waiting.status == JobStatus.CANCELLED


def test_a_streaming_text_job_counts_as_running_with_an_estimate(engine):
    job = engine.submit(text("go on", max_new_tokens=900), ADA)
    while len(job.text) < 3:
        job._done.wait(0.001)
    assert engine.running_count() == 1
    assert engine.get_job(job.id, ADA).eta_seconds is not None
    job.cancel(ADA)


# -- faults inside the text lane -------------------------------------------------------------


@pytest.fixture
def faulty_sampling(monkeypatch):
    """Sampling raises for requests with seed 666, as NaN scores would."""
    from webapp.backends import textgen

    real = textgen._sample

    def sample(logits, sampling, generator):
        if sampling.seed == 666:
            raise textgen.SamplingError("injected: the probabilities are NaN")
        return real(logits, sampling, generator)

    monkeypatch.setattr(textgen, "_sample", sample)


def test_a_tiny_temperature_is_greedy_and_the_job_finishes(engine):
    greedy = engine.submit(text("hello there", max_new_tokens=12), ADA).result(60)
    tiny = engine.submit(text("hello there", max_new_tokens=12, temperature=1e-45, seed=5), ADA)
    assert tiny.result(60).text == greedy.text


def test_a_sampling_fault_alone_fails_the_job_instead_of_hanging(engine, faulty_sampling):
    job = engine.submit(text("hi", temperature=0.8, seed=666), ADA)
    with pytest.raises(JobFailed, match="Writing the answer failed"):
        job.result(30)
    assert engine.running_count() == 0
    assert engine.submit(text("next one"), BOB).result(30).tokens > 0


def test_a_sampling_fault_in_a_joining_job_leaves_the_running_batch_alone(engine, faulty_sampling):
    long_job = engine.submit(text("a long story", max_new_tokens=900, temperature=0.8), BOB)
    while len(long_job.text) < 3:
        long_job._done.wait(0.001)
    joiner = engine.submit(text("hi", temperature=0.8, seed=666), ADA)
    with pytest.raises(JobFailed, match="Writing the answer failed"):
        joiner.result(30)
    assert not long_job.finished, "the other person's answer was ended by the fault"
    shown = len(long_job.text)
    long_job.wait_for_update(5)
    long_job.wait_for_update(5)
    assert len(long_job.text) > shown or long_job.status == JobStatus.DONE
    long_job.cancel(BOB)
