"""Which files of a Hub repo are fetched: safe files of one model, chosen from the listing."""

from __future__ import annotations

import pytest

from webapp.errors import ValidationError
from webapp.hub.plan import HubFile, check_repo_id, check_revision, choose_files


def listing(*paths: str) -> list[HubFile]:
    return [HubFile(path, size=10) for path in paths]


def test_a_diffusers_repo_gets_its_fp16_weights_renamed_and_nothing_unsafe():
    files = listing(
        "model_index.json",
        "README.md",
        "v1-5-pruned.safetensors",
        "v1-5-pruned.ckpt",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.non_ema.safetensors",
        "unet/diffusion_pytorch_model.bin",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "vae/diffusion_flax_model.msgpack",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "scheduler/scheduler_config.json",
        "pipeline.py",
    )

    layout, chosen, skipped = choose_files("org/sd", files)

    assert layout == "diffusers"
    targets = {f.destination for f in chosen}
    assert targets == {
        "model_index.json",
        "README.md",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "scheduler/scheduler_config.json",
    }
    unet = next(f for f in chosen if f.destination.startswith("unet/diffusion"))
    assert unet.path == "unet/diffusion_pytorch_model.fp16.safetensors"
    assert {"pipeline.py", "v1-5-pruned.ckpt", "unet/diffusion_pytorch_model.bin"} <= set(skipped)


def test_a_transformers_repo_gets_its_shards_not_a_second_copy_of_the_weights():
    files = listing(
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer_config.json",
        "consolidated.safetensors",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "original/consolidated.00.pth",
        "modeling_custom.py",
    )

    layout, chosen, skipped = choose_files("org/llm", files)

    assert layout == "transformers"
    assert {f.path for f in chosen if f.path.endswith(".safetensors")} == {
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    }
    assert {"tokenizer.model", "model.safetensors.index.json"} <= {f.path for f in chosen}
    assert {
        "consolidated.safetensors",
        "modeling_custom.py",
        "original/consolidated.00.pth",
    } <= set(skipped)


def test_a_sentence_transformers_repo_keeps_its_module_configs_and_not_its_onnx_copies():
    files = listing(
        "config.json",
        "modules.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
        "1_Pooling/config.json",
        "onnx/model.onnx",
        "onnx/config.json",
        "pytorch_model.bin",
    )

    layout, chosen, _ = choose_files("org/embed", files)

    assert layout == "sentence-transformers"
    assert {f.path for f in chosen} == {
        "config.json",
        "modules.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
        "1_Pooling/config.json",
    }


def test_a_lora_repo_is_one_weight_file():
    files = listing("README.md", "pytorch_lora_weights.safetensors", "image.png")

    layout, chosen, _ = choose_files("org/lora", files)

    assert layout == "single-file"
    assert [f.path for f in chosen] == ["README.md", "pytorch_lora_weights.safetensors"]


@pytest.mark.parametrize(
    ("paths", "words"),
    [
        (("config.json", "pytorch_model.bin"), "only pickle weights (pytorch_model.bin)"),
        (("README.md", "model-q4_k_m.gguf"), "GGUF files only"),
        (("README.md", "notes.txt"), "holds no model Atelier can use"),
    ],
)
def test_a_repo_without_safetensors_is_refused_with_what_to_do(paths, words):
    with pytest.raises(ValidationError) as refused:
        choose_files("org/x", listing(*paths))

    assert words in refused.value.message and refused.value.field == "repo_id"


def test_a_pasted_address_becomes_a_repo_id_and_bad_ones_are_refused():
    assert check_repo_id("https://huggingface.co/stabilityai/sd-turbo/tree/main") == (
        "stabilityai/sd-turbo"
    )
    for bad in ("sd-turbo", "a/b/c", "../etc", "org/ name", ""):
        with pytest.raises(ValidationError):
            check_repo_id(bad)
    assert check_revision("") == "main"
    with pytest.raises(ValidationError):
        check_revision("../../x")
