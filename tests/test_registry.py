import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from webapp.embedded import packaged_gguf
from webapp.errors import ModelLoadError, ModelNotFound, ModelRefused, ValidationError
from webapp.model_entry import BROKEN, READY, REFUSED, check_model_name
from webapp.registry import discover, lora_names, lora_path
from webapp.settings import Settings


def scan(models_dir, **overrides):
    return discover(Settings(models_dir=models_dir, **overrides))


def write_checkpoint(path, keys):
    save_file({key: torch.zeros(2) for key in keys}, str(path))


def test_tiny_models_are_discovered_with_kind_format_and_family(tiny_models_dir):
    registry = scan(tiny_models_dir)
    sd, llm = registry.get("tiny-sd"), registry.get("tiny-llm")
    assert (sd.kind, sd.format, sd.family) == ("image", "diffusers", "sd15")
    assert (llm.kind, llm.format, llm.family) == ("text", "transformers", "llama")
    assert sd.size_bytes > 100_000 and llm.size_bytes > 100_000


def test_catalog_sets_display_name_description_and_license(tiny_models_dir):
    entry = scan(tiny_models_dir).get("tiny-sd")
    assert entry.display_name == "Tiny SD (test model)"
    assert entry.license == "Apache-2.0"
    assert "tests only" in entry.description


def test_gguf_file_is_a_text_model_with_its_architecture(tmp_path):
    os.symlink(packaged_gguf(), tmp_path / "smol.gguf")
    entry = scan(tmp_path).get("smol")
    assert (entry.kind, entry.format, entry.family) == ("text", "gguf", "llama")


@pytest.mark.parametrize(
    ("name", "key", "family"),
    [
        ("dreamy-v1", "cond_stage_model.transformer.text_model.embeddings.x", "sd15"),
        ("base-v2", "cond_stage_model.model.transformer.resblocks.0.x", "sd2"),
        ("xl-base", "conditioner.embedders.1.model.transformer.x", "sdxl"),
        ("sdxl-turbo-1", "conditioner.embedders.1.model.transformer.x", "sdxl-turbo"),
    ],
)
def test_single_file_checkpoint_family_comes_from_its_keys(tmp_path, name, key, family):
    write_checkpoint(tmp_path / f"{name}.safetensors", [key, "model.diffusion_model.out.0.w"])
    entry = scan(tmp_path).get(name)
    assert (entry.kind, entry.format, entry.family) == ("image", "single-file", family)


def test_lora_like_safetensors_at_top_level_is_reported_not_used(tmp_path):
    write_checkpoint(tmp_path / "style.safetensors", ["lora_unet_down.alpha"])
    entry = scan(tmp_path).entries["style"]
    assert entry.status == BROKEN
    assert "loras/" in entry.problem


def test_truncated_safetensors_is_broken_with_its_cause(tmp_path):
    path = tmp_path / "cut.safetensors"
    write_checkpoint(path, ["model.diffusion_model.x"])
    path.write_bytes(path.read_bytes()[:40])
    registry = scan(tmp_path)
    assert registry.entries["cut"].status == BROKEN
    with pytest.raises(ModelLoadError, match="cut.safetensors is cut short"):
        registry.get("cut")


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth", ".bin"])
def test_pickle_weights_are_refused_with_the_reason(tmp_path, suffix):
    (tmp_path / f"old-model{suffix}").write_bytes(b"\x80\x04not really")
    registry = scan(tmp_path)
    assert registry.entries["old-model"].status == REFUSED
    with pytest.raises(ModelRefused) as caught:
        registry.get("old-model")
    assert "arbitrary code" in caught.value.message
    assert "ATELIER_ALLOW_PICKLE" in caught.value.message


def test_admin_setting_allows_pickle_weights(tmp_path):
    (tmp_path / "old-model.ckpt").write_bytes(b"x")
    assert scan(tmp_path, allow_pickle=True).entries["old-model"].status == READY


def test_transformers_folder_with_only_pickle_weights_is_refused(models_dir):
    folder = models_dir / "tiny-llm"
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    assert scan(models_dir).entries["tiny-llm"].status == REFUSED


def test_diffusers_folder_missing_a_component_is_broken(models_dir):
    for weights in (models_dir / "tiny-sd" / "vae").glob("*.safetensors"):
        weights.unlink()
    entry = scan(models_dir).entries["tiny-sd"]
    assert entry.status == BROKEN
    assert "'vae'" in entry.problem


def test_corrupt_config_is_broken_not_a_crash(models_dir):
    (models_dir / "tiny-llm" / "config.json").write_text("{not json")
    (models_dir / "tiny-sd" / "model_index.json").write_text("[1, 2")
    registry = scan(models_dir)
    assert registry.entries["tiny-llm"].status == BROKEN
    assert registry.entries["tiny-sd"].status == BROKEN


def test_folder_without_tokenizer_is_broken(models_dir):
    (models_dir / "tiny-llm" / "tokenizer.json").unlink()
    assert "tokenizer" in scan(models_dir).entries["tiny-llm"].problem


def test_sentence_embedding_folder_is_an_embedding_model(tmp_path):
    folder = tmp_path / "minilm"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (folder / "modules.json").write_text("[]")
    (folder / "tokenizer.json").write_text("{}")
    write_checkpoint(folder / "model.safetensors", ["embeddings.word_embeddings.weight"])
    entry = scan(tmp_path).get("minilm")
    assert (entry.kind, entry.format, entry.family) == (
        "embedding",
        "sentence-transformers",
        "bert",
    )


