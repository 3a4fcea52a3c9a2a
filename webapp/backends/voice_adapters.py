"""Tuned voices served from the cached base model: LoRA adapters attached by name, off by
default, and switched on per row of a batch (PEFT's mixed-adapter forward), so requests
in different voices, and none, share one forward pass and the base is never reloaded."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from safetensors.torch import load_file

from webapp.errors import ModelLoadError

BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
SAVED_PREFIX = "base_model.model."


def attached(model: Any) -> set[str]:
    return set(getattr(model, "_atelier_adapters", ()))


def attach(model: Any, name: str, folder: Path) -> None:
    """Load the adapter in `folder` into `model` as `name` (once), leaving every adapter
    off for ordinary forward passes (the document lane and plain requests see the base)."""
    if name in attached(model):
        return
    weights, config_file = folder / ADAPTER_WEIGHTS, folder / ADAPTER_CONFIG
    if not weights.is_file() or not config_file.is_file():
        raise ModelLoadError(
            f"The tuned voice's adapter files are missing ({folder.name}). Tell your Atelier "
            "admin: roll the voice back to a version that has them.",
            field="voice",
        )
    options = json.loads(config_file.read_text(encoding="utf-8"))
    known = set(LoraConfig.__dataclass_fields__)
    config = LoraConfig(**{k: v for k, v in options.items() if k in known})
    config.inference_mode = True
    with warnings.catch_warnings():  # "multiple adapters in the model": that is the point
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        inject_adapter_in_model(config, model, adapter_name=name)
    saved = load_file(str(weights), device=str(model.device))
    # Saved from a PeftModel, whose keys start with its wrappers' names.
    state = {key.removeprefix(SAVED_PREFIX): value for key, value in saved.items()}
    loaded = set_peft_model_state_dict(model, state, adapter_name=name)
    if loaded.unexpected_keys:
        raise ModelLoadError(
            f"The tuned voice's adapter ({folder.name}) does not fit this base model "
            f"({len(loaded.unexpected_keys)} weights have no place in it). Tell your "
            "Atelier admin.",
            field="voice",
        )
    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.set_adapter([])  # off unless a row asks for it
            for parameter in module.parameters():
                parameter.requires_grad_(False)
    model.eval()  # the new layers' dropout too
    model._atelier_adapters = attached(model) | {name}


@contextmanager
def rows_use(model: Any, names: Sequence[str | None]) -> Iterator[None]:
    """Forward passes inside use adapter `names[i]` for row i (None: the base)."""
    if not any(names):
        yield
        return
    missing = {name for name in names if name} - attached(model)
    if missing:
        raise ValueError(f"adapters not attached: {sorted(missing)}")
    chosen = [name or BASE for name in names]

    def hook(module: Any, args: Any, kwargs: dict) -> tuple[Any, dict]:
        return args, {**kwargs, "adapter_names": chosen}

    handles = [
        module.register_forward_pre_hook(hook, with_kwargs=True)
        for module in model.modules()
        if isinstance(module, LoraLayer)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
