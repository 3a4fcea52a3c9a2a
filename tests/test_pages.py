"""The pages as a person uses them, through Streamlit's AppTest from app.py."""

import pickle
import re
import shutil

import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from webapp.device import cpu_has_bf16_matrix_units
from webapp.engine import LoraWeight
from webapp.services.images import ImageForm
from webapp.testmodels import make_test_lora
from webapp.ui.resources import get_services
from webapp.users import User, local_user

APP = str(REPO / "app.py")


def run_app() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert not app.exception, app.exception
    return app


def until_done(app: AppTest) -> AppTest:
    """Let the jobs the page started end, then draw the page again: in a browser, the
    page's live panel does this by itself."""
    engine = get_services().engine
    for job in engine.jobs(User("local", "Local user", True), everyone=True):
        assert job.wait(120), job
    app.run()
    assert not app.exception, app.exception
    return app


def text_of(app: AppTest) -> str:
    parts = [
        e.value
        for kind in ("title", "markdown", "caption", "info", "warning", "error", "success")
        for e in getattr(app, kind)
    ]
    return as_shown("\n".join(str(p) for p in parts))


def as_shown(markdown: str) -> str:
    """Markdown's text as the browser shows it: escaped punctuation without its backslash."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


def test_home_lists_ready_models_by_name_with_what_they_are_for(app_env, tiny_models_dir):
    app_env(tiny_models_dir)
    app = run_app()
    page = text_of(app)
    assert app.title[0].value == "Atelier"
    assert "Tiny LLM (test model)" in page
    assert "Tiny SD (test model)" in page
    assert "writes gibberish" in page  # what it is good for (not much)
    assert "No image model is installed" not in page
    assert "Admins: the device, its memory" in page  # where the details went


@pytest.mark.parametrize(
    ("device", "words"),
    [
        ("gpu-please", "ATELIER_DEVICE"),
        pytest.param(
            "cuda",
            "no usable CUDA GPU",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
        ),
    ],
)
def test_bad_settings_stop_the_app_with_one_clear_message(app_env, tiny_models_dir, device, words):
    app_env(tiny_models_dir, device=device)
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert not app.exception, app.exception
    assert len(app.error) == 1
    assert app.error[0].value.startswith("Atelier cannot start:")
    assert words in app.error[0].value


def test_home_explains_how_to_add_an_image_model_when_none_is_installed(app_env, models_dir):
    shutil.rmtree(models_dir / "tiny-sd")
    app_env(models_dir)
    info = "\n".join(i.value for i in run_app().info)
    assert "No image model is installed yet" in info
    assert "model_index.json" in info and ".safetensors" in info
    assert str(models_dir) in info


def test_models_page_lists_models_and_loads_unloads_and_pins(app_env, tiny_models_dir):
    app_env(tiny_models_dir)
    app = run_app()
    app.switch_page("app_pages/models.py").run()
    table = app.dataframe[0].value
    assert set(table["Name"]) == {"tiny-sd", "tiny-llm", "tiny-embed"}
    assert set(table["Loaded"]) == {"no"}

    app.selectbox[0].select("tiny-llm").run()
    next(b for b in app.button if b.label == "Load").click().run()
    table = app.dataframe[0].value
    row = table[table["Name"] == "tiny-llm"].iloc[0]
    text_dtype = "bfloat16" if cpu_has_bf16_matrix_units() else "float32"
    assert row["Loaded"] == "yes" and row["Dtype"] == text_dtype

    next(b for b in app.button if b.label.startswith("Pin")).click().run()
    table = app.dataframe[0].value
    assert table[table["Name"] == "tiny-llm"].iloc[0]["Loaded"] == "pinned"

    next(b for b in app.button if b.label == "Unload").click().run()
    table = app.dataframe[0].value
    assert table[table["Name"] == "tiny-llm"].iloc[0]["Loaded"] == "no"


def test_models_page_shows_refused_and_broken_models_with_reasons(app_env, models_dir):
    (models_dir / "legacy.ckpt").write_bytes(b"x")
    (models_dir / "sneaky.safetensors").write_bytes(pickle.dumps({"weight": 1}))
    (models_dir / "tiny-llm" / "config.json").write_text("{oops")
    (models_dir / "loras").mkdir()
    (models_dir / "loras" / "cut.safetensors").write_bytes(b"\x10\0\0\0\0\0\0\0{")
    app_env(models_dir)
    app = run_app()
    app.switch_page("app_pages/models.py").run()
    table = app.dataframe[0].value
    statuses = dict(zip(table["Name"], table["Status"], strict=True))
    assert statuses["legacy"].startswith("refused") and "arbitrary code" in statuses["legacy"]
    assert statuses["sneaky"].startswith("refused") and "Python pickle" in statuses["sneaky"]
    assert statuses["tiny-llm"].startswith("broken") and "config.json" in statuses["tiny-llm"]
    assert statuses["cut"].startswith(
        "broken: cut.safetensors is cut short: its header alone needs 24 bytes and the file has 9."
    )
    assert "tiny-llm" not in app.selectbox[0].options and "tiny-sd" in app.selectbox[0].options


def test_without_admin_rights_the_models_page_is_not_offered(app_env, tiny_models_dir):
    app_env(tiny_models_dir, local_user_is_admin="false")
    app = run_app()
    assert "(admin)" not in text_of(app)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app.switch_page("app_pages/models.py")


def test_bad_setting_stops_start_up_with_one_message(app_env, tiny_models_dir):
    app_env(tiny_models_dir, dtype="half")
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert len(app.error) == 1
    assert "ATELIER_DTYPE='half' is not allowed" in app.error[0].value


@pytest.fixture
def held_engine(monkeypatch):
    """The app's engine with a fake image runner that holds jobs until released."""
    from tests.fakes import Recorder
    from webapp.backends import diffusion

    recorder = Recorder()
    recorder.gate.clear()
    monkeypatch.setattr(diffusion, "generate_images", recorder)
    yield recorder
    recorder.gate.set()


