"""Admins' choices kept in catalog.toml: defaults, models loaded at start, descriptions."""

from __future__ import annotations

import time
import tomllib

import pytest

from webapp.catalog_file import update_entries
from webapp.errors import ValidationError


def test_one_models_entry_changes_and_the_rest_of_the_file_is_kept(models_dir):
    before = (models_dir / "catalog.toml").read_text()

    update_entries(models_dir, {"tiny-sd": {"description": 'Says "hi"\nand more', "pin": True}})

    after = (models_dir / "catalog.toml").read_text()
    data = tomllib.loads(after)["models"]
    assert data["tiny-sd"]["description"] == 'Says "hi"\nand more'
    assert data["tiny-sd"]["pin"] is True
    assert data["tiny-sd"]["defaults"] == {"base_size": 64}, "its defaults table is kept"
    assert data["tiny-llm"] == tomllib.loads(before)["models"]["tiny-llm"]
    assert before.splitlines()[0] in after  # the admin's comments stay


def test_only_one_model_of_a_kind_is_the_default(services_for_models, admin):
    services = services_for_models
    services.models.set_default("tiny-sd", admin)
    assert [e.name for e in services.images.image_models(admin)][0] == "tiny-sd"
    services.models.set_default("tiny-llm", admin)

    defaults = [e.name for e in services.engine.registry() if e.default]
    assert sorted(defaults) == ["tiny-llm", "tiny-sd"]
    assert services.text.default_model() == "tiny-llm"


def test_a_model_loaded_at_start_is_loaded_by_the_next_start(make_services, models_dir, admin):
    first = make_services(models_dir)
    first.models.load_at_start("tiny-llm", admin, True)
    first.close()

    again = make_services(models_dir)
    deadline = time.monotonic() + 60
    while not (pinned := [s.name for s in again.engine.model_stats() if s.pinned]):
        assert time.monotonic() < deadline, "the pinned model was not loaded at start"
        time.sleep(0.1)
    assert pinned == ["tiny-llm"]


def test_a_description_too_long_is_refused(services_for_models, admin):
    with pytest.raises(ValidationError) as long:
        services_for_models.models.describe("tiny-sd", admin, "x" * 81, "", "")
    assert long.value.field == "display_name"


@pytest.fixture
def services_for_models(make_services, models_dir):
    return make_services(models_dir)
