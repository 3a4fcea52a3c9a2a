"""The AUTOMATIC1111-compatible API, driven by the `webuiapi` client against a real HTTP
server: the page's pixels and recipe for the same settings, the model chosen as A1111
clients choose it, img2img with a mask, features Atelier lacks refused by name, progress
and interrupt for the caller's own jobs only."""

from __future__ import annotations

import base64
import io
import threading
import time

import httpx
import numpy as np
import pytest
import webuiapi
from PIL import Image, ImageDraw

from tests.api_server import served_api
from tests.fakes import SlowImages
from webapp.engine import JobStatus
from webapp.services.images import ImageForm


@pytest.fixture(scope="module")
def a1111(tiny_models_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("a1111-data")
    with served_api(tiny_models_dir, data, people=("ada", "bob", "cai")) as served:
        yield served


def webui(api, login="bob", password=None) -> webuiapi.WebUIApi:
    client = webuiapi.WebUIApi(baseurl=api.url + "/sdapi/v1")
    client.set_auth(login, password or api.keys[login])
    return client


def pixels(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture.convert("RGB"))


def test_txt2img_makes_the_pages_pixels_and_recipe_for_the_same_settings(a1111):
    made = webui(a1111).txt2img(
        prompt="a lighthouse at dusk", seed=42, steps=2, cfg_scale=6, width=64, height=64,
        sampler_name="Euler a", override_settings={"sd_model_checkpoint": "tiny-sd"},
    )  # fmt: skip
    images = a1111.services.images
    form = ImageForm(
        prompt="a lighthouse at dusk", model="tiny-sd", seed=42, steps=2, guidance=6,
        width=64, height=64, scheduler="euler_a", negative_prompt="",
    )  # fmt: skip
    bob = a1111.people["bob"]
    [on_the_page] = images.finish(images.generate(form, bob), bob, 120)
    page_picture = Image.open(on_the_page.path)
    assert np.array_equal(pixels(made.image), pixels(page_picture))
    assert made.image.text["parameters"] == page_picture.text["parameters"]
    assert made.info["all_seeds"] == [42]
    assert made.info["infotexts"] == [on_the_page.parameters]


def test_a_seed_of_minus_one_is_a_random_seed_reported_back(a1111):
    made = webui(a1111).txt2img(prompt="a boat", seed=-1, steps=1, width=64, height=64)
    assert made.info["seed"] >= 0
    assert f"Seed: {made.info['seed']}" in made.image.text["parameters"]


def test_the_model_is_chosen_as_a1111_clients_choose_it(a1111):
    client = webui(a1111, "cai")
    assert client.util_get_model_names() == ["tiny-sd"]
    client.util_set_model("tiny-sd")
    assert client.util_get_current_model() == "tiny-sd"
    with pytest.raises(RuntimeError) as unknown:
        client.txt2img(prompt="x", steps=1, override_settings={"sd_model_checkpoint": "sdxl"})
    assert unknown.value.args[0] == 404
    assert "No model named 'sdxl'" in unknown.value.args[1]
    refused = httpx.post(
        a1111.url + "/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 2},
        auth=("cai", a1111.keys["cai"]),
    )  # fmt: skip
    assert refused.status_code == 400
    assert "CLIP_stop_at_last_layers" in refused.json()["detail"]


def test_img2img_changes_only_the_masked_part_of_a_picture(a1111):
    picture = Image.new("RGB", (64, 64), (200, 40, 40))
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 47, 47), fill=255)
    made = webui(a1111).img2img(
        images=[picture], mask_image=mask, mask_blur=0, prompt="a blue circle", seed=3,
        steps=2, width=64, height=64, denoising_strength=0.9, inpainting_fill=1,
    )  # fmt: skip
    assert made.image.size == (64, 64)
    assert made.info["denoising_strength"] == 0.9
    assert "Denoising strength: 0.9" in made.image.text["parameters"]


@pytest.mark.parametrize(
    "asked, named",
    [
        ({"enable_hr": True}, "hires fix"),
        ({"restore_faces": True}, "face restoration"),
        ({"script_name": "x/y/z plot"}, "scripts"),
        ({"alwayson_scripts": {"ControlNet": {"args": [{"enabled": True}]}}}, "'ControlNet'"),
        ({"styles": ["a", "b"]}, "at most 1"),
        ({"sampler_name": "UniPC"}, "Sampler 'UniPC' is not available"),
        ({"width": 65}, "multiple of 8"),
        ({"batch_size": 3, "n_iter": 2}, "Choose 1 to 4 images"),
        ({"steps": "many"}, "steps must be a whole number"),
    ],
)
def test_what_atelier_cannot_do_is_refused_by_name(a1111, asked, named):
    body = {"prompt": "a cat", "steps": 1, "width": 64, "height": 64, **asked}
    answer = httpx.post(a1111.url + "/sdapi/v1/txt2img", json=body, auth=("bob", a1111.keys["bob"]))
    assert answer.status_code == 400
    assert named in answer.json()["detail"]


def test_bad_pictures_are_refused_and_the_server_keeps_serving(tiny_models_dir, tmp_path):
    with served_api(tiny_models_dir, tmp_path / "data", upload_max_mb=1) as small:
        url, auth = small.url + "/sdapi/v1/img2img", ("bob", small.keys["bob"])
        body = {"prompt": "x", "steps": 1}
        for picture, says in [
            ("%%% not base64", "not valid base64"),
            (base64.b64encode(b"just some text").decode(), "picture"),
            (base64.b64encode(b"\x89PNG" + bytes(1_200_000)).decode(), "the most is 1 MB"),
        ]:
            answer = httpx.post(url, json={**body, "init_images": [picture]}, auth=auth)
            assert answer.status_code == 400, answer.text
            assert says in answer.json()["detail"]
        assert webui(small).util_get_model_names() == ["tiny-sd"]


def test_a_wrong_password_is_refused_as_a1111_refuses_it(a1111):
    with pytest.raises(RuntimeError) as refused:
        webui(a1111, "bob", password="atl_not-the-key").txt2img(prompt="x", steps=1)
    assert refused.value.args[0] == 401
    assert "not valid" in refused.value.args[1]


@pytest.fixture
def slow(tiny_models_dir, tmp_path):
    runner = SlowImages(steps=150, step_seconds=0.05)
    with served_api(
        tiny_models_dir, tmp_path / "data", people=("ada", "bob", "cai"), image_runner=runner
    ) as served:
        yield served


def test_progress_and_interrupt_reach_only_the_callers_own_job(slow):
    bob, cai = webui(slow, "bob"), webui(slow, "cai")
    answers = []
    making = threading.Thread(
        target=lambda: answers.append(bob.txt2img(prompt="slow", steps=150, width=64, height=64))
    )
    making.start()
    deadline = time.monotonic() + 30
    while (progress := bob.get_progress())["state"]["sampling_step"] < 10:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert 0 < progress["progress"] < 1 and progress["state"]["sampling_steps"] == 150
    assert Image.open(io.BytesIO(base64.b64decode(progress["current_image"])))
    assert cai.get_progress()["state"]["job"] == ""  # nothing of Bob's
    cai.interrupt()
    [job] = slow.services.engine.jobs(slow.people["bob"])
    assert job.status == JobStatus.RUNNING
    bob.interrupt()
    making.join(30)
    assert job.status == JobStatus.CANCELLED
    assert answers[0].images == [] and answers[0].info["interrupted"]
