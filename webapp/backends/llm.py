"""Causal language models (transformers folders and GGUF files) and embedding models."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class EmbeddingModel:
    model: Any
    tokenizer: Any


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
    return EmbeddingModel(model=model, tokenizer=tokenizer)
