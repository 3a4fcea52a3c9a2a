"""Pages people trust (issue 11), through AppTest from app.py: plain words for members,
errors that name their field by its label, the upload limit, "Use these settings", honest
answers, and page state in the address that a reload finds again."""

from __future__ import annotations

import logging
import re

from streamlit.testing.v1 import AppTest

from tests.test_pages import APP, as_shown, run_app, until_done
from webapp.engine import ImageRequest
from webapp.job_words import progress_text, waiting_text
from webapp.services.images import ImageForm
from webapp.ui.resources import get_services
from webapp.users import User, local_user

STUDIO, TEXT, QUEUE = "app_pages/image_studio.py", "app_pages/text_tools.py", "app_pages/queue.py"
ADMIN_DETAILS = re.compile(r"\b(cpu|cuda|float32|bfloat16|llama|sd15|\d+(\.\d+)? [KMG]?B)\b")


def main_text(app: AppTest) -> str:
    """Everything the page itself says (the frame's sidebar left out)."""
    main = app.main
    parts = [
        str(element.value)
        for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning")
        for element in getattr(main, kind)
    ]
    parts += [str(element.label) for element in main.get("selectbox") + main.get("button")]
    for box in main.get("selectbox"):
        parts += [str(option) for option in box.options]
    return as_shown("\n".join(parts))


def open_page(app: AppTest, page: str, **params: str) -> AppTest:
    for key, value in params.items():
        app.query_params[key] = value
    app.switch_page(page).run()
    assert not app.exception, app.exception
    return app


def test_a_member_sees_models_by_name_and_use_but_no_device_memory_sizes_or_ids(
    app_env, tiny_models_dir
):
    app_env(tiny_models_dir, local_user_is_admin="false")
    home = run_app()
    said = main_text(home)
    assert "Tiny LLM (test model)" in said and "writes gibberish" in said
    assert not ADMIN_DETAILS.search(said), ADMIN_DETAILS.search(said)
    assert "tiny-llm" not in said and "Admins:" not in said

    member = User("local", "Local user", False)
    get_services().text.run_tool("summarise", {"text": "Hi."}, member, max_new_tokens=2)
    for page, params in ((TEXT, {"tool": "summarise"}), (STUDIO, {}), (QUEUE, {})):
        said = main_text(open_page(run_app(), page, **params))
        assert "Tiny" in said, page
        assert not ADMIN_DETAILS.search(said), (page, ADMIN_DETAILS.search(said))
        assert "tiny-llm" not in said and "tiny-sd" not in said, page


def test_the_queue_names_the_tool_not_its_prompt(app_env, tiny_models_dir):
    app_env(tiny_models_dir)
    me = local_user(get_services().settings)
    get_services().text.run_tool("rewrite-in-voice", {"text": "Our new cup."}, me, max_new_tokens=2)
    queue = open_page(run_app(), QUEUE)
    shown = [t.value for t in queue.text]
    assert "Rewrite in a brand voice" in shown
    assert not any("Rewrite the following text" in text for text in shown)


def test_without_an_image_model_nobody_is_promised_a_feature_that_does_not_exist(
    app_env, models_dir
):
    import shutil

    shutil.rmtree(models_dir / "tiny-sd")
    for admin in ("true", "false"):
        app_env(models_dir, local_user_is_admin=admin)
        for app in (run_app(), open_page(run_app(), STUDIO)):
            said = main_text(app)
            assert "No image model is installed yet" in said
            assert "one-click" not in said.lower() and "model manager" not in said.lower()
            assert ("Ask your Atelier admin" in said) is (admin == "false")
            assert ("model_index.json" in said) is (admin == "true")


class FakeJob:
    def __init__(self, kind, step=0, total=30, eta=None, text="", position=None):
        self.kind, self.eta_seconds, self.text, self.position = kind, eta, text, position
        self.progress = type("P", (), {"step": step, "total": total})()
        self.request = type("R", (), {"steps": total, "max_new_tokens": 256})()


