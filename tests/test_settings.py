from pathlib import Path

import pytest

from webapp.errors import SettingsError
from webapp.settings import Settings, load_settings

NO_FILE = Path("/nonexistent/atelier.toml")


def test_defaults_without_file_or_environment():
    settings = load_settings(environ={}, config_file=NO_FILE)
    assert settings == Settings()
    assert settings.models_dir == Path("models")
    assert settings.memory_budget_gb is None


def test_environment_values_are_parsed():
    settings = load_settings(
        environ={
            "ATELIER_DEVICE": "cuda:1",
            "ATELIER_DTYPE": "bfloat16",
            "ATELIER_MEMORY_BUDGET_GB": "7.5",
            "ATELIER_QUEUE_MAX_PER_USER": "3",
            "ATELIER_ALLOW_PICKLE": "yes",
            "ATELIER_MODELS_DIR": "/srv/models",
        },
        config_file=NO_FILE,
    )
    assert settings.device == "cuda:1"
    assert settings.dtype == "bfloat16"
    assert settings.memory_budget_gb == 7.5
    assert settings.queue_max_per_user == 3
    assert settings.allow_pickle is True
    assert settings.models_dir == Path("/srv/models")


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("ATELIER_DEVICE", "gpu", "auto, cpu, cuda or cuda:N"),
        ("ATELIER_DTYPE", "fp8", "auto, float16, bfloat16, float32"),
        ("ATELIER_MEMORY_BUDGET_GB", "-2", "number of gigabytes"),
        ("ATELIER_QUEUE_MAX_TOTAL", "lots", "whole number of 1 or more"),
        ("ATELIER_ALLOW_PICKLE", "maybe", "true or false"),
    ],
)
def test_bad_value_names_the_variable_and_what_is_allowed(variable, value, allowed):
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={variable: value}, config_file=NO_FILE)
    assert variable in caught.value.message
    assert repr(value) in caught.value.message
    assert allowed in caught.value.message


def test_file_values_apply_and_environment_wins(tmp_path):
    config = tmp_path / "atelier.toml"
    config.write_text('device = "cpu"\nupload_max_mb = 5\nqueue_max_total = 10\n')
    settings = load_settings(environ={"ATELIER_UPLOAD_MAX_MB": "9"}, config_file=config)
    assert settings.device == "cpu"
    assert settings.upload_max_mb == 9
    assert settings.queue_max_total == 10


def test_unknown_key_in_file_is_named(tmp_path):
    config = tmp_path / "atelier.toml"
    config.write_text("devise = 'cpu'\n")
    with pytest.raises(SettingsError, match="devise"):
        load_settings(environ={}, config_file=config)


def test_bad_value_in_file_names_the_file_key(tmp_path):
    config = tmp_path / "atelier.toml"
    config.write_text('dtype = "half"\n')
    with pytest.raises(SettingsError, match=r"dtype in .*atelier.toml='half'"):
        load_settings(environ={}, config_file=config)


def test_per_user_cap_cannot_exceed_total():
    with pytest.raises(SettingsError, match="ATELIER_QUEUE_MAX_PER_USER"):
        load_settings(
            environ={"ATELIER_QUEUE_MAX_PER_USER": "20", "ATELIER_QUEUE_MAX_TOTAL": "5"},
            config_file=NO_FILE,
        )


def test_config_variable_pointing_nowhere_is_an_error():
    with pytest.raises(SettingsError, match="ATELIER_CONFIG"):
        load_settings(environ={"ATELIER_CONFIG": "/nonexistent/x.toml"})
