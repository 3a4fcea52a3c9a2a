"""Brand kits written by admins: TOML files in the library, read by the same parsers as every
load, locked fields honoured, nothing written when something is wrong, every change on
the record."""

from __future__ import annotations

import shutil
import tomllib

import pytest

from tests.conftest import REPO
from webapp.errors import NotFound, ValidationError
from webapp.image_presets import load_styles
from webapp.services.audit import AuditFilter
from webapp.services.brand_kits import BrandKitService
from webapp.services.images import ImageForm
from webapp.settings import Settings
from webapp.text_tools import load_library
from webapp.users import User


@pytest.fixture
def library(tmp_path):
    folder = tmp_path / "library"
    shutil.copytree(REPO / "library", folder)
    return folder


@pytest.fixture
def kits(team, library, tiny_models_dir):
    settings = Settings(library_dir=library, models_dir=tiny_models_dir)
    return BrandKitService(settings, team.audit)


def test_a_saved_style_is_a_library_file_that_every_load_reads(kits, library, admin):
    tricky = 'Say "cheese" \\ then\nnothing'
    kits.save_style(
        admin,
        "launch",
        name="Launch  poster",
        prompt="{prompt}, bold",
        negative_prompt=tricky,
        aspect="wide",
        locked=("aspect", "negative_prompt"),
    )
    text = (library / "styles" / "launch.toml").read_text()
    assert tomllib.loads(text)["negative_prompt"] == tricky
    style = load_styles(library)[0]["launch"]
    assert (style.name, style.aspect, style.negative_prompt) == ("Launch poster", "wide", tricky)
    assert style.locked == ("negative_prompt", "aspect")


def test_an_admin_edits_a_seed_style_in_place(kits, library, admin):
    kits.save_style(admin, "cinematic", name="Cinema", prompt="{prompt}, film still")
    assert load_styles(library)[0]["cinematic"].name == "Cinema"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"prompt": "no placeholder here"}, "must contain {prompt}"),
        ({"aspect": "round"}, "A shape is one of"),
        ({"lora": "nonexistent"}, "No LoRA called"),
        ({"locked": ("prompt",)}, "can be locked"),
        ({"name": ""}, "Fill in “Name”"),
        ({"name": "bell\x07"}, "control characters"),
    ],
)
def test_a_wrong_style_is_refused_and_nothing_is_written(kits, library, admin, changes, words):
    before = sorted(p.name for p in (library / "styles").iterdir())
    values = {"name": "X", "prompt": "{prompt}", **changes}
    with pytest.raises(ValidationError, match=words):
        kits.save_style(admin, "new-one", **values)
    assert sorted(p.name for p in (library / "styles").iterdir()) == before


@pytest.mark.parametrize("name", ["../escape", "UPPER", "a/b", ".hidden", ""])
def test_a_file_name_that_is_not_a_plain_name_is_refused(kits, library, admin, name):
    with pytest.raises(ValidationError, match="lower-case letters"):
        kits.save_style(admin, name, name="X", prompt="{prompt}")
    assert not (library.parent / "escape.toml").exists()


def test_a_locked_shape_wins_over_what_a_member_asks(make_services, tiny_models_dir, library):
    services = make_services(tiny_models_dir, library_dir=library, auth_mode="none")
    ada = User("cli:ada", "Ada", is_admin=True)
    services.kits.save_style(
        ada, "banner", name="Banner", prompt="{prompt}, banner", aspect="wide", locked=("aspect",)
    )
    member = User("local", "Local user")
    form = ImageForm("a shop", model="tiny-sd", style="banner", aspect="portrait", steps=1)
    run = services.images.generate(form, member)
    wide = services.images.family("tiny-sd").sizes["wide"]
    assert (run.request.width, run.request.height) == wide
    assert run.request.prompt == "a shop, banner"
    run.job.result(120)


def test_brand_voices_are_saved_and_deleted_on_the_record(kits, library, admin, team, operator):
    kits.save_voice(
        admin,
        "crisp",
        name="Crisp",
        description="Short and clear.",
        use=["we", " ", "you"],
        avoid=["synergy"],
        examples=["We ship on Monday.", "You can start now."],
    )
    voice = load_library(library).voices["crisp"]
    assert voice.use == ("we", "you") and len(voice.examples) == 2
    kits.delete_voice(admin, "crisp")
    assert "crisp" not in load_library(library).voices
    with pytest.raises(NotFound):
        kits.delete_voice(admin, "crisp")
    recorded = team.audit.query(operator, AuditFilter(actor=admin.id)).items
    assert [(e.kind, e.subject) for e in reversed(recorded)] == [
        ("voice.save", "crisp"),
        ("voice.delete", "crisp"),
    ]
    assert recorded[-1].parameters["examples"] == ["We ship on Monday.", "You can start now."]
