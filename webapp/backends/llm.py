"""Causal language models (transformers folders and GGUF files) and embedding models."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

from webapp.registry import ModelEntry

DEFAULT_CONTEXT_LENGTH = 2048


@dataclass
class TextModel:
    model: Any
    tokenizer: Any

    @property
    def context_length(self) -> int:
        length = getattr(self.model.config, "max_position_embeddings", None)
        return int(length or DEFAULT_CONTEXT_LENGTH)


POOLING_MODES = ("mean", "cls", "max")
DEFAULT_EMBEDDING_LENGTH = 512


@dataclass
class EmbeddingModel:
    model: Any
    tokenizer: Any
    # From the sentence-transformers files: how many tokens a text is read up to, and how
    # the token vectors become one (mean, cls or max).
    max_length: int = DEFAULT_EMBEDDING_LENGTH
    pooling: str = "mean"


def _pretrained_args(entry: ModelEntry) -> tuple[str, dict[str, Any]]:
    """Where from_pretrained reads the model, and the arguments its format needs."""
    common = {"local_files_only": True, "trust_remote_code": False}
    if entry.format == "gguf":
        return str(entry.path.parent), {**common, "gguf_file": entry.path.name}
    return str(entry.path), common


def load_text_model(
    entry: ModelEntry, device: torch.device, dtype: torch.dtype, allow_pickle: bool = False
) -> TextModel:
    where, args = _pretrained_args(entry)
    tokenizer = AutoTokenizer.from_pretrained(where, **args)
    weights = {} if entry.format == "gguf" else {"use_safetensors": None if allow_pickle else True}
    model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **args, **weights)
    model.to(device).eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return TextModel(model=model, tokenizer=tokenizer)


def load_embedding_model(
    entry: ModelEntry, device: torch.device, dtype: torch.dtype, allow_pickle: bool = False
) -> EmbeddingModel:
    where, args = _pretrained_args(entry)
    tokenizer = AutoTokenizer.from_pretrained(where, **args)
    model = AutoModel.from_pretrained(
        where, dtype=dtype, use_safetensors=None if allow_pickle else True, **args
    )
    model.to(device).eval()
    max_length, pooling = _sentence_transformers_config(entry.path, model.config)
    return EmbeddingModel(model=model, tokenizer=tokenizer, max_length=max_length, pooling=pooling)


def _sentence_transformers_config(folder: Path, config: Any) -> tuple[int, str]:
    """The longest input (sentence_bert_config.json, else the model's positions) and the
    pooling (the first 1_Pooling-style folder modules.json names, else mean)."""
    longest = getattr(config, "max_position_embeddings", None) or DEFAULT_EMBEDDING_LENGTH
    settings = _json_object(folder / "sentence_bert_config.json")
    length = settings.get("max_seq_length")
    if isinstance(length, int) and 0 < length <= longest:
        longest = length
    pooling = "mean"
    modules = _json_object(folder / "modules.json", default=[])
    for module in modules if isinstance(modules, list) else []:
        if isinstance(module, dict) and str(module.get("type", "")).endswith("Pooling"):
            options = _json_object(folder / str(module.get("path", "")) / "config.json")
            chosen = [m for m in POOLING_MODES if options.get(f"pooling_mode_{m}_tokens")]
            pooling = "cls" if options.get("pooling_mode_cls_token") else (chosen or ["mean"])[0]
            break
    return int(longest), pooling


def _json_object(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {} if default is None else default
