"""Text models served by OpenAI-compatible servers: Atelier keeps the queue and streams."""

from __future__ import annotations

import time

import pytest

from tests.openai_fake import FakeTextServer
from webapp.engine import ChatMessage, JobFailed, JobStatus, TextRequest
from webapp.engine.factory import build_engine
from webapp.errors import ModelLoadError, ValidationError
from webapp.services.system import text_server_checks
from webapp.settings import Settings
from webapp.text_servers import parse_text_servers
from webapp.users import User

ADA, BOB = User("ada", "Ada"), User("bob", "Bob")


def request(words="hello there", **options) -> TextRequest:
    options = {"max_new_tokens": 30, "temperature": 0.0, **options}
    return TextRequest("remote", (ChatMessage("user", words),), **options)


@pytest.fixture
def served(tiny_models_dir):
    """An engine whose model "remote" is served by the given fake servers."""
    made = []

    def serve(*servers: FakeTextServer, concurrency: int = 8):
        config = [
            {
                "model": "remote",
                "served_model": "served",
                "max_concurrency": concurrency,
                "urls": [s.url for s in servers],
            }
        ]
        settings = Settings(
            models_dir=tiny_models_dir, device="cpu", text_servers=parse_text_servers(config)
        )
        made.append(build_engine(settings))
        return made[-1]

    yield serve
    for engine in made:
        engine.shutdown()


def test_a_served_model_is_listed_and_its_answer_streams(served):
    with FakeTextServer(words=12) as server:
        engine = served(server)
        assert "remote" in [entry.name for entry in engine.registry().of_kind("text")]
        job = engine.submit(request(), ADA)
        pieces = list(job.stream())
        result = job.result(30)
    assert len(pieces) > 1 and "".join(pieces) == result.text
    assert result.text.startswith("w0 w1") and result.tokens == 12
    assert result.finish_reason == "eos"
    assert server.requests[-1]["model"] == "served" and server.requests[-1]["stream"] is True


def test_the_context_is_checked_with_the_servers_own_count(served):
    with FakeTextServer() as server:
        engine = served(server)
        with pytest.raises(ValidationError, match="reads at most 512") as caught:
            engine.submit(request("word " * 600), ADA)
    assert caught.value.field == "input"


def test_a_chat_that_surely_fits_is_sent_at_once_without_asking_for_a_count(served):
    with FakeTextServer(words=5) as server:
        engine = served(server)
        result = engine.submit(request("a short question"), ADA).result(30)
        assert "/tokenize" not in server.paths[1:]  # the first asked the context length
        assert result.prompt_tokens == 3 + 4  # the server's own count
        engine.submit(request("word " * 80), ADA).result(30)  # may not fit: counted first
        assert server.paths[-2:] == ["/tokenize", "/v1/chat/completions"]


def test_a_chat_the_server_finds_too_long_fails_with_the_same_advice(served):
    with FakeTextServer() as server:
        server.tokens_per_word = 200  # a short chat the server finds too long
        engine = served(server)
        job = engine.submit(request("three short words"), ADA)
        with pytest.raises(JobFailed):
            job.result(30)
    assert "too long for remote" in job.error and "reads at most 512 tokens" in job.error
    assert "Cut some of the input" in job.error


def test_answers_one_after_another_reuse_one_connection(served):
    with FakeTextServer(words=5) as server:
        engine = served(server)
        for _ in range(3):
            engine.submit(request(), ADA).result(30)
    assert len(server.connections) == 1


def test_cancel_closes_the_stream_and_the_server_stops(served):
    with FakeTextServer(words=400, word_seconds=0.02) as server:
        engine = served(server)
        job = engine.submit(request(max_new_tokens=400), ADA)
        while len(job.text) < 10:
            job.wait_for_update(5)
        job.cancel(ADA)
        deadline = time.monotonic() + 10
        while server.open_streams and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.open_streams == 0
    assert job.status == JobStatus.CANCELLED


def test_each_replica_is_sent_no_more_than_its_share_and_people_take_turns(served):
    with FakeTextServer(words=30, word_seconds=0.02) as server:
        engine = served(server, concurrency=1)
        ada_jobs = [engine.submit(request(f"ada {i}"), ADA) for i in range(3)]
        bob_job = engine.submit(request("bob"), BOB)
        for job in [*ada_jobs, bob_job]:
            job.result(30)
    order = [r["messages"][-1]["content"] for r in server.requests if "stream" in r]
    assert order.index("bob") < order.index("ada 2")  # bob did not wait behind all of ada's


def test_a_replica_that_breaks_off_hands_the_answer_to_another_from_the_start(served):
    with FakeTextServer(words=20) as failing, FakeTextServer(words=20) as healthy:
        failing.break_after = 5
        engine = served(failing, healthy)
        jobs = [engine.submit(request(f"q{i}"), User(f"u{i}", "U")) for i in range(4)]
        results = [job.result(30) for job in jobs]
    assert all(r.text == " ".join(f"w{i}" for i in range(20)) for r in results)  # not twice


def test_no_server_answering_fails_the_job_clearly(served):
    with FakeTextServer(words=20) as server:
        server.break_after = 2
        engine = served(server)
        job = engine.submit(request(), ADA)
        with pytest.raises(JobFailed, match="stopped answering"):
            job.result(30)
        then = engine.submit(request(), BOB)  # the server now rests: told at once, not queued
        with pytest.raises(JobFailed, match="No text server for remote is answering"):
            then.result(5)


def test_a_model_the_server_does_not_serve_is_refused_at_submit(served, tiny_models_dir):
    with FakeTextServer(model="something-else") as server:
        engine = served(server)
        with pytest.raises(ModelLoadError, match="refused to count tokens"):
            engine.submit(request(), ADA)


def test_a_server_that_does_not_answer_at_all_says_so_at_submit(served):
    server = FakeTextServer()
    with server:
        url_engine = served(server)
    with pytest.raises(ModelLoadError, match="No text server for 'remote' is answering"):
        url_engine.submit(request(), ADA)


def test_the_doctor_checks_each_replica_answers_and_serves_the_model():
    with (
        FakeTextServer() as good,
        FakeTextServer(model="something-else") as wrong,
        FakeTextServer() as html,
    ):
        html.other_protocol = True
        gone = "http://127.0.0.1:8648/v1"  # a port of this project's range; nothing there
        config = [{"model": "remote", "served_model": "served",
                   "urls": [good.url, wrong.url, html.url, gone]}]  # fmt: skip
        settings = Settings(text_servers=parse_text_servers(config))
        checks = {check.name.rsplit(" at ", 1)[1]: check for check in text_server_checks(settings)}
    assert checks[good.url].ok and "serves served" in checks[good.url].detail
    assert not checks[wrong.url].ok and "something-else" in checks[wrong.url].detail
    assert not checks[html.url].ok and "does not speak the OpenAI API" in checks[html.url].detail
    assert not checks[gone].ok and "does not answer" in checks[gone].detail
