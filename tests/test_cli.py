import json
import pickle

import pytest

from tests.conftest import REPO
from webapp.cli import main


@pytest.fixture
def env(monkeypatch, tiny_models_dir, tmp_path):
    monkeypatch.setenv("ATELIER_MODELS_DIR", str(tiny_models_dir))
    monkeypatch.setenv("ATELIER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ATELIER_DEVICE", "cpu")
    monkeypatch.setenv("ATELIER_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("ATELIER_LIBRARY_DIR", str(REPO / "library"))
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


def test_models_list_shows_a_renamed_pickle_as_refused_with_the_reason(env, capsys, monkeypatch):
    models = env / "models"
    (models / "loras").mkdir(parents=True)
    (models / "sneaky.safetensors").write_bytes(pickle.dumps({"weight": 1}))
    (models / "loras" / "cut.safetensors").write_bytes(b"\x40" + b"\0" * 7 + b"{}")
    monkeypatch.setenv("ATELIER_MODELS_DIR", str(models))
    code, listing = run_json(capsys, "models", "list", "--json")
    rows = {row["name"]: row for row in listing["models"]}
    assert rows["sneaky"]["status"] == "refused" and "Python pickle" in rows["sneaky"]["problem"]
    assert rows["cut"]["kind"] == "lora" and rows["cut"]["status"] == "broken"
    assert main(["models", "list"]) == 0
    assert "[refused] sneaky.safetensors is a Python pickle" in capsys.readouterr().out


def test_doctor_json_reports_device_models_and_data_dir(env, capsys):
    code, report = run_json(capsys, "doctor", "--json")
    facts = report["facts"]
    assert facts["device"] == "cpu"
    assert facts["models_found"] == {"image": 1, "text": 1, "embedding": 1}
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
    assert set(made) == {"tiny-sd", "tiny-llm", "tiny-embed"}


def test_bench_load_prints_cold_and_warm_figures(env, capsys):
    code, result = run_json(capsys, "bench", "load", "--model", "tiny-llm", "--warm-calls", "50")
    assert code == 0
    assert result["model"] == "tiny-llm"
    assert result["cold_load_s"] > 0
    assert 0 < result["warm_get_median_ms"] < result["cold_load_s"] * 1000


def test_bench_load_of_a_path_is_refused(env, capsys):
    assert main(["bench", "load", "--model", "../../etc"]) == 2
    assert "not a model name" in capsys.readouterr().err


def test_bench_remote_with_nothing_to_measure_says_what_to_name(env, capsys):
    assert main(["bench", "remote", "--image-model", ""]) == 2
    assert "name an --image-model, a --text-url, or both" in capsys.readouterr().err


def test_text_list_shows_tools_and_their_fields(env, capsys):
    assert main(["text", "--list"]) == 0
    out = capsys.readouterr().out
    assert "summarise" in out and "length (choice: one sentence|" in out
    assert "headlines" in out and "variants (number)" in out


def test_text_tool_streams_its_answer_to_stdout(env, capsys):
    code = main(
        [
            "text",
            "summarise",
            "--model",
            "tiny-llm",
            "--input",
            "Notes {{ 7*7 }}",
            "--field",
            "length=one sentence",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip()


def test_text_tool_reads_its_input_from_a_file(env, capsys, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("Meeting on Tuesday.", encoding="utf-8")
    assert main(["text", "proofread", "--model", "tiny-llm", "--input-file", str(notes)]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["text", "poetry", "--input", "x"], "Unknown tool 'poetry'"),
        (["text", "summarise", "--input", "x", "--voice", "pirate"], "Unknown brand voice"),
        (["text", "summarise", "--input", "   "], "Fill in"),
        (["text", "summarise", "--input", "x", "--field", "length"], "key=value"),
        (["text", "summarise", "--input", "x", "--model", "nope"], "No model named 'nope'"),
    ],
)
def test_text_bad_input_gives_one_clear_line(env, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_an_endless_input_file_is_read_only_up_to_the_limit(env, capsys):
    assert main(["text", "summarise", "--input-file", "/dev/zero"]) == 2
    assert "longer than the 200,000 characters" in capsys.readouterr().err


def test_an_out_folder_that_cannot_be_written_gives_one_clear_line(env, capsys):
    argv = ["image", "a fox", "--model", "tiny-sd", "--steps", "2", "--size", "64x64"]
    assert main([*argv, "--out", "/dev/null/x"]) == 2
    err = capsys.readouterr().err
    assert "Cannot write to --out /dev/null/x" in err and "Traceback" not in err


def test_text_binary_input_file_is_refused(env, capsys, tmp_path):
    binary = tmp_path / "photo.bin"
    binary.write_bytes(bytes(range(256)))
    assert main(["text", "summarise", "--input-file", str(binary)]) == 2
    assert "not a UTF-8 text file" in capsys.readouterr().err


def test_image_writes_pngs_and_prints_their_paths_and_parameters(env, capsys, tmp_path):
    code, made = run_json(
        capsys,
        "image",
        "a lighthouse",
        "--model",
        "tiny-sd",
        "--seed",
        "8",
        "--n",
        "2",
        "--steps",
        "3",
        "--size",
        "64x96",
        "--style",
        "watercolour",
        "--out",
        str(tmp_path / "out"),
    )
    assert code == 0
    assert [image["seed"] for image in made["images"]] == [8, 9]
    for image in made["images"]:
        assert image["path"].startswith(str(tmp_path / "out"))
        assert "Size: 64x96" in image["parameters"] and "Steps: 3" in image["parameters"]
    assert made["request"]["prompt"].startswith("watercolour painting of a lighthouse")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["image", "x", "--size", "big"], "must look like 512x768"),
        (["image", "x", "--size", "100x64"], "multiple of 8"),
        (["image", "", "--model", "tiny-sd"], "Fill in"),
        (["image", "x", "--model", "../x"], "not a model name"),
    ],
)
def test_image_bad_input_gives_one_clear_line(env, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