def test_progress_is_said_in_words_with_no_estimate_until_there_is_one():
    assert progress_text(FakeJob("image", step=0)) == "Starting…"
    assert progress_text(FakeJob("image", step=3)) == "Step 3 of 30"
    assert progress_text(FakeJob("image", step=3, eta=12.2)) == "Step 3 of 30 · about 12 s left"
    assert progress_text(FakeJob("text", text="")) == "Starting…"
    assert progress_text(FakeJob("text", text="Dear Anna, thanks")) == "Writing: 3 words so far"
    assert waiting_text(FakeJob("image", position=2)) == "Waiting: number 2 in line"
    for job in (FakeJob("image"), FakeJob("image", step=5), FakeJob("text", text="x")):
        assert "estimating" not in progress_text(job) and "Token" not in progress_text(job)


def test_image_studio_errors_name_their_field_by_its_label(app_env, tiny_models_dir):
    app_env(tiny_models_dir)
    app = open_page(run_app(), STUDIO)
    app.button(key="FormSubmitter:image-form-Generate").click().run()
    assert [e.value for e in app.error] == ["Fill in “What should the picture show?”."]

    app.session_state["image_sent"] = b"%PDF-1.7 not a picture"  # as if sent to change
    app.text_area(key="img-prompt").input("a fox")
    app.button(key="FormSubmitter:image-form-Generate").click().run()
    errors = [e.value for e in app.error]
    assert any(e.startswith("**Picture to change") and "PNG, JPEG or WebP" in e for e in errors)

    app.session_state["image_sent"] = None
    app.text_input(key="img-seed").input("lucky")
    app.button(key="FormSubmitter:image-form-Generate").click().run()
    assert app.error[0].value.startswith("**Seed:** The seed must be a whole number")


def test_text_tool_errors_name_their_field_by_its_label(app_env, tiny_models_dir):
    app_env(tiny_models_dir)
    app = open_page(run_app(), TEXT, tool="summarise")
    app.text_area(key="field-summarise-text").input("word " * 3000)
    app.button(key="FormSubmitter:form-summarise-Run").click().run()
    (too_long,) = [e.value for e in app.error]
    assert too_long.startswith("**Text to summarise:** This is too long")
    app.text_area(key="field-summarise-text").input("fine")
    app.text_input(key="seed-summarise").input("lucky")
    app.button(key="FormSubmitter:form-summarise-Run").click().run()
    assert app.error[0].value.startswith("**Seed (under Advanced):**")


def test_the_uploaders_say_the_settings_limit_and_take_any_file_to_check_it(
    app_env, tiny_models_dir
):
    app_env(tiny_models_dir, upload_max_mb="7")
    app = open_page(run_app(), STUDIO)
    (picture,) = app.get("file_uploader")
    assert picture.proto.max_upload_size_mb == 7
    # No type filter in the browser: a PDF reaches Atelier, which says why in its own words.
    assert list(picture.proto.type) == []
    assert "PNG, JPEG or WebP" in picture.proto.label


def test_use_these_settings_brings_back_the_style_and_the_persons_own_words(
    app_env, tiny_models_dir, caplog, monkeypatch
):
    from streamlit.elements.lib import policies

    app_env(tiny_models_dir)
    services = get_services()
    me = local_user(services.settings)
    form = ImageForm("a red kite", model="tiny-sd", style="cinematic", seed=5, quality="Fast")
    services.images.finish(services.images.generate(form, me), me, timeout=60)
    monkeypatch.setattr(policies, "_shown_default_value_warning", False)
    monkeypatch.setattr(policies._LOGGER, "propagate", True)

    app = open_page(run_app(), STUDIO)
    with caplog.at_level(logging.WARNING):
        next(b for b in app.button if b.label == "Use these settings").click().run()
    assert not app.exception, app.exception
    assert app.selectbox(key="img-style").value == "cinematic"
    assert app.text_area(key="img-prompt").value == "a red kite"
    assert app.text_input(key="img-seed").value == "5"
    assert "created with a default value" not in caplog.text


def test_a_long_prompt_gets_one_short_line_and_its_left_out_words_behind_a_click(
    app_env, tiny_models_dir
):
    app_env(tiny_models_dir)
    app = open_page(run_app(), STUDIO)
    app.text_area(key="img-prompt").input("the morning studio photo of a mug " * 400)
    app.button(key="FormSubmitter:image-form-Generate").click().run()
    until_done(app)
    notes = [c.value for c in app.caption if "words are used" in c.value]
    note = "Only about the first 60 words are used; shorten it for best results."
    assert notes == [f":material/content_cut: {note}"]
    assert not app.warning  # no box of words
    (left_out,) = [e for e in app.expander if e.label == "Words left out"]
    assert left_out.text[0].value.startswith(
        ("the ", "morning ", "studio ", "photo ", "of ", "a ", "mug ")
    )


