"""Tiny random-weight models, made offline, in exactly the formats real models use.

`tiny-sd` is a Stable Diffusion pipeline folder (UNet, VAE, CLIP text encoder and tokenizer,
scheduler); `tiny-llm` is a Llama causal-LM folder with a byte-level BPE tokenizer and a
ChatML chat template; `tiny-embed` is a sentence-transformers folder (a BERT encoder with a
WordPiece tokenizer, mean pooling, normalize). All are a few MB, so every loading path runs
as with real weights.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import torch

import webapp.backends  # noqa: F401  (offline, quiet Hugging Face libraries)
from webapp.atomic import write_folder

TINY_SD = "tiny-sd"
TINY_LLM = "tiny-llm"
TINY_EMBED = "tiny-embed"
SEED = 0

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# A small local corpus for the tokenizers: no download, same vocabulary every time.
CORPUS = """
A photograph of a red fox in the snow, soft light, high detail. A product shot of a
white coffee mug on a clean background. Watercolour painting of a harbour at sunrise.
Please summarise this contract in three sentences and list the action items.
Rewrite the following text in a friendly, professional voice for our customers.
The quick brown fox jumps over the lazy dog. Thank you for your email; we will reply soon.
Translate into French, German and Spanish. What is the capital of France? Paris.
0123456789 .,;:!?'"()[]{}-_/+*=<>@#%&
"""


def make_test_models(target: Path) -> dict[str, Path]:
    """Write tiny-sd, tiny-llm and tiny-embed under `target`; returns their folders."""
    target.mkdir(parents=True, exist_ok=True)
    return {
        TINY_SD: write_folder(target / TINY_SD, _save_tiny_sd),
        TINY_LLM: write_folder(target / TINY_LLM, _save_tiny_llm),
        TINY_EMBED: write_folder(target / TINY_EMBED, _save_tiny_embed),
    }


def clip_tokenizer():
    """A CLIP tokenizer over the corpus' characters (no merges): offline, always the same."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "!": 1, "<|endoftext|>": 2}
    for symbol in sorted(set(CORPUS.lower()) - {" ", "\n"}):
        vocab.setdefault(symbol, len(vocab))
        vocab.setdefault(symbol + "</w>", len(vocab))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        return CLIPTokenizer(
            str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77
        )


def save_sd_pipeline(folder: Path, unet, vae, text_encoder, tokenizer) -> None:
    """A Stable Diffusion 1.x pipeline folder around these components."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)


def _save_tiny_sd(folder: Path) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(SEED)
    tokenizer = clip_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=max(len(tokenizer), 100),
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=1,
        )
    )
    save_sd_pipeline(folder, unet, vae, text_encoder, tokenizer)


def tiny_llm_tokenizer() -> Any:
    """A small byte-level BPE tokenizer with a ChatML chat template, trained offline."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([CORPUS] * 4, vocab_size=512, min_frequency=1, special_tokens=specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=1024,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def _save_tiny_llm(folder: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_llm_tokenizer()
    torch.manual_seed(SEED)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        # Wide random weights give varied tokens rather than one repeated token.
        initializer_range=0.3,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def _save_tiny_embed(folder: Path) -> None:
    """A sentence-transformers folder as the Hub ships one: encoder, WordPiece tokenizer,
    modules.json (Transformer, Pooling, Normalize) and the pooling and length configs."""
    import re

    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted(set(re.findall(r"[a-z]+", CORPUS.lower())))
    characters = sorted(set(CORPUS.lower()) - set(" \n"))
    vocab = specials + characters + [f"##{c}" for c in characters] + words
    with tempfile.TemporaryDirectory() as scratch:
        vocab_file = Path(scratch) / "vocab.txt"
        vocab_file.write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
        tokenizer = BertTokenizerFast(str(vocab_file), do_lower_case=True, model_max_length=128)
    torch.manual_seed(SEED)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    modules = [
        {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for i, (path, kind) in enumerate(
            [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
        )
    ]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 64, "do_lower_case": False}), encoding="utf-8"
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}),
        encoding="utf-8",
    )


def make_test_lora(tiny_sd: Path, target: Path, seed: int = SEED) -> Path:
    """A small random LoRA for `tiny-sd`'s UNet, saved as a diffusers LoRA .safetensors."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig, get_peft_model_state_dict

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_sd), local_files_only=True)
    unet = pipe.unet
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "lora_" in name:  # peft starts B at zero (no effect); make it matter
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    target.parent.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        str(target.parent),
        unet_lora_layers=layers,
        weight_name=target.name,
        safe_serialization=True,
    )
    return target


def make_test_safety_checker(target: Path, flag_everything: bool) -> Path:
    """A tiny random Stable Diffusion safety checker whose thresholds flag every image, or
    none (random weights cannot tell; the thresholds decide)."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    def save(folder: Path) -> None:
        torch.manual_seed(SEED)
        config = CLIPConfig(
            text_config={
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_attention_heads": 2,
                "num_hidden_layers": 1,
                "vocab_size": 100,
            },
            vision_config={
                "hidden_size": 16,
                "intermediate_size": 32,
                "num_attention_heads": 2,
                "num_hidden_layers": 1,
                "image_size": 32,
                "patch_size": 8,
            },
            projection_dim=8,
        )
        checker = StableDiffusionSafetyChecker(config)
        threshold = -10.0 if flag_everything else 10.0
        with torch.no_grad():
            checker.concept_embeds_weights.fill_(threshold)
            checker.special_care_embeds_weights.fill_(threshold)
        checker.save_pretrained(folder, safe_serialization=True)
        CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ).save_pretrained(folder)

    return write_folder(target, save)


