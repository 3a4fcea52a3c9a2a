"""The OpenAI-compatible API, driven by the official `openai` client against a real HTTP
server: models, chat (whole and streamed), images, embeddings, errors as the client's own
exception types, keys, the audit log, and clients that go away."""

from __future__ import annotations

import base64
import io
import threading
import time

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from tests.api_server import served_api
from tests.fakes import CannedDecodeBatch, Recorder
from webapp.engine import ChatMessage, JobStatus
from webapp.services.audit import AuditFilter

USER = [{"role": "user", "content": "Say something."}]


class PacedDecodeBatch(CannedDecodeBatch):
    """The canned decoder, a word every `pause` seconds (0: at once)."""

    pause = 0.0

    def step(self):
        time.sleep(type(self).pause)
        super().step()


@pytest.fixture(scope="module")
def api(tiny_models_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("api-data")
    with served_api(
        tiny_models_dir, data, people=("ada", "bob", "cai"), decode_batch=PacedDecodeBatch
    ) as served:
        yield served


@pytest.fixture(autouse=True)
def canned():
    PacedDecodeBatch.reset()
    PacedDecodeBatch.pause = 0.0
    yield
    PacedDecodeBatch.reset()
    PacedDecodeBatch.pause = 0.0


def client(api, login="bob", key=None) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=api.url + "/v1", api_key=key or api.keys[login], max_retries=0, timeout=300
    )


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- what a client sees when it works ----------------------------------------------------


def test_the_client_lists_the_installed_models(api):
    listed = {model.id: model for model in client(api).models.list()}
    assert {"tiny-sd", "tiny-llm", "tiny-embed"} <= set(listed)
    assert listed["tiny-llm"].owned_by == "atelier"
    assert client(api).models.retrieve("tiny-llm").id == "tiny-llm"


def test_a_chat_completion_answers_with_its_usage(api):
    PacedDecodeBatch.replies = ["Hello there, friend."]
    answer = client(api).chat.completions.create(
        model="tiny-llm", messages=USER, max_tokens=20, temperature=0.2, seed=7
    )
    assert answer.choices[0].message.content == "Hello there, friend."
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.completion_tokens == 3
    assert answer.usage.prompt_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 3


def test_an_answer_cut_at_max_tokens_says_length(api):
    PacedDecodeBatch.replies = ["one two three four five"]
    answer = client(api).chat.completions.create(model="tiny-llm", messages=USER, max_tokens=2)
    assert answer.choices[0].message.content == "one two"
    assert answer.choices[0].finish_reason == "length"


