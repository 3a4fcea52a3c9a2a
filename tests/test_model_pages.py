"""The Models page (AppTest): recommended models, installing from a fake Hub, importing,
deleting."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import APP, REPO
from tests.hub_fixtures import start_hub
from webapp.ui.resources import clear_resources, get_services
from webapp.users import User

ADMIN = User("local", "Local user", True)


@pytest.fixture
def hub(tiny_models_dir, tmp_path):
    with start_hub(tiny_models_dir, tmp_path / "repos") as running:
        yield running


@pytest.fixture
def page(monkeypatch, tmp_path, models_dir, hub, tiny_models_dir):
    monkeypatch.setenv("ATELIER_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("ATELIER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ATELIER_DEVICE", "cpu")
    monkeypatch.setenv("ATELIER_LIBRARY_DIR", str(REPO / "library"))
    monkeypatch.setenv("ATELIER_HF_ENDPOINT", hub.url)
    monkeypatch.setenv("ATELIER_IMPORT_ROOTS", str(tiny_models_dir))
    clear_resources()
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page("app_pages/models.py").run()
    assert not app.exception, app.exception
    yield app
    clear_resources()


def button(app: AppTest, label: str, key: str | None = None):
    return next(b for b in app.button if b.label == label and (key is None or b.key == key))


def texts(app: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "warning", "error", "success")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(app, kind))


def finish_installs(app: AppTest) -> AppTest:
    installs = get_services().installs
    for progress in installs.installs(ADMIN):
        installs.wait(progress.install.id, 120)
    return app.run()


def installed_names(app: AppTest) -> set[str]:
    return set(app.dataframe[0].value["Name"])


def test_the_page_shows_the_recommended_models_and_what_fits_this_machine(page):
    table = page.dataframe[1].value

    assert {"Stable Diffusion 1.5", "SDXL base 1.0", "Llama 3.2 3B Instruct"} <= set(table["Model"])
    assert set(table["Fits here"]) <= {"yes", "too big"}
    qwen = table[table["Model"] == "Qwen2.5 7B Instruct"].iloc[0]
    assert qwen["Licence"] == "Apache-2.0" and qwen["Memory"] == "≈ 17 GB"
    assert "approximate" in texts(page)


def test_an_admin_installs_a_hub_model_in_a_few_clicks_and_it_is_listed(page):
    page.text_input(key="hub-repo").input("test-org/little-sd")
    button(page, "Look up", "look-up-typed").click().run()
    assert "little-sd" in texts(page) and "diffusers" in texts(page)
    assert page.text_input(key="hub-name").value == "little-sd"

    button(page, "Install").click().run()
    assert not page.exception, page.exception
    assert "Installing test-org/little-sd in the background" in texts(page)
    finish_installs(page)

    assert "little-sd" in installed_names(page)
    assert "Installed" in texts(page)
    image_models = [m.name for m in get_services().models.ready_models(ADMIN, "image")]
    assert "little-sd" in image_models


def test_a_gated_model_asks_for_a_token_and_its_licence_next_to_the_form(page):
    page.text_input(key="hub-repo").input("test-org/gated-llm")
    button(page, "Look up", "look-up-typed").click().run()

    assert "paste an access token" in texts(page)
    assert any("llama3.2" in box.label for box in page.checkbox)
    button(page, "Install").click().run()
    errors = [e.value for e in page.error]
    assert any(e.startswith("**Access token:**") for e in errors), errors
    assert get_services().installs.installs(ADMIN) == []


def test_a_mistyped_repo_id_is_shown_next_to_its_field(page, hub):
    page.text_input(key="hub-repo").input("little sd").run()
    button(page, "Look up", "look-up-typed").click().run()

    errors = [e.value for e in page.error]
    assert any(e.startswith("**Repo id:**") and "owner/name" in e for e in errors), errors
    assert hub.log == []


def test_importing_from_a_server_folder_adds_the_model(page, tiny_models_dir):
    page.text_input(key="import-path").input(str(tiny_models_dir / "tiny-llm"))
    page.text_input(key="import-name").input("house-llm")
    button(page, "Import").click().run()

    assert "Imported house-llm: a text model" in texts(page)
    assert "house-llm" in installed_names(page)


def test_deleting_asks_for_confirmation_first(page, models_dir):
    page.selectbox(key="delete-name").select("tiny-llm").run()
    assert button(page, "Delete").disabled

    page.checkbox(key="delete-confirmed").check().run()
    button(page, "Delete").click().run()

    assert "Deleted tiny-llm." in texts(page)
    assert "tiny-llm" not in installed_names(page)
    assert not (models_dir / "tiny-llm").exists()


def test_an_admin_sets_the_default_model_and_describes_it_and_pages_follow(page, models_dir):
    page.selectbox[0].select("tiny-llm").run()
    page.text_input(key="describe-name-tiny-llm").input("House writer")
    page.text_area(key="describe-text-tiny-llm").input("Our drafts.")
    page.text_input(key="describe-license-tiny-llm").input("Apache-2.0")
    button(page, "Save", "describe-save-tiny-llm").click().run()
    assert "Saved the description of tiny-llm." in texts(page)

    page.selectbox[0].select("tiny-llm").run()
    button(page, "Offer first for text").click().run()
    page.checkbox(key="at-start-tiny-llm").check().run()

    entry = get_services().engine.registry().get("tiny-llm")
    assert (entry.display_name, entry.description, entry.default, entry.pin) == (
        "House writer",
        "Our drafts.",
        True,
        True,
    )
    assert get_services().text.default_model() == "tiny-llm"
    catalog = (models_dir / "catalog.toml").read_text()
    assert "tiny-sd" in catalog and "# Descriptions of the models" in catalog
