"""Shared fixtures: tiny models made once per session, settings and services around them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from webapp.embedded import DEFAULT_TEXT_MODEL, prepare_default_model
from webapp.offline import use_offline_environment
from webapp.services import build_services
from webapp.settings import Settings
from webapp.testmodels import make_test_models
from webapp.users import User

REPO = Path(__file__).resolve().parent.parent
CATALOG = REPO / "models" / "catalog.toml"


def pytest_configure(config):
    use_offline_environment()


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """A models dir holding tiny-sd and tiny-llm (and the project's catalog)."""
    folder = tmp_path_factory.mktemp("models")
    make_test_models(folder)
    shutil.copy(CATALOG, folder / "catalog.toml")
    return folder


@pytest.fixture(scope="session")
def embedded_models_dir() -> Path:
    """The project's models dir, with the embedded SmolLM2 prepared (idempotent)."""
    models = REPO / "models"
    prepare_default_model(models)
    assert (models / DEFAULT_TEXT_MODEL).is_dir()
    return models


@pytest.fixture
def models_dir(tiny_models_dir, tmp_path) -> Path:
    """A private copy of the tiny models that a test may damage."""
    folder = tmp_path / "models"
    shutil.copytree(tiny_models_dir, folder)
    return folder


@pytest.fixture
def settings(tiny_models_dir, tmp_path) -> Settings:
    return Settings(models_dir=tiny_models_dir, data_dir=tmp_path / "data", device="cpu")


@pytest.fixture
def services(settings):
    built = build_services(settings)
    yield built
    built.close()


@pytest.fixture
def make_services(tmp_path):
    """Services over a models dir (and the project's library); closed after the test."""
    made = []

    def make(models_dir: Path, **settings):
        values = dict(
            models_dir=models_dir,
            data_dir=tmp_path / "data",
            device="cpu",
            library_dir=REPO / "library",
        )
        made.append(build_services(Settings(**{**values, **settings})))
        return made[-1]

    yield make
    for services in made:
        services.close()


@pytest.fixture
def admin() -> User:
    return User(id="ada", display_name="Ada", is_admin=True)


@pytest.fixture
def member() -> User:
    return User(id="bob", display_name="Bob", is_admin=False)