def test_a_streamed_answer_arrives_in_chunks_and_ends_with_the_usage(api):
    PacedDecodeBatch.replies = ["a b c d e f"]
    PacedDecodeBatch.pause = 0.02
    chunks = list(
        client(api).chat.completions.create(
            model="tiny-llm",
            messages=USER,
            max_tokens=50,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta]
    assert "".join(d or "" for d in deltas) == "a b c d e f"
    assert len([d for d in deltas if d]) > 2  # streamed, not in one piece
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 6
    assert len({c.id for c in chunks}) == 1


def test_the_conversation_reaches_the_model_as_sent(api):
    PacedDecodeBatch.replies = ["ok"]
    client(api).chat.completions.create(
        model="tiny-llm",
        messages=[
            {"role": "developer", "content": "Answer briefly."},
            {"role": "user", "content": [{"type": "text", "text": "Name a colour."}]},
        ],
    )
    asked = api.services.engine.jobs(api.people["bob"])[0].request
    assert asked.messages == (
        ChatMessage("system", "Answer briefly."),
        ChatMessage("user", "Name a colour."),
    )


def test_an_image_comes_back_as_a_png_with_its_recipe(api):
    made = client(api).images.generate(
        model="tiny-sd", prompt="a red square", size="64x64", n=2, quality="low",
        response_format="b64_json",
    )  # fmt: skip
    assert len(made.data) == 2
    picture = Image.open(io.BytesIO(base64.b64decode(made.data[0].b64_json)))
    assert picture.size == (64, 64)
    assert "a red square" in picture.text["parameters"]
    assert "Model: tiny-sd" in picture.text["parameters"]


def test_embeddings_are_one_unit_vector_per_text(api):
    made = client(api).embeddings.create(model="tiny-embed", input=["a cat", "a dog", "a car"])
    vectors = np.array([item.embedding for item in made.data])
    assert vectors.shape[0] == 3 and vectors.shape[1] > 1
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert made.usage.prompt_tokens > 0


# -- refusals, as the client's own exceptions -------------------------------------------


def test_a_missing_or_wrong_key_is_an_authentication_error(api):
    with pytest.raises(openai.AuthenticationError, match="not valid"):
        client(api, key="atl_wrong").models.list()
    answer = httpx.get(api.url + "/v1/models")
    assert answer.status_code == 401
    assert "Authorization: Bearer" in answer.json()["error"]["message"]


def test_a_revoked_key_is_refused(api):
    keys = api.services.team.api_keys
    made = keys.create(api.people["cai"], "to revoke")
    assert client(api, key=made.key).models.list()
    keys.revoke(api.people["cai"], made.info.id)
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        client(api, key=made.key).models.list()


def test_a_disabled_persons_key_is_refused(api, tmp_path, tiny_models_dir):
    with served_api(tiny_models_dir, tmp_path / "data", people=("ada", "dan")) as own:
        own.services.team.accounts.set_disabled(own.people["ada"], "dan", True)
        with pytest.raises(openai.PermissionDeniedError, match="disabled"):
            client(own, "dan").models.list()


def test_bad_values_are_bad_requests_that_say_what_to_fix(api):
    chat = client(api).chat.completions
    with pytest.raises(openai.BadRequestError, match="Temperature 3.0 must be between 0 and 2"):
        chat.create(model="tiny-llm", messages=USER, temperature=3)
    with pytest.raises(openai.BadRequestError, match="max_tokens must be a whole number"):
        chat.create(model="tiny-llm", messages=USER, extra_body={"max_tokens": "lots"})
    with pytest.raises(openai.BadRequestError, match="n = 1"):
        chat.create(model="tiny-llm", messages=USER, n=2)
    with pytest.raises(openai.BadRequestError, match="image model; choose a text model"):
        chat.create(model="tiny-sd", messages=USER)
    with pytest.raises(openai.BadRequestError, match="role 'tool'"):
        chat.create(model="tiny-llm", messages=[{"role": "tool", "content": "x"}])
    with pytest.raises(openai.NotFoundError, match="No model named 'gpt-4o'"):
        chat.create(model="gpt-4o", messages=USER)


def test_image_requests_are_checked_as_the_page_checks_them(api):
    images = client(api).images
    with pytest.raises(openai.BadRequestError, match="multiple of 8"):
        images.generate(model="tiny-sd", prompt="a cat", size="60x64")
    with pytest.raises(openai.BadRequestError, match="Choose 1 to 4 images"):
        images.generate(model="tiny-sd", prompt="a cat", size="64x64", n=5)
    with pytest.raises(openai.BadRequestError, match="b64_json"):
        images.generate(model="tiny-sd", prompt="a cat", response_format="url")


def test_malformed_and_oversized_bodies_are_refused_in_openais_shape(api):
    headers = {"Authorization": f"Bearer {api.keys['bob']}", "Content-Type": "application/json"}
    url = api.url + "/v1/chat/completions"
    broken = httpx.post(url, content=b"{not json", headers=headers)
    assert broken.status_code == 400
    assert broken.json()["error"]["message"].startswith("The body is not valid JSON")
    huge = httpx.post(url, content=b"x" * (9 * 2**20), headers=headers)
    assert huge.status_code == 413
    assert "Send less in one request" in huge.json()["error"]["message"]
    assert "Traceback" not in broken.text + huge.text
    form = httpx.post(
        url, data={"model": "tiny-llm"}, headers={"Authorization": headers["Authorization"]}
    )
    assert form.status_code == 400  # what a page of another site could send
    assert "Content-Type: application/json" in form.json()["error"]["message"]
    assert client(api).models.list()  # and the server keeps serving


# -- the same rules as the pages ------------------------------------------------------------


def test_api_jobs_are_audited_as_the_apis(api):
    PacedDecodeBatch.replies = ["audited"]
    client(api).chat.completions.create(model="tiny-llm", messages=USER)
    audit = api.services.audit
    wait_until(lambda: audit.query(api.people["ada"], AuditFilter(actor="bob", kind="text")).items)
    entry = audit.query(api.people["ada"], AuditFilter(actor="bob", kind="text")).items[0]
    assert (entry.client, entry.outcome, entry.model) == ("api", "ok", "tiny-llm")


def test_a_streaming_client_that_vanishes_has_its_job_cancelled(api):
    PacedDecodeBatch.replies = [" ".join(["word"] * 400)]
    PacedDecodeBatch.pause = 0.05
    engine = api.services.engine
    body = {"model": "tiny-llm", "messages": USER, "max_tokens": 500, "stream": True}
    headers = {"Authorization": f"Bearer {api.keys['cai']}"}
    with httpx.stream("POST", api.url + "/v1/chat/completions", json=body, headers=headers) as r:
        lines = r.iter_lines()
        assert next(line for line in lines if "word" in line)
    # the connection is closed: the job stops and leaves the batch
    cai = api.people["cai"]
    wait_until(lambda: engine.jobs(cai)[0].status == JobStatus.CANCELLED)
    job = engine.jobs(cai)[0]
    assert job.client == "api" and job.cancelled_by == cai.display_name
    assert len(job.text.split()) < 400
    wait_until(lambda: engine.running_count() == 0)


def test_a_waiting_client_that_gives_up_has_its_job_cancelled(api):
    PacedDecodeBatch.replies = [" ".join(["word"] * 400)]
    PacedDecodeBatch.pause = 0.05
    with pytest.raises(openai.APITimeoutError):
        openai.OpenAI(
            base_url=api.url + "/v1", api_key=api.keys["cai"], max_retries=0, timeout=0.5
        ).chat.completions.create(model="tiny-llm", messages=USER, max_tokens=500)
    cai = api.people["cai"]
    wait_until(lambda: api.services.engine.jobs(cai)[0].status == JobStatus.CANCELLED)


def test_a_full_queue_answers_429_with_retry_after(tiny_models_dir, tmp_path):
    blocked = Recorder()
    blocked.gate.clear()
    with served_api(
        tiny_models_dir, tmp_path / "data", image_runner=blocked, queue_max_per_user=1
    ) as own:
        answers = []

        def make_one():
            try:
                answers.append(
                    client(own).images.generate(model="tiny-sd", prompt="x", size="64x64")
                )
            except openai.APIError as error:
                answers.append(error)

        first = threading.Thread(target=make_one)
        first.start()
        try:
            assert blocked.in_first_call.wait(20)  # running: the queue is empty again
            second = threading.Thread(target=make_one)
            second.start()
            wait_until(lambda: own.services.engine.queue_length() == 1)
            with pytest.raises(openai.RateLimitError) as refused:
                client(own).images.generate(model="tiny-sd", prompt="x", size="64x64")
            retry = int(refused.value.response.headers["Retry-After"])
            assert retry >= 1
            assert "1 jobs waiting" in refused.value.message
            assert f"Try again in about {retry} s" in refused.value.message
        finally:
            blocked.gate.set()
        first.join(30)
        second.join(30)
    assert all(not isinstance(answer, Exception) for answer in answers)


def test_a_used_up_quota_answers_429_with_when_to_try_again(tiny_models_dir, tmp_path):
    with served_api(
        tiny_models_dir, tmp_path / "data", decode_batch=PacedDecodeBatch, quota_jobs_per_hour=1
    ) as own:
        client(own).chat.completions.create(model="tiny-llm", messages=USER, max_tokens=4)
        with pytest.raises(openai.RateLimitError) as refused:
            client(own).chat.completions.create(model="tiny-llm", messages=USER, max_tokens=4)
    retry = int(refused.value.response.headers["Retry-After"])
    assert 3000 < retry <= 3600  # the hour since the first job
    assert "1 job" in refused.value.message
