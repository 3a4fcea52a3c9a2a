"""Stable Diffusion pipelines from diffusers folders and single-file checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

from webapp.errors import ModelLoadError
from webapp.registry import ModelEntry

SINGLE_FILE_PIPELINES = {
    "sd15": StableDiffusionPipeline,
    "sd2": StableDiffusionPipeline,
    "sd-turbo": StableDiffusionPipeline,
    "sdxl": StableDiffusionXLPipeline,
    "sdxl-turbo": StableDiffusionXLPipeline,
}


def load_pipeline(
    entry: ModelEntry,
    device: torch.device,
    dtype: torch.dtype,
    allow_pickle: bool = False,
    config_folder: Path | None = None,
) -> Any:
    if entry.format == "single-file":
        pipe = _load_single_file(entry, dtype, config_folder)
    else:
        pipe = DiffusionPipeline.from_pretrained(
            str(entry.path),
            torch_dtype=dtype,
            local_files_only=True,
            use_safetensors=None if allow_pickle else True,
        )
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _load_single_file(entry: ModelEntry, dtype: torch.dtype, config_folder: Path | None) -> Any:
    """Offline single-file loading borrows the configs of an installed folder of its family."""
    pipeline_class = SINGLE_FILE_PIPELINES.get(entry.family)
    if pipeline_class is None:
        raise ModelLoadError(f"{entry.name}: unknown checkpoint family {entry.family!r}.")
    if config_folder is None:
        raise ModelLoadError(
            f"{entry.name} is a single-file {entry.family} checkpoint. Loading it offline needs "
            f"the configuration of a diffusers folder of the same family ({entry.family}) in the "
            "models dir: copy one there (its weights are not used)."
        )
    return pipeline_class.from_single_file(
        str(entry.path), config=str(config_folder), torch_dtype=dtype, local_files_only=True
    )
