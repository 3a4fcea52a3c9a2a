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


def test_account_and_storage_settings_are_parsed():
    settings = load_settings(
        environ={
            "ATELIER_DATABASE_URL": "postgresql://atelier:pw@db:5432/atelier",
            "ATELIER_AUTH_MODE": "Proxy",
            "ATELIER_LOCKOUT_ATTEMPTS": "3",
            "ATELIER_LOCKOUT_MINUTES": "30",
            "ATELIER_SESSION_HOURS": "8",
            "ATELIER_AUDIT_PROMPTS": "hash",
            "ATELIER_QUOTA_JOBS_PER_HOUR": "20",
            "ATELIER_QUOTA_IMAGES_PER_DAY": "0",
            "ATELIER_PROXY_HEADER": "X-Remote-User",
            "ATELIER_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16,fd00::/64",
            "ATELIER_ADMIN_EMAILS": "Boss@Example.com,it@example.com",
        },
        config_file=NO_FILE,
    )
    assert settings.database_url == "postgresql+psycopg://atelier:pw@db:5432/atelier"
    assert settings.database == settings.database_url
    assert settings.auth_mode == "proxy"
    assert (settings.lockout_attempts, settings.lockout_minutes, settings.session_hours) == (
        3,
        30,
        8,
    )
    assert settings.audit_prompts == "hash"
    assert (settings.quota_jobs_per_hour, settings.quota_images_per_day) == (20, 0)
    assert settings.trusted_proxies == ("10.0.0.5/32", "10.1.0.0/16", "fd00::/64")
    assert settings.admin_emails == ("boss@example.com", "it@example.com")


def test_account_defaults_are_single_user_mode_and_sqlite_in_the_data_dir():
    settings = load_settings(environ={"ATELIER_DATA_DIR": "/srv/data"}, config_file=NO_FILE)
    assert settings.auth_mode == "none"
    assert settings.database == "sqlite:////srv/data/atelier.db"
    assert (settings.lockout_attempts, settings.lockout_minutes) == (5, 15)
    assert (settings.quota_jobs_per_hour, settings.quota_images_per_day) == (0, 0)


def test_lists_come_from_toml_lists_too(tmp_path):
    config = tmp_path / "atelier.toml"
    config.write_text('trusted_proxies = ["10.0.0.5"]\nadmin_emails = ["a@b.c"]\n')
    settings = load_settings(environ={}, config_file=config)
    assert settings.trusted_proxies == ("10.0.0.5/32",)
    assert settings.admin_emails == ("a@b.c",)


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("ATELIER_DATABASE_URL", "mysql://root@db/atelier", "postgresql://"),
        ("ATELIER_DATABASE_URL", "atelier.db", "sqlite:///"),
        ("ATELIER_AUTH_MODE", "ldap", "none, accounts, oidc, proxy"),
        ("ATELIER_LOCKOUT_ATTEMPTS", "0", "whole number of 1 or more"),
        ("ATELIER_SESSION_HOURS", "forever", "whole number of 1 or more"),
        ("ATELIER_AUDIT_PROMPTS", "none", "full, hash"),
        ("ATELIER_QUOTA_IMAGES_PER_DAY", "-1", "0 to turn it off"),
        ("ATELIER_PROXY_HEADER", "X User: x", "HTTP header name"),
        ("ATELIER_TRUSTED_PROXIES", "10.0.0.5, proxy.local", "'proxy.local' is neither"),
        ("ATELIER_ADMIN_EMAILS", "boss", "'boss' is not one"),
        ("ATELIER_RAY_ADDRESS", "ray://10.0.0.2:10001", "host:port of the Ray cluster's head"),
        ("ATELIER_RAY_ADDRESS", "10.0.0.2", "host:port of the Ray cluster's head"),
        ("ATELIER_RAY_REPLICAS", "0", "whole number of 1 or more"),
        ("ATELIER_RAY_GPUS_PER_REPLICA", "-1", "fractions share a device"),
    ],
)
def test_bad_account_settings_name_the_variable_and_what_is_allowed(variable, value, allowed):
    with pytest.raises(SettingsError) as caught:
        load_settings(environ={variable: value}, config_file=NO_FILE)
    assert variable in caught.value.message
    assert allowed in caught.value.message


def test_a_bad_database_url_is_repeated_without_its_password():
    with pytest.raises(SettingsError) as caught:
        load_settings(
            environ={"ATELIER_DATABASE_URL": "mysql://root:hunter2@db/x"}, config_file=NO_FILE
        )
    assert "hunter2" not in caught.value.message
    assert "mysql://root:***@db/x" in caught.value.message


def test_proxy_mode_needs_the_proxy_addresses():
    with pytest.raises(SettingsError, match="ATELIER_TRUSTED_PROXIES is empty"):
        load_settings(environ={"ATELIER_AUTH_MODE": "proxy"}, config_file=NO_FILE)


def test_a_ray_cluster_is_named_by_its_heads_address_and_replicas_may_share_a_gpu():
    settings = load_settings(
        environ={"ATELIER_RAY_ADDRESS": " 10.0.0.2:6379 ", "ATELIER_RAY_GPUS_PER_REPLICA": "0.5"},
        config_file=NO_FILE,
    )
    assert settings.ray_address == "10.0.0.2:6379" and settings.ray_gpus_per_replica == 0.5
    assert load_settings(environ={}, config_file=NO_FILE).ray_address == ""