def test_queue_page_shows_own_jobs_with_place_progress_and_cancel(
    app_env, tiny_models_dir, held_engine
):
    from webapp.engine import ImageRequest, JobStatus

    app_env(tiny_models_dir)
    services = get_services()
    me = User(id="local", display_name="Local user", is_admin=True)
    someone = User(id="eve", display_name="Eve")
    running = services.engine.submit(ImageRequest("tiny-sd", "a red fox", width=64, height=64), me)
    assert held_engine.in_first_call.wait(30)
    waiting = services.engine.submit(
        ImageRequest("tiny-sd", "<b>a blue fox</b>", width=72, height=64), me
    )
    services.engine.submit(ImageRequest("tiny-sd", "eve's fox", width=80, height=64), someone)

    app = run_app()
    app.switch_page("app_pages/queue.py").run()
    assert app.toggle[0].value is True  # the local user is the admin: everyone's jobs
    app.toggle[0].set_value(False).run()
    shown = [t.value for t in app.text]
    assert "a red fox" in shown and "<b>a blue fox</b>" in shown  # user text stays plain text
    assert "eve's fox" not in shown
    assert any("number 1 in line" in m.value for m in app.markdown)
    assert [m.value for m in app.metric] == ["2", "1"]

    app.button(key=f"cancel-{waiting.id}").click().run()
    assert waiting.status == JobStatus.CANCELLED
    assert running.status == JobStatus.RUNNING
    held_engine.gate.set()
    running.result(30)


def test_queue_page_for_a_member_has_no_admin_sections(app_env, tiny_models_dir):
    app_env(tiny_models_dir, local_user_is_admin="false")
    app = run_app()
    app.switch_page("app_pages/queue.py").run()
    assert not app.toggle
    assert "No jobs yet" in app.info[0].value
    assert not any(s.value == "Device" for s in app.subheader)


def open_text_tool(app: AppTest, tool_id: str) -> AppTest:
    app.switch_page("app_pages/text_tools.py").run()
    app.button(key=f"open-{tool_id}").click().run()
    assert not app.exception, app.exception
    return app


def test_text_tools_gallery_shows_every_tool_as_a_card(app_env, tiny_models_dir):
    app_env(tiny_models_dir)
    app = run_app()
    app.switch_page("app_pages/text_tools.py").run()
    cards = [m.value for m in app.markdown if m.value.startswith("####")]
    assert len(cards) == 9
    assert any("Summarise" in card for card in cards)
    assert "Turn a long text into a short summary of the length you choose." in [
        c.value for c in app.caption
    ]


