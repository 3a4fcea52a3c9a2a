import json

import pytest

from webapp.cli import main


@pytest.fixture
def env(monkeypatch, tiny_models_dir, tmp_path):
    monkeypatch.setenv("ATELIER_MODELS_DIR", str(tiny_models_dir))
    monkeypatch.setenv("ATELIER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ATELIER_DEVICE", "cpu")
    monkeypatch.setenv("ATELIER_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "none.toml").write_text("")
    return tmp_path


def run_json(capsys, *argv):
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_models_list_json_shows_name_kind_format_family_size_license(env, capsys):
    code, listing = run_json(capsys, "models", "list", "--json")
    assert code == 0
    rows = {row["name"]: row for row in listing["models"]}
    assert rows["tiny-sd"]["kind"] == "image"
    assert rows["tiny-llm"]["family"] == "llama"
    assert rows["tiny-llm"]["license"] == "Apache-2.0"
    assert rows["tiny-sd"]["size_bytes"] > 0


def test_models_list_table_for_people(env, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny-sd" in out and "diffusers" in out


def test_doctor_json_reports_device_models_and_data_dir(env, capsys):
    code, report = run_json(capsys, "doctor", "--json")
    facts = report["facts"]
    assert facts["device"] == "cpu"
    assert facts["models_found"] == {"image": 1, "text": 1, "embedding": 0}
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["data dir"]["ok"] is True
    assert (env / "data").is_dir()
    # The test dir has no embedded model: doctor says how to fix that and fails.
    assert checks["default text model"]["ok"] is False
    assert "prepare-default-model" in checks["default text model"]["advice"]
    assert code == 1


def test_bad_setting_stops_with_one_message(env, capsys, monkeypatch):
    monkeypatch.setenv("ATELIER_DTYPE", "half")
    assert main(["doctor"]) == 2
    err = capsys.readouterr().err
    assert "ATELIER_DTYPE='half' is not allowed" in err
    assert "Traceback" not in err


def test_make_test_models_writes_loadable_folders(env, capsys, tmp_path):
    code, made = run_json(capsys, "make-test-models", str(tmp_path / "fresh"))
    assert code == 0
    assert (tmp_path / "fresh" / "tiny-sd" / "model_index.json").is_file()
    assert (tmp_path / "fresh" / "tiny-llm" / "model.safetensors").is_file()
    assert set(made) == {"tiny-sd", "tiny-llm"}


def test_bench_load_prints_cold_and_warm_figures(env, capsys):
    code, result = run_json(capsys, "bench", "load", "--model", "tiny-llm", "--warm-calls", "50")
    assert code == 0
    assert result["model"] == "tiny-llm"
    assert result["cold_load_s"] > 0
    assert 0 < result["warm_get_median_ms"] < result["cold_load_s"] * 1000


def test_bench_load_of_a_path_is_refused(env, capsys):
    assert main(["bench", "load", "--model", "../../etc"]) == 2
    assert "not a model name" in capsys.readouterr().err
