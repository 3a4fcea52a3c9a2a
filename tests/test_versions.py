"""Libraries below their security floor, or torch's safe loading turned off, stop start-up
with one clear message; doctor shows each check."""

from __future__ import annotations

import json
import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from webapp.cli import main
from webapp.errors import SettingsError
from webapp.ui.resources import clear_resources
from webapp.versions import FLOORS, UNSAFE_LOAD_ENV, require_safe_versions, version_checks

CURRENT = {"torch": "2.13.0+cpu", "jinja2": "3.1.6", "pillow": "13.0.0", "streamlit": "1.67.0"}


def installed(**versions):
    table = {**CURRENT, **versions}
    return lambda package: table.get(package)


def test_the_installed_libraries_pass_their_floors():
    require_safe_versions(environ={})


@pytest.mark.parametrize(
    ("package", "version", "words"),
    [
        ("torch", "2.5.1", "CVE-2025-32434"),
        ("jinja2", "3.1.5", "CVE-2025-27516"),
        ("pillow", "12.1.1", "CVE-2026-40192"),
        ("streamlit", "1.53.0", "st.App"),
        ("pypdf", "6.7.1", "CVE-2026-27628"),
    ],
)
def test_a_library_below_its_floor_stops_start_up_saying_why_and_how(package, version, words):
    with pytest.raises(SettingsError) as caught:
        require_safe_versions({}, installed(**{package: version}))
    message = caught.value.message
    assert f"{package} {version} is older than" in message and words in message
    assert f"pip install --upgrade '{package}>=" in message


def test_every_failure_is_named_in_one_message():
    with pytest.raises(SettingsError) as caught:
        require_safe_versions({UNSAFE_LOAD_ENV: "1"}, installed(torch="2.4.0", pillow="10.4.0"))
    message = caught.value.message
    assert "torch 2.4.0" in message and "pillow 10.4.0" in message
    assert f"Unset {UNSAFE_LOAD_ENV}" in message


def test_pypdf_is_checked_only_where_it_is_installed():
    checks = {c.name: c for c in version_checks({}, installed())}
    assert checks["pypdf version"].ok
    assert checks["pypdf version"].detail == "pypdf is not installed (optional)"
    assert not {c.name: c for c in version_checks({}, installed(torch=None))}["torch version"].ok


def test_a_vendor_build_of_a_release_counts_as_that_release():
    checks = {c.name: c for c in version_checks({}, installed(torch="2.6.0a0+ecf3bae40a"))}
    assert checks["torch version"].ok


@pytest.mark.parametrize("value", ["1", "0", ""])
def test_turning_off_torchs_safe_loading_stops_start_up_whatever_the_value(value):
    with pytest.raises(SettingsError, match=UNSAFE_LOAD_ENV):
        require_safe_versions({UNSAFE_LOAD_ENV: value}, installed())


def test_pyproject_asks_for_at_least_every_floor():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {Requirement(r).name.lower(): Requirement(r) for r in project["dependencies"]}
    for floor in FLOORS:
        if floor.optional:
            continue
        lowest = next(
            Version(s.version) for s in wanted[floor.package].specifier if s.operator == ">="
        )
        assert lowest >= Version(floor.minimum), floor.package


@pytest.fixture
def cli_env(monkeypatch, tiny_models_dir, tmp_path):
    monkeypatch.setenv("ATELIER_MODELS_DIR", str(tiny_models_dir))
    monkeypatch.setenv("ATELIER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ATELIER_DEVICE", "cpu")
    monkeypatch.setenv(UNSAFE_LOAD_ENV, "1")


def test_the_cli_refuses_to_start_and_doctor_shows_why(cli_env, capsys):
    assert main(["models", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("atelier: ") and UNSAFE_LOAD_ENV in err and "Traceback" not in err
    assert main(["doctor", "--json"]) == 1
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["torch safe loading"]["ok"] is False
    assert checks["jinja2 version"]["ok"] is True
    assert re.match(r"3\.1\.\d+ \(at least 3\.1\.6\)", checks["jinja2 version"]["detail"])


def test_the_app_refuses_to_start_with_one_message(cli_env):
    clear_resources()
    try:
        app = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    finally:
        clear_resources()
    assert len(app.error) == 1
    assert app.error[0].value.startswith("Atelier cannot start: ")
    assert UNSAFE_LOAD_ENV in app.error[0].value
