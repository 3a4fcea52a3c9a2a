"""The settings of the model manager: the Hub's address (a company mirror) and import folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from webapp.errors import SettingsError
from webapp.settings import load_settings

NO_CONFIG = Path("/nonexistent/atelier.toml")


def test_the_hub_is_huggingface_co_unless_a_mirror_is_named():
    assert load_settings({}, NO_CONFIG).hf_endpoint == "https://huggingface.co"


def test_hf_endpoint_names_a_mirror_and_atelier_s_own_setting_wins():
    mirror = {"HF_ENDPOINT": "http://hf-mirror.intranet:8080/"}
    assert load_settings(mirror, NO_CONFIG).hf_endpoint == "http://hf-mirror.intranet:8080"

    both = {**mirror, "ATELIER_HF_ENDPOINT": "https://proxy.example.com/hf"}
    assert load_settings(both, NO_CONFIG).hf_endpoint == "https://proxy.example.com/hf"


@pytest.mark.parametrize("bad", ["hf-mirror.intranet", "ftp://mirror", "https://user:pw@mirror"])
def test_a_hub_address_that_is_not_one_says_what_to_give(bad):
    with pytest.raises(SettingsError) as refused:
        load_settings({"ATELIER_HF_ENDPOINT": bad}, NO_CONFIG)

    assert "ATELIER_HF_ENDPOINT" in refused.value.message
    assert "http://hf-mirror.intranet:8080" in refused.value.message
    assert "pw" not in refused.value.message.replace("password", "")


def test_import_roots_are_a_list_of_folders():
    settings = load_settings({"ATELIER_IMPORT_ROOTS": "/srv/models, /mnt/usb"}, NO_CONFIG)

    assert settings.import_roots == (Path("/srv/models"), Path("/mnt/usb"))