def test_rewrite_in_a_brand_voice_starts_with_a_voice_chosen(app_env, tiny_models_dir):
    app_env(tiny_models_dir)
    app = open_page(run_app(), TEXT, tool="rewrite-in-voice")
    voice = app.selectbox(key="voice-rewrite-in-voice")
    assert voice.value is not None and None not in voice.options
    chat = open_page(run_app(), TEXT, tool="chat").selectbox(key="voice-chat")
    assert chat.value is None  # a chat needs no voice


def test_a_cut_answer_says_so_offers_continue_and_a_demo_model_says_it_may_be_wrong(
    app_env, tiny_models_dir
):
    app_env(tiny_models_dir)
    app = open_page(run_app(), TEXT, tool="summarise")
    app.text_area(key="field-summarise-text").input("Anna books the room; Ben sends the agenda.")
    app.number_input(key="max-tokens-summarise-tiny-llm-Precise").set_value(3)
    app.button(key="FormSubmitter:form-summarise-Run").click().run()
    until_done(app)
    assert any(w.value.startswith("Cut short") for w in app.warning)
    assert any("small demo model" in c.value for c in app.caption)
    cut = app.code[0].value
    next(b for b in app.button if b.label == "Continue").click().run()
    until_done(app)
    assert app.code[0].value.startswith(cut.rstrip()) and len(app.code[0].value) > len(cut)


def test_a_reloaded_text_tool_finds_its_run_and_its_form_again(app_env, tiny_models_dir):
    app_env(tiny_models_dir)
    app = open_page(run_app(), TEXT, tool="summarise")
    app.text_area(key="field-summarise-text").input("Anna books the room.")
    app.button(key="FormSubmitter:form-summarise-Run").click().run()
    until_done(app)
    address = dict(app.query_params)
    assert address["tool"] == ["summarise"] or address["tool"] == "summarise"
    answer = app.code[0].value

    reloaded = AppTest.from_file(APP, default_timeout=60)  # a new browser session
    for key, value in address.items():
        reloaded.query_params[key] = value[0] if isinstance(value, list) else value
    reloaded.run()
    reloaded.switch_page(TEXT).run()
    assert reloaded.header[0].value.endswith("Summarise")
    assert reloaded.text_area(key="field-summarise-text").value == "Anna books the room."
    assert reloaded.code[0].value == answer


def test_a_studio_opened_again_follows_the_persons_running_job(app_env, tiny_models_dir):
    from tests.fakes import Recorder
    from webapp.backends import diffusion

    app_env(tiny_models_dir)
    held = Recorder()
    held.gate.clear()
    original = diffusion.generate_images
    diffusion.generate_images = held
    try:
        services = get_services()
        me = local_user(services.settings)
        run = services.images.generate(ImageForm("a harbour in fog", model="tiny-sd"), me)
        assert held.in_first_call.wait(60)
        app = open_page(run_app(), STUDIO)  # no address: the running job is found
        assert app.query_params["job"] in (run.job.id, [run.job.id])
        assert app.text_area(key="img-prompt").value == "a harbour in fog"
        assert [b for b in app.button if b.key == f"cancel-{run.job.id}"]
        held.gate.set()
        run.job.wait(60)
        services.saver.saved(run.job, 60)
        app.run()
        assert any(c.value.startswith("1 image(s) in") for c in app.caption)
    finally:
        held.gate.set()
        diffusion.generate_images = original


def test_an_address_with_someone_elses_job_opens_nothing_of_theirs(app_env, tiny_models_dir):
    app_env(tiny_models_dir)
    eve = User("eve", "Eve")
    request = ImageRequest("tiny-sd", "eve's secret", width=64, height=64, steps=2)
    theirs = get_services().engine.submit(request, eve)
    app = open_page(run_app(), STUDIO, job=theirs.id)
    shown = [t.value for t in app.text] + [app.text_area(key="img-prompt").value]
    assert "eve's secret" not in shown
    assert not [b for b in app.button if b.key == f"cancel-{theirs.id}"]
    theirs.wait(60)