def test_run_a_text_tool_and_see_the_streamed_result(app_env, tiny_models_dir):
    app_env(tiny_models_dir)
    app = open_text_tool(run_app(), "summarise")
    assert app.header[0].value == ":material/summarize: Summarise"
    app.text_area(key="field-summarise-text").input("Anna books the room {{ 7*7 }}.")
    app.text_input(key="seed-summarise").input("42")
    app.button(key="FormSubmitter:form-summarise-Run").click().run()
    assert not app.exception, app.exception
    assert [b.label for b in app.button if b.label == "Stop"] or app.code  # live, or done
    until_done(app)
    assert any(c.value.startswith("Seed 42:") for c in app.caption)
    answer = app.code[0].value
    assert answer  # the copy box holds the streamed answer
    assert [b.label for b in app.get("download_button")] == [
        "Download .txt",
        "Download .md",
        "Download .docx",
    ]
    job = get_services().engine.jobs(User("local", "Local user", True))[0]
    assert "Anna books the room {{ 7*7 }}." in job.request.messages[-1].content
    assert job.result().text == answer


def test_text_tool_bad_inputs_show_their_messages(app_env, tiny_models_dir):
    app_env(tiny_models_dir)
    app = open_text_tool(run_app(), "summarise")
    app.button(key="FormSubmitter:form-summarise-Run").click().run()
    assert [e.value for e in app.error] == ["Fill in “Text to summarise”."]
    app.text_area(key="field-summarise-text").input("word " * 3000)
    app.button(key="FormSubmitter:form-summarise-Run").click().run()
    assert "Cut about" in app.error[0].value
    app.text_area(key="field-summarise-text").input("fine")
    app.text_input(key="seed-summarise").input("lucky")
    app.button(key="FormSubmitter:form-summarise-Run").click().run()
    assert "seed must be a whole number" in app.error[0].value


def test_headlines_show_the_variants_side_by_side(app_env, tiny_models_dir):
    app_env(tiny_models_dir)
    app = open_text_tool(run_app(), "headlines")
    app.text_area(key="field-headlines-subject").input("a reusable coffee cup")
    app.number_input(key="field-headlines-variants").set_value(3)
    app.button(key="FormSubmitter:form-headlines-Run").click().run()
    assert not app.exception, app.exception
    assert [c.value for c in app.caption if c.value.startswith("Idea")] == [
        "Idea 1",
        "Idea 2",
        "Idea 3",
    ]


def test_chat_answers_and_keeps_the_conversation(app_env, tiny_models_dir):
    app_env(tiny_models_dir)
    app = open_text_tool(run_app(), "chat")
    app.number_input(key="max-tokens-chat-tiny-llm-Balanced").set_value(16).run()
    app.chat_input[0].set_value("Hello <script>alert(1)</script>").run()
    assert not app.exception, app.exception
    assert [m.name for m in app.chat_message] == ["user", "assistant"]
    assert "Hello <script>alert(1)</script>" in [t.value for t in app.text]  # plain text
    until_done(app)
    assert app.query_params["chat"]  # kept: a reload opens it again
    app.chat_input[0].set_value("And again").run()
    until_done(app)
    assert [m.name for m in app.chat_message] == ["user", "assistant", "user", "assistant"]
    next(b for b in app.button if b.label == "New chat").click().run()
    assert not app.chat_message


def open_studio(app_env, models_dir) -> AppTest:
    app_env(models_dir)
    app = run_app()
    app.switch_page("app_pages/image_studio.py").run()
    assert not app.exception, app.exception
    return app


