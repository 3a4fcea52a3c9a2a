"""Adding a model to the models dir: checked where it waits, then moved in whole.

A new model (a verified download, a copy of an imported folder or file, an upload) waits in
a dot folder of the models dir, under the name it will have. It is judged there exactly as
discovery would judge it (format, family, every weight file's header and shapes); only a
ready model is moved in, by one rename on the same disk, so the models dir never shows
half a model and an installed model is never overwritten.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from webapp.errors import ValidationError
from webapp.hub.plan import RepoPlan, is_safe_file
from webapp.model_entry import LORA_DIR, ModelEntry, check_model_name
from webapp.model_inspection import inspect_candidate

MODEL_SUFFIXES = (".safetensors", ".gguf")


def check_new_name(models_dir: Path, name: str, field: str = "name") -> str:
    """A valid model name that no installed model or LoRA uses."""
    try:
        check_model_name(name)
    except ValidationError as error:
        raise ValidationError(error.message, field=field) from None
    taken = [
        models_dir / name,
        *(models_dir / f"{name}{suffix}" for suffix in MODEL_SUFFIXES),
        models_dir / LORA_DIR / f"{name}.safetensors",
    ]
    if any(path.exists() for path in taken):
        raise ValidationError(
            f"A model named {name!r} is already installed. Choose another name, or delete "
            "the installed one first.",
            field=field,
        )
    return name


def arrange_download(files: Path, plan: RepoPlan, waiting: Path, name: str) -> Path:
    """huggingface_hub's download folder as the model it holds, in `waiting`, named `name`:
    its bookkeeping dropped, fp16 variants under their plain names, a single-file repo as
    its one weight file."""
    shutil.rmtree(files / ".cache", ignore_errors=True)
    waiting.mkdir(parents=True, exist_ok=True)
    if plan.layout == "single-file":
        weights = next(f for f in plan.files if f.path.endswith(".safetensors"))
        target = waiting / f"{name}.safetensors"
        (files / weights.path).rename(target)
        return target
    for f in plan.files:
        if f.destination != f.path:
            (files / f.path).rename(files / f.destination)
    target = waiting / name
    files.rename(target)
    return target


def copy_candidate(source: Path, waiting: Path, name: str) -> tuple[Path, list[str]]:
    """A copy of an imported folder or file in `waiting`, named `name`, holding only safe
    files (weights in safetensors or GGUF, configs, tokenizers); the files left out."""
    waiting.mkdir(parents=True, exist_ok=True)
    if source.is_file():
        target = waiting / f"{name}{source.suffix.lower()}"
        shutil.copyfile(source, target)
        return target, []
    target, skipped = waiting / name, []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source).as_posix()
        if path.is_symlink() or not path.is_file():
            continue
        if not is_safe_file(relative):
            skipped.append(relative)
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / relative)
    return target, skipped


def judge(candidate: Path) -> ModelEntry:
    """The candidate as discovery sees it, or a ValidationError that says why it cannot be
    added."""
    entry = inspect_candidate(candidate)
    if entry is None:
        raise ValidationError(
            f"{candidate.name} is not a model Atelier can use: give a diffusers folder (with "
            "model_index.json), a transformers or sentence-transformers folder (with "
            "config.json), a Stable Diffusion .safetensors checkpoint, a LoRA .safetensors "
            "file or a .gguf file.",
            field="source",
        )
    if not entry.ready:
        raise ValidationError(f"{candidate.name} cannot be added: {entry.problem}", field="source")
    if entry.kind == "safety":
        raise ValidationError(
            f"{candidate.name} is the safety checker, not a model for people to use.",
            field="source",
        )
    return entry


def move_in(candidate: Path, entry: ModelEntry, models_dir: Path) -> Path:
    """One rename into the models dir (a LoRA into its loras folder); never over a model."""
    folder = models_dir / LORA_DIR if entry.kind == "lora" else models_dir
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / candidate.name
    check_new_name(models_dir, entry.name)
    if candidate.is_file():
        os.link(candidate, destination)  # fails if the name was taken meanwhile
        candidate.unlink()
    else:
        os.rename(candidate, destination)
    return destination