@pytest.mark.parametrize("name", ["../tiny-sd", "/etc/passwd", "a b", "..", ".hidden", "x/y", ""])
def test_names_that_are_paths_or_odd_are_rejected(name):
    with pytest.raises(ValidationError) as caught:
        check_model_name(name)
    assert caught.value.field == "model"


def test_unknown_model_lists_what_is_available(tiny_models_dir):
    with pytest.raises(ModelNotFound, match="Available: ") as refused:
        scan(tiny_models_dir).get("sd-xl-base")
    available = refused.value.args[0].split("Available: ")[1].rstrip(".").split(", ")
    assert sorted(available) == ["tiny-embed", "tiny-llm", "tiny-sd"]


def test_badly_named_folder_is_reported_and_skipped(models_dir):
    (models_dir / "tiny-llm").rename(models_dir / "my model")
    registry = scan(models_dir)
    assert "my model" not in registry.entries
    assert any("my model" in problem for problem in registry.problems)


def test_broken_catalog_is_a_problem_not_a_crash(models_dir):
    (models_dir / "catalog.toml").write_text("[models\n")
    registry = scan(models_dir)
    assert registry.get("tiny-sd").display_name == "tiny-sd"
    assert any("catalog.toml" in problem for problem in registry.problems)


def test_missing_models_dir_is_a_problem(tmp_path):
    registry = scan(tmp_path / "nowhere")
    assert not registry.entries
    assert "ATELIER_MODELS_DIR" in registry.problems[0]


def test_a_pickle_named_safetensors_is_refused_even_where_pickles_are_allowed(tmp_path):
    (tmp_path / "sneaky.safetensors").write_bytes(pickle.dumps({"weight": [1.0]}))
    for allow in (False, True):
        entry = scan(tmp_path, allow_pickle=allow).entries["sneaky"]
        assert entry.status == REFUSED
        assert "Python pickle" in entry.problem and str(tmp_path) not in entry.problem


def test_a_torch_checkpoint_named_gguf_is_refused(tmp_path):
    torch.save({"weight": torch.ones(2)}, tmp_path / "chat.gguf")
    entry = scan(tmp_path).entries["chat"]
    assert entry.status == REFUSED and "zip archive" in entry.problem


def test_a_cut_weight_file_inside_a_diffusers_folder_breaks_the_model(models_dir):
    unet = models_dir / "tiny-sd" / "unet" / "diffusion_pytorch_model.safetensors"
    unet.write_bytes(unet.read_bytes()[:-10])
    entry = scan(models_dir).entries["tiny-sd"]
    assert entry.status == BROKEN
    assert entry.problem.startswith("in unet/: diffusion_pytorch_model.safetensors is cut short")


def test_a_pickle_in_place_of_a_transformers_weight_file_is_refused(models_dir):
    (models_dir / "tiny-llm" / "model.safetensors").write_bytes(pickle.dumps({"w": 1}))
    entry = scan(models_dir).entries["tiny-llm"]
    assert entry.status == REFUSED and entry.problem.startswith("model.safetensors is a Python")


def test_loras_are_listed_with_their_state_and_only_sound_ones_are_offered(models_dir, tmp_path):
    loras = models_dir / "loras"
    loras.mkdir()
    write_checkpoint(loras / "good.safetensors", ["lora_unet_down.alpha"])
    os.symlink(loras / "good.safetensors", loras / "alias.safetensors")
    write_checkpoint(loras / "cut.safetensors", ["lora_unet_down.alpha"])
    (loras / "cut.safetensors").write_bytes((loras / "cut.safetensors").read_bytes()[:-3])
    (loras / "evil.safetensors").write_bytes(pickle.dumps({"w": 1}))
    (loras / "old.pt").write_bytes(pickle.dumps({"w": 1}))
    write_checkpoint(tmp_path / "outside.safetensors", ["lora_unet_down.alpha"])
    os.symlink(tmp_path / "outside.safetensors", loras / "linked.safetensors")
    os.mkfifo(loras / "pipe.safetensors")

    registry = scan(models_dir)
    assert {entry.name: entry.status for entry in registry.loras.values()} == {
        "alias": READY,
        "cut": BROKEN,
        "evil": REFUSED,
        "good": READY,
        "linked": REFUSED,
        "old": REFUSED,
    }
    assert "links outside the models dir" in registry.loras["linked"].problem
    assert [e.name for e in registry.listing()][-6:] == sorted(registry.loras)
    assert lora_names(models_dir) == ["alias", "good"]
    assert lora_path(models_dir, "good") == (loras / "good.safetensors").resolve()
    with pytest.raises(ValidationError, match="'evil' cannot be used: evil.safetensors is a Py"):
        lora_path(models_dir, "evil")
    with pytest.raises(ValidationError, match="Unknown LoRA") as caught:
        lora_path(models_dir, "../tiny-llm/model")
    assert caught.value.field == "loras"
    with pytest.raises(ModelNotFound):
        registry.get("good")  # a LoRA is not a model


@pytest.mark.parametrize("name", ["%2e%2e", "..\\tiny-sd", "tiny\x00sd", "tiny-sd/", "~root"])
def test_model_names_carrying_encoded_or_odd_characters_are_rejected(name):
    with pytest.raises(ValidationError):
        check_model_name(name)
