"""`atelier voice …` from a terminal: a dataset checked, a voice tuned and evaluated,
listed, approved by the operator and exported; bad input named with what to do."""

from __future__ import annotations

import json
import zipfile

from tests.test_cli import env  # noqa: F401  (a fixture)
from webapp.cli import main


def run(capsys, *argv):
    code = main(["voice", *argv])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 else captured.err)


def approved(env, count: int):  # noqa: F811
    path = env / "texts.jsonl"
    lines = [
        json.dumps({"text": f"Hey friend! Kettle {i} boils fast. Simple."}) for i in range(count)
    ]
    path.write_text("\n".join(lines))
    return path


def test_check_reports_counts_or_how_many_more_would_help(env, capsys):  # noqa: F811
    code, out = run(capsys, "check", str(approved(env, 12)))
    assert code == 0 and out["examples"] == 12 and out["held_back"] == 2
    code, err = run(capsys, "check", str(approved(env, 3)))
    assert code == 2 and "add at least 7 more" in err


def test_a_voice_is_trained_evaluated_approved_and_exported(env, capsys):  # noqa: F811
    data = str(approved(env, 12))
    code, out = run(capsys, "train", "--base", "tiny-llm", "--data", data, "--name", "Kettle",
                    "--preset", "Light", "--max-steps", "3")  # fmt: skip
    assert code == 0, out
    assert out["status"] == "done" and out["evaluation"]["steps"] == 3
    code, listed = run(capsys, "list")
    assert [(v["voice"], v["version"], v["approved"]) for v in listed] == [("kettle", 1, False)]
    code, evaluated = run(capsys, "eval", "kettle")
    assert (
        evaluated["evaluation"]["perplexity_after"] < evaluated["evaluation"]["perplexity_before"]
    )
    code, approval = run(capsys, "approve", "kettle")
    assert code == 0 and approval["live"] and approval["approved"]
    code, exported = run(capsys, "export", "kettle", "--out", str(env / "kettle.zip"))
    assert code == 0
    names = zipfile.ZipFile(env / "kettle.zip").namelist()
    assert "adapter_model.safetensors" in names and "README.md" in names


def test_a_base_model_that_is_not_a_text_model_is_refused(env, capsys):  # noqa: F811
    code, err = run(capsys, "train", "--base", "tiny-sd", "--data", str(approved(env, 12)),
                    "--name", "Kettle")  # fmt: skip
    assert code == 2 and "tiny-sd" in err and "text" in err