def test_image_studio_makes_an_image_and_shows_its_recipe(app_env, tiny_models_dir):
    app = open_studio(app_env, tiny_models_dir)
    app.text_area(key="img-prompt").input("a <b>red</b> fox")
    app.text_input(key="img-seed").input("21")
    app.button(key="FormSubmitter:image-form-Generate").click().run()
    assert not app.exception, app.exception
    until_done(app)
    assert any(c.value.startswith("1 image(s) in") for c in app.caption)
    assert "Seed 21" in [c.value for c in app.caption]
    recipe = app.code[0].value
    assert recipe.startswith("a <b>red</b> fox\nNegative prompt: ")
    assert "Seed: 21, Size: 64x64, Model: tiny-sd" in recipe
    assert "a <b>red</b> fox" in [t.value for t in app.text]  # recent images, as plain text
    next(b for b in app.button if b.label == "Use these settings").click().run()
    assert app.text_input(key="img-seed").value == "21"


def test_image_studio_lists_recent_images_a_page_at_a_time(app_env, tiny_models_dir):
    app_env(tiny_models_dir)
    services = get_services()
    store, user = services.images.store, local_user(services.settings)
    for number in range(1, 11):
        recipe = {"request": {"prompt": f"picture {number}"}}
        store.save(user, f"job-{number}", 0, Image.new("RGB", (64, 64)), "", recipe)
    app = run_app()
    app.switch_page("app_pages/image_studio.py").run()

    def shown() -> set[str]:
        return {t.value for t in app.text if t.value.startswith("picture")}

    assert shown() == {f"picture {n}" for n in range(3, 11)}  # the newest eight
    next(b for b in app.button if b.label == "Show more").click().run()
    assert shown() == {f"picture {n}" for n in range(1, 11)}
    assert not [b for b in app.button if b.label == "Show more"]  # nothing more to show


def test_use_these_settings_fills_the_lora_table_with_its_weights(app_env, models_dir):
    make_test_lora(models_dir / "tiny-sd", models_dir / "loras" / "ink.safetensors")
    app_env(models_dir)
    services = get_services()
    user = local_user(services.settings)
    form = ImageForm("a tree", model="tiny-sd", quality="Fast", loras=(LoraWeight("ink", 0.7),))
    services.images.finish(services.images.generate(form, user), user, timeout=60)
    app = run_app()
    app.switch_page("app_pages/image_studio.py").run()
    assert app.dataframe[0].value.empty  # no LoRA until one is added
    next(b for b in app.button if b.label == "Use these settings").click().run()
    assert app.dataframe[0].value.to_dict("records") == [{"LoRA": "ink", "Weight": 0.7}]
    assert app.text_area(key="img-prompt").value == "a tree"


def test_image_studio_shows_bad_input_next_to_its_field(app_env, tiny_models_dir):
    app = open_studio(app_env, tiny_models_dir)
    app.button(key="FormSubmitter:image-form-Generate").click().run()
    assert [e.value for e in app.error] == ["Fill in “What should the picture show?”."]
    app.text_area(key="img-prompt").input("a fox")
    app.number_input(key="img-width").set_value(100)
    app.button(key="FormSubmitter:image-form-Generate").click().run()
    assert "Width 100 must be a multiple of 8" in app.error[0].value


def test_image_studio_without_an_image_model_says_how_to_add_one(app_env, models_dir):
    shutil.rmtree(models_dir / "tiny-sd")
    app = open_studio(app_env, models_dir)
    assert "No image model is installed yet" in app.info[0].value
    assert not app.text_area


def visible_errors(app: AppTest) -> list[str]:
    """Errors a person sees without opening a collapsed section."""
    hidden = {id(e) for expander in app.expander for e in expander.error}
    return [e.value for e in app.error if id(e) not in hidden]


def test_a_refused_generate_says_why_in_view_without_server_paths(app_env, models_dir):
    config = models_dir / "tiny-sd" / "unet" / "config.json"  # weights that do not fit it
    config.write_text(
        config.read_text().replace('"cross_attention_dim": 32', '"cross_attention_dim": 48')
    )
    app = open_studio(app_env, models_dir)
    app.text_area(key="img-prompt").input("a fox")
    app.button(key="FormSubmitter:image-form-Generate").click().run()
    until_done(app)
    shown = visible_errors(app)
    assert any("could not be loaded" in message for message in shown), shown
    assert not any(str(models_dir) in message or "/tmp" in message for message in shown)

    app.number_input(key="img-width").set_value(100)  # a field inside the closed Advanced
    app.button(key="FormSubmitter:image-form-Generate").click().run()
    assert any("Width (under Advanced)" in message for message in visible_errors(app))