def make_test_checkpoint(diffusers_folder: Path, target: Path) -> Path:
    """The pipeline in `diffusers_folder` as one original-format (LDM) `.safetensors` file,
    the way single-file checkpoints are shared, so the single-file loader is tested offline."""
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    pipe = StableDiffusionPipeline.from_pretrained(str(diffusers_folder), local_files_only=True)
    layers = pipe.unet.config.layers_per_block
    checkpoint = {}
    for key, tensor in pipe.unet.state_dict().items():
        checkpoint["model.diffusion_model." + _ldm_unet_key(key, layers, pipe.unet)] = tensor
    blocks = len(pipe.vae.config.down_block_types)
    for key, tensor in pipe.vae.state_dict().items():
        ldm_key = _ldm_vae_key(key, blocks)
        if ".mid.attn_1." in ldm_key and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]  # LDM keeps attention projections as 1×1 convs
        checkpoint["first_stage_model." + ldm_key] = tensor
    for key, tensor in pipe.text_encoder.state_dict().items():
        key = key if key.startswith("text_model.") else "text_model." + key
        checkpoint["cond_stage_model.transformer." + key] = tensor
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(target))
    return target


_UNET_DIRECT = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_UNET_RESNET = (
    ("norm1", "in_layers.0"),
    ("conv1", "in_layers.2"),
    ("norm2", "out_layers.0"),
    ("conv2", "out_layers.3"),
    ("time_emb_proj", "emb_layers.1"),
    ("conv_shortcut", "skip_connection"),
)


def _ldm_unet_key(key: str, layers: int, unet) -> str:
    """The inverse of diffusers' `convert_ldm_unet_checkpoint` for an SD 1.x UNet."""
    module, _, name = key.rpartition(".")
    if module in _UNET_DIRECT:
        return f"{_UNET_DIRECT[module]}.{name}"
    parts = key.split(".")
    if parts[0] == "mid_block":
        index = {"resnets": 0 if parts[2] == "0" else 2, "attentions": 1}[parts[1]]
        return f"middle_block.{index}." + _inner(parts[1], parts[3:])
    block, kind, layer = int(parts[1]), parts[2], int(parts[3])
    if parts[0] == "down_blocks":
        if kind == "downsamplers":
            return f"input_blocks.{(block + 1) * (layers + 1)}.0.op.{name}"
        index = block * (layers + 1) + layer + 1
        return f"input_blocks.{index}.{0 if kind == 'resnets' else 1}." + _inner(kind, parts[4:])
    if kind == "upsamplers":
        has_attention = bool(getattr(unet.up_blocks[block], "attentions", None))
        index = block * (layers + 1) + layers
        return f"output_blocks.{index}.{2 if has_attention else 1}.conv.{name}"
    index = block * (layers + 1) + layer
    return f"output_blocks.{index}.{0 if kind == 'resnets' else 1}." + _inner(kind, parts[4:])


def _inner(kind: str, parts: list[str]) -> str:
    """A resnet's or attention's own key inside its LDM block."""
    inner = ".".join(parts)
    if kind == "resnets":
        for diffusers_name, ldm_name in _UNET_RESNET:
            if inner.startswith(diffusers_name + "."):
                return ldm_name + inner[len(diffusers_name) :]
    return inner


_VAE_ATTENTION = (
    ("group_norm", "norm"),
    ("to_q", "q"),
    ("to_k", "k"),
    ("to_v", "v"),
    ("to_out.0", "proj_out"),
)


def _ldm_vae_key(key: str, blocks: int) -> str:
    """The inverse of diffusers' `convert_ldm_vae_checkpoint`."""
    side, rest = key.split(".", 1)
    if side not in ("encoder", "decoder"):
        return key  # quant_conv, post_quant_conv
    parts = rest.split(".")
    if parts[0] == "down_blocks":
        if parts[2] == "downsamplers":
            return f"encoder.down.{parts[1]}.downsample.conv.{parts[-1]}"
        tail = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
        return f"encoder.down.{parts[1]}.block.{parts[3]}.{tail}"
    if parts[0] == "up_blocks":
        ldm_block = blocks - 1 - int(parts[1])
        if parts[2] == "upsamplers":
            return f"decoder.up.{ldm_block}.upsample.conv.{parts[-1]}"
        tail = ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut")
        return f"decoder.up.{ldm_block}.block.{parts[3]}.{tail}"
    if parts[0] == "mid_block" and parts[1] == "resnets":
        tail = ".".join(parts[3:]).replace("conv_shortcut", "nin_shortcut")
        return f"{side}.mid.block_{int(parts[2]) + 1}.{tail}"
    if parts[0] == "mid_block":
        tail = ".".join(parts[3:])
        for diffusers_name, ldm_name in _VAE_ATTENTION:
            if tail.startswith(diffusers_name + "."):
                tail = ldm_name + tail[len(diffusers_name) :]
        return f"{side}.mid.attn_1.{tail}"
    return f"{side}.{rest.replace('conv_norm_out', 'norm_out')}"  # conv_in, conv_out, norm_out
