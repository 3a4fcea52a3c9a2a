"""The API on the app's own server, as `atelier serve` starts it: one process, one engine,
one port for the pages, the OpenAI and the AUTOMATIC1111 clients (single-user mode with
ATELIER_API_KEY; the tiny random-weight models)."""

from __future__ import annotations

import httpx
import openai
import pytest
import webuiapi

from tests.test_browser import serving

KEY = "a-test-key-for-the-served-app-0123456789"


@pytest.fixture(scope="module")
def app_with_api(tiny_models_dir, tmp_path_factory):
    with serving(tiny_models_dir, tmp_path_factory, api_key=KEY) as (url, _):
        yield url


def test_the_openai_client_chats_and_streams_through_the_apps_server(app_with_api):
    client = openai.OpenAI(base_url=app_with_api + "/v1", api_key=KEY, max_retries=0)
    assert "tiny-llm" in {model.id for model in client.models.list()}
    answer = client.chat.completions.create(
        model="tiny-llm", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, seed=1
    )
    assert answer.usage.completion_tokens == 4 and answer.choices[0].finish_reason == "length"
    chunks = list(
        client.chat.completions.create(
            model="tiny-llm",
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=4,
            seed=1,
            stream=True,
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == answer.choices[0].message.content  # the same seed, the same answer


def test_the_a1111_client_makes_a_picture_through_the_apps_server(app_with_api):
    client = webuiapi.WebUIApi(baseurl=app_with_api + "/sdapi/v1")
    client.set_auth("anyone", KEY)
    made = client.txt2img(prompt="a red kite", steps=1, width=64, height=64, seed=9)
    assert made.image.size == (64, 64) and "Seed: 9" in made.image.text["parameters"]


def test_without_the_key_the_api_refuses_and_the_pages_still_serve(app_with_api):
    refused = httpx.get(app_with_api + "/v1/models", headers={"Accept": "text/html"})
    assert refused.status_code == 401
    assert "Authorization: Bearer" in refused.json()["error"]["message"]
    assert refused.headers["X-Frame-Options"] == "DENY"  # behind the app's hardening
    a1111 = httpx.get(app_with_api + "/sdapi/v1/sd-models", auth=("x", "wrong-key-000000000000"))
    assert a1111.status_code == 401 and "not valid" in a1111.json()["detail"]
    assert httpx.get(app_with_api + "/_stcore/health").status_code == 200


def test_a_stop_sequence_ends_the_answer_before_it(app_with_api):
    client = openai.OpenAI(base_url=app_with_api + "/v1", api_key=KEY, max_retries=0)
    ask = {"model": "tiny-llm", "messages": [{"role": "user", "content": "Go on"}],
           "max_tokens": 16, "temperature": 0}  # fmt: skip
    whole = client.chat.completions.create(**ask).choices[0].message.content
    stop = whole[len(whole) // 2 :][:3]
    assert stop.strip(), whole
    cut = client.chat.completions.create(**ask, stop=[stop]).choices[0]
    assert cut.message.content == whole[: whole.index(stop)]
    assert cut.finish_reason == "stop"
