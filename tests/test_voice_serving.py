"""Tuned voices served from the cached base model: the adapter is switched on per request
(the base is loaded once and answers plain requests as before), and requests in different
voices decoding in one batch each get their own voice."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from tests.conftest import REPO
from webapp.backends import llm
from webapp.engine import ChatMessage, TextRequest
from webapp.engine.factory import build_engine
from webapp.engine.requests import VoiceAdapter
from webapp.settings import Settings
from webapp.users import User

ADA = User("ada", "Ada")


def make_adapter(base: Path, folder: Path, seed: int) -> VoiceAdapter:
    """A LoRA adapter with random (not zero) B matrices: it changes every answer."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=32, target_modules=["q_proj", "v_proj", "up_proj"],
                        init_lora_weights=False, task_type="CAUSAL_LM")  # fmt: skip
    get_peft_model(model, config).save_pretrained(folder, safe_serialization=True)
    return VoiceAdapter(name=f"voice-{seed}", folder=str(folder))


@pytest.fixture(scope="module")
def adapters(tiny_models_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("adapters")
    base = tiny_models_dir / "tiny-llm"
    return make_adapter(base, folder / "a", 1), make_adapter(base, folder / "b", 2)


@pytest.fixture
def engine(tiny_models_dir, tmp_path, monkeypatch):
    loads = []
    load = llm.load_text_model
    monkeypatch.setattr(llm, "load_text_model", lambda *a, **k: loads.append(a) or load(*a, **k))
    settings = Settings(models_dir=tiny_models_dir, data_dir=tmp_path / "data", device="cpu",
                        library_dir=REPO / "library")  # fmt: skip
    built = build_engine(settings)
    built.loads = loads
    yield built
    built.shutdown()


def ask(adapter: VoiceAdapter | None) -> TextRequest:
    return TextRequest(
        "tiny-llm",
        (ChatMessage("user", "Tell me about the kettle."),),
        max_new_tokens=12,
        temperature=0.0,
        adapter=adapter,
    )


def test_a_voice_is_switched_on_per_request_without_reloading_the_base(engine, adapters):
    plain = engine.submit(ask(None), ADA).result(60).text
    voiced = engine.submit(ask(adapters[0]), ADA).result(60).text
    again = engine.submit(ask(None), ADA).result(60).text
    assert voiced != plain
    assert again == plain  # the base answers as before once a voice is attached
    assert len(engine.loads) == 1


def test_requests_in_different_voices_in_one_batch_each_get_their_own(engine, adapters):
    voices = [adapters[0], None, adapters[1]]
    alone = [engine.submit(ask(voice), ADA).result(60).text for voice in voices]
    assert len(set(alone)) == 3
    # Submitted together, they decode in one batch (the later ones join at the next token).
    together = [engine.submit(ask(voice), ADA) for voice in voices]
    assert [job.result(60).text for job in together] == alone
    assert together[2].started_at < together[0].finished_at  # they did share the batch
    assert len(engine.loads) == 1


def test_a_voice_whose_files_are_gone_fails_that_request_alone(engine, adapters, tmp_path):
    gone = VoiceAdapter(name="voice-gone", folder=str(tmp_path / "nowhere"))
    failed = engine.submit(ask(gone), ADA)
    fine = engine.submit(ask(adapters[0]), ADA)
    assert fine.result(60).text
    failed.wait(60)
    assert "adapter files are missing" in failed.error
