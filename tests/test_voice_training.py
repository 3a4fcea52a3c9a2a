"""Tuning a brand voice in the engine: a short run on tiny-llm learns (its loss and the
held-back perplexity fall), the loss looks at the answers only, a stopped run resumes from
its checkpoint, training gives way to waiting text jobs, and bad bases or examples are
refused with a message that says what to do."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tests.conftest import REPO
from webapp.backends.lora_training import IGNORE, encode
from webapp.engine import ChatMessage, JobStatus, TextRequest
from webapp.engine.factory import build_engine
from webapp.engine.requests import TrainingExample, TrainingRequest
from webapp.errors import ValidationError
from webapp.settings import Settings
from webapp.tuning.presets import TuningSettings
from webapp.tuning.prompts import prompt_messages
from webapp.users import User

# A safety net against a hang, not a measure of speed: a shared, loaded CPU is slow.
WAIT = 600

ADA, BOB = User("ada", "Ada"), User("bob", "Bob")
FAST = TuningSettings(rank=4, alpha=8, learning_rate=3e-3, epochs=1, batch_size=4, max_steps=8)


def examples(count: int, offset: int = 0) -> tuple[TrainingExample, ...]:
    """Short approved texts in one recognisable voice."""
    return tuple(
        TrainingExample(
            prompt_messages(""),
            f"Hey friend! Our kettle number {i} boils in a jiffy. Simple, cheerful, done.",
            f"texts.jsonl, line {i}",
        )
        for i in range(offset, offset + count)
    )


def training(folder: Path, settings: TuningSettings = FAST, **changes) -> TrainingRequest:
    request = TrainingRequest(
        model="tiny-llm",
        train=examples(12),
        held_back=examples(3, offset=100),
        settings=settings,
        folder=str(folder),
        samples=2,
        sample_tokens=8,
    )
    return replace(request, **changes)


@pytest.fixture
def engine(tiny_models_dir, tmp_path):
    settings = Settings(
        models_dir=tiny_models_dir,
        data_dir=tmp_path / "data",
        device="cpu",
        library_dir=REPO / "library",
    )
    built = build_engine(settings)
    yield built
    built.shutdown()


def test_a_short_run_lowers_the_loss_and_the_held_back_perplexity(engine, tmp_path):
    job = engine.submit(training(tmp_path / "run"), ADA)
    result = job.result(WAIT)
    assert result.steps == 8 and len(result.losses) == 8
    assert result.losses[-1] < result.losses[0]
    assert result.perplexity_after < result.perplexity_before
    assert len(result.samples) == 2 and all(s.base != s.tuned for s in result.samples)
    adapter = Path(result.adapter_folder)
    assert sorted(p.suffix for p in adapter.iterdir() if p.suffix != ".md") == [
        ".json",
        ".safetensors",
    ]
    assert not (tmp_path / "run" / "checkpoint").exists()  # a finished run keeps no checkpoint


def test_the_loss_is_on_the_assistant_turn_only(tiny_models_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models_dir / "tiny-llm")
    prompt = [vars(m) for m in prompt_messages("the kettle is fast")]
    encoded = encode(tokenizer, prompt, "Our kettle is quick!")
    asked = tokenizer.apply_chat_template(
        prompt, add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    assert encoded.input_ids[: len(asked)] == list(asked)
    assert encoded.labels[: len(asked)] == [IGNORE] * len(asked)
    learned = [token for token in encoded.labels if token != IGNORE]
    assert tokenizer.decode(learned, skip_special_tokens=True).strip() == "Our kettle is quick!"
    assert len(learned) == len(encoded.input_ids) - len(asked)


def test_a_cancelled_run_resumes_from_its_checkpoint(engine, tmp_path):
    folder = tmp_path / "run"
    slow = replace(FAST, max_steps=12)
    first = engine.submit(training(folder, slow), ADA)
    while first.progress.step < 3:
        assert not first.finished, first.error
        time.sleep(0.005)
    first.cancel(ADA)
    stopped_at = first.progress.step
    deadline = time.time() + WAIT  # the lane saves the step it was in, then stops
    while not (folder / "checkpoint" / "adapter_model.safetensors").is_file():
        assert time.time() < deadline, "no checkpoint after the cancel"
        time.sleep(0.01)
    assert not (folder / "adapter").exists()  # no adapter from a stopped run

    result = engine.submit(training(folder, slow), ADA).result(WAIT)
    assert result.resumed_from >= stopped_at >= 3
    assert result.steps == 12
    assert len(result.losses) == 12  # the losses before the stop are kept
    assert (folder / "adapter" / "adapter_model.safetensors").is_file()


def test_training_yields_to_a_waiting_text_job(engine, tmp_path):
    run = engine.submit(training(tmp_path / "run", replace(FAST, max_steps=60)), ADA)
    while run.progress.step < 1:
        assert not run.finished, run.error
        time.sleep(0.005)
    asked = engine.submit(
        TextRequest("tiny-llm", (ChatMessage("user", "hi"),), max_new_tokens=8), BOB
    )
    asked.result(60)
    step_when_answered = run.progress.step
    assert not run.finished and step_when_answered < 60
    assert run.status == JobStatus.RUNNING
    run.cancel(ADA)


def test_a_gguf_base_is_refused_with_what_to_choose(engine, tmp_path, monkeypatch):
    registry = engine.registry()
    entry = registry.get("tiny-llm")
    monkeypatch.setitem(registry.entries, "tiny-llm", replace(entry, format="gguf"))
    monkeypatch.setattr(engine, "registry", lambda: registry)
    with pytest.raises(ValidationError, match="GGUF file, which cannot be tuned") as refused:
        engine.submit(training(tmp_path / "run"), ADA)
    assert refused.value.field == "model"


def test_an_example_too_long_for_the_model_is_refused_naming_where_it_came_from(engine, tmp_path):
    long = TrainingExample(prompt_messages(""), "word " * 3000, "texts.csv, row 7")
    request = training(tmp_path / "run", train=(*examples(11), long))
    with pytest.raises(ValidationError, match=r"texts.csv, row 7 is [\d,]+ tokens"):
        engine.submit(request, ADA)


def test_a_run_that_does_not_fit_in_memory_says_what_would(engine, tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "memory_budget_bytes", lambda: 1000)
    with pytest.raises(ValidationError, match="needs about .* GB of model memory") as refused:
        engine.submit(training(tmp_path / "run"), ADA)
    assert "unload models" in refused.value.message
