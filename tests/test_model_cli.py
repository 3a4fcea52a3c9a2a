"""`atelier models install | import | remove | installs` against the fake Hub."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO as REPO_ROOT
from tests.hub_fixtures import TOKEN, start_hub
from webapp.cli import main


@pytest.fixture
def hub(tiny_models_dir, tmp_path):
    with start_hub(tiny_models_dir, tmp_path / "repos") as running:
        yield running


@pytest.fixture
def env(monkeypatch, models_dir, tmp_path, hub):
    monkeypatch.setenv("ATELIER_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("ATELIER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ATELIER_DEVICE", "cpu")
    monkeypatch.setenv("ATELIER_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("ATELIER_LIBRARY_DIR", str(REPO_ROOT / "library"))
    monkeypatch.delenv("ATELIER_HF_ENDPOINT", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)  # the mirror, as the Hub's own variable says
    monkeypatch.delenv("HF_TOKEN", raising=False)
    (tmp_path / "none.toml").write_text("")
    return models_dir


def test_install_from_the_mirror_named_by_hf_endpoint_prints_json(env, capsys, hub):
    code = main(["models", "install", "test-org/little-llm", "--name", "cli-llm", "--json"])

    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "done" and result["name"] == "cli-llm"
    assert (env / "cli-llm" / "model.safetensors").is_file()
    assert any(path.startswith("/api/models/test-org/little-llm") for _, path, _, _ in hub.log)


def test_install_of_a_gated_repo_takes_the_token_from_hf_token_only(env, capsys, hub, monkeypatch):
    code = main(["models", "install", "test-org/gated-llm", "--accept-license"])
    assert code == 2
    assert "gated" in capsys.readouterr().err

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["models", "install", "test-org/gated-llm", "--accept-license"]) == 0
    out, err = capsys.readouterr()
    assert "Installed gated-llm" in out and TOKEN not in out + err


def test_install_without_accepting_a_restrictive_licence_is_refused(env, capsys):
    code = main(["models", "install", "test-org/lcm-lora"])

    assert code == 2
    err = capsys.readouterr().err
    assert "openrail++" in err and "accept" in err
    assert not (env / "loras" / "lcm-lora.safetensors").exists()


def test_import_then_remove_from_the_terminal(env, capsys, tiny_models_dir, monkeypatch):
    monkeypatch.setenv("ATELIER_IMPORT_ROOTS", str(tiny_models_dir))

    assert main(["models", "import", str(tiny_models_dir / "tiny-llm"), "--name", "copy"]) == 0
    assert "Imported copy: a text model" in capsys.readouterr().out
    assert main(["models", "remove", "copy"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert main(["models", "remove", "copy", "--yes"]) == 0
    assert not (env / "copy").exists()


def test_installs_lists_what_was_installed(env, capsys):
    assert main(["models", "install", "test-org/little-sd", "--json"]) == 0
    capsys.readouterr()

    assert main(["models", "installs", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(row["name"], row["status"]) for row in listed] == [("little-sd", "done")]


def test_bench_install_measures_against_snapshot_download_in_the_same_run(env, capsys):
    code = main(["bench", "install", "--megabytes", "4", "--shards", "2", "--repeats", "1"])

    assert code == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["repo"]["files"] == 5 and figures["repo"]["bytes"] > 4 * 10**6
    assert len(figures["baseline_snapshot_download_s"]) == len(figures["atelier_install_s"]) == 1
    assert figures["speed_ratio"] == pytest.approx(
        figures["baseline_median_s"] / figures["atelier_median_s"], rel=0.01
    )
    assert 0 <= figures["progress"]["share_of_install_time"] < 1


def test_doctor_says_where_installs_come_from_and_which_recommended_models_are_missing(
    env, capsys, hub, monkeypatch
):
    monkeypatch.setenv("ATELIER_IMPORT_ROOTS", str(env / "no-such-folder"))
    main(["doctor", "--json"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}

    assert checks["model hub"]["detail"] == f"installs come from {hub.url}"
    recommended = checks["recommended models"]["detail"]
    assert "not installed: Stable Diffusion 1.5, SDXL base 1.0" in recommended
    assert not checks["import folders"]["ok"] and not checks["import folders"]["required"]
    assert "no-such-folder" in checks["import folders"]["advice"]
