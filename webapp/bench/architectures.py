"""Full-size architectures with random weights, for speed measurements without downloads
(compute does not depend on weight values): SD 1.5 and Llama-3-8B, saved as normal model
folders so the engine loads them like real ones."""

from __future__ import annotations

from pathlib import Path

import torch

from webapp.atomic import write_folder

ARCHITECTURES = ("sd15", "llama3-8b")


def make_bench_model(architecture: str, models_dir: Path) -> Path:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if architecture == "sd15":
        return write_folder(models_dir / "sd15-random", lambda d: _save_sd15(d, device))
    if architecture == "llama3-8b":
        return write_folder(models_dir / "llama3-8b-random", lambda d: _save_llama(d, device))
    raise ValueError(f"unknown architecture {architecture!r}: use one of {ARCHITECTURES}")


def _save_sd15(folder: Path, device: torch.device) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from webapp.testmodels import clip_tokenizer, save_sd_pipeline

    torch.manual_seed(0)
    with device:
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            block_out_channels=[128, 256, 512, 512],
            layers_per_block=2,
            latent_channels=4,
            sample_size=512,
            scaling_factor=0.18215,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                hidden_size=768,
                intermediate_size=3072,
                num_attention_heads=12,
                num_hidden_layers=12,
                max_position_embeddings=77,
                vocab_size=49408,
                hidden_act="quick_gelu",
                projection_dim=768,
            )
        )
    save_sd_pipeline(folder, unet.half(), vae.half(), text_encoder.half(), clip_tokenizer())


def _save_llama(folder: Path, device: torch.device) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from webapp.testmodels import tiny_llm_tokenizer

    # The tiny model's tokenizer and chat template; the 8B architecture's weights.
    tiny_llm_tokenizer().save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=8192,
        rope_theta=500000.0,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    with device:
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
