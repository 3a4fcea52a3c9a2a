"""What a model folder or file is, judged from its small files (configs, and the header of
every weight file, checked by its content in `webapp.model_files`) without loading weights:
its kind, format and family, or why it is refused or broken."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from webapp.errors import ModelLoadError, ModelRefused
from webapp.model_entry import BROKEN, LORA_DIR, REFUSED, ModelEntry
from webapp.model_files import check_weights
from webapp.settings import env_name

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SAFETY_CHECKER = "StableDiffusionSafetyChecker"
EMBEDDING_MARKERS = ("modules.json", "config_sentence_transformers.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")

PICKLE_REASON = (
    "uses a pickle weight format ({files}), which can run arbitrary code when loaded. "
    "Convert it to .safetensors, or an admin can set {setting}=true if it comes from a "
    "source you trust."
)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def model_entry(path: Path, kind: str, fmt: str, family: str, **extra: Any) -> ModelEntry:
    name = path.stem if path.is_file() else path.name
    return ModelEntry(
        name=name, kind=kind, format=fmt, family=family, path=path, size_bytes=_size(path), **extra
    )


def _broken(entry: ModelEntry, problem: str) -> ModelEntry:
    return replace(entry, status=BROKEN, problem=problem)


def refuse_pickle(entry: ModelEntry, files: Iterable[Path]) -> ModelEntry:
    names = ", ".join(sorted({f.name for f in files}))
    reason = PICKLE_REASON.format(files=names, setting=env_name("allow_pickle"))
    return replace(entry, status=REFUSED, problem=reason)


def checked(entry: ModelEntry, files: Iterable[Path], root: Path) -> ModelEntry:
    """The entry, refused or broken if one of its weight files fails the content check;
    file names are shown relative to `root`."""
    for path in files:
        shown = path.relative_to(root)
        try:
            check_weights(path)
        except ModelRefused as error:
            return replace(entry, status=REFUSED, problem=_in_folder(shown, error.message))
        except ModelLoadError as error:
            what = "LoRA" if entry.kind == "lora" else "model"
            advice = f" It may be damaged or incomplete: copy the {what} into the models dir again."
            return _broken(entry, _in_folder(shown, error.message) + advice)
    return entry


def _in_folder(shown: Path, message: str) -> str:
    return message if shown.parent == Path(".") else f"in {shown.parent}/: {message}"


def inspect_path(path: Path, allow_pickle: bool) -> ModelEntry | None:
    if not (path.is_dir() or path.is_file()):
        return None  # a FIFO, socket or device: reading one could block for ever
    if path.is_dir():
        if (path / "model_index.json").is_file():
            return _inspect_diffusers(path, allow_pickle)
        if (path / "config.json").is_file():
            return _inspect_transformers(path, allow_pickle)
        return None
    suffix = path.suffix.lower()
    if suffix == ".gguf":
        return _inspect_gguf(path)
    if suffix == ".safetensors":
        return _inspect_single_file(path)
    if suffix in PICKLE_SUFFIXES:
        entry = model_entry(path, "image", "single-file", "unknown")
        return entry if allow_pickle else refuse_pickle(entry, [path])
    return None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"{path.name} is not a regular file")
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _weights_in(folder: Path) -> tuple[list[Path], list[Path]]:
    files = [p for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    safe = [p for p in files if p.suffix == ".safetensors"]
    pickled = [p for p in files if p.suffix in PICKLE_SUFFIXES and "training_args" not in p.name]
    return safe, pickled


def _inspect_diffusers(path: Path, allow_pickle: bool) -> ModelEntry:
    entry = model_entry(path, "image", "diffusers", "sd15")
    try:
        index = _read_json(path / "model_index.json")
    except (ValueError, UnicodeDecodeError) as error:
        return _broken(entry, f"model_index.json is not valid JSON ({error}).")
    entry = replace(entry, family=_diffusers_family(path, index))
    pickled: list[Path] = []
    for component, spec in index.items():
        if component.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        folder = path / component
        if not folder.is_dir():
            return _broken(entry, f"the {component!r} folder named in model_index.json is missing.")
        safe, pickles = _weights_in(folder)
        if component in ("unet", "vae", "text_encoder", "text_encoder_2", "transformer"):
            if not safe and not pickles:
                return _broken(entry, f"the {component!r} folder has no weight files.")
            if not safe:
                pickled.extend(pickles)
        judged = checked(entry, safe, path)
        if not judged.ready:
            return judged
    if pickled and not allow_pickle:
        return refuse_pickle(entry, pickled)
    return entry


def _diffusers_family(path: Path, index: dict[str, Any]) -> str:
    turbo = "turbo" in path.name.lower()
    if "XL" in str(index.get("_class_name", "")):
        return "sdxl-turbo" if turbo else "sdxl"
    try:
        unet = _read_json(path / "unet" / "config.json")
    except (OSError, ValueError):
        unet = {}
    if unet.get("cross_attention_dim") == 1024:
        return "sd-turbo" if turbo else "sd2"
    return "sd15"


def _inspect_transformers(path: Path, allow_pickle: bool) -> ModelEntry:
    is_embedding = any((path / marker).is_file() for marker in EMBEDDING_MARKERS)
    kind, fmt = ("embedding", "sentence-transformers") if is_embedding else ("text", "transformers")
    entry = model_entry(path, kind, fmt, "unknown")
    try:
        config = _read_json(path / "config.json")
    except (ValueError, UnicodeDecodeError) as error:
        return _broken(entry, f"config.json is not valid JSON ({error}).")
    entry = replace(entry, family=str(config.get("model_type", "unknown")))
    architectures = config.get("architectures") or []
    if SAFETY_CHECKER in architectures:
        # The NSFW checker of Stable Diffusion: an image classifier, no tokenizer.
        entry = replace(entry, kind="safety", family="sd-safety-checker")
    elif not is_embedding and not any(str(a).endswith("ForCausalLM") for a in architectures):
        return _broken(
            entry,
            f"config.json names no causal language model (architectures: "
            f"{architectures or 'none'}); only chat/text models are supported.",
        )
    elif not any((path / name).is_file() for name in TOKENIZER_FILES):
        return _broken(entry, "no tokenizer files (tokenizer.json, tokenizer.model or vocab.json).")
    safe, pickles = _weights_in(path)
    if not safe and not pickles:
        return _broken(entry, "no weight files (*.safetensors).")
    if not safe and not allow_pickle:
        return refuse_pickle(entry, pickles)
    return checked(entry, safe, path)


def _inspect_gguf(path: Path) -> ModelEntry:
    entry = checked(model_entry(path, "text", "gguf", "unknown"), [path], path.parent)
    if not entry.ready:
        return entry
    return replace(entry, family=check_weights(path).architecture)


def _inspect_single_file(path: Path) -> ModelEntry:
    entry = checked(model_entry(path, "image", "single-file", "unknown"), [path], path.parent)
    if not entry.ready:
        return entry
    family = _checkpoint_family(path, list(check_weights(path).tensors))
    if family == "unknown":
        return _broken(
            entry,
            "this .safetensors file is not a Stable Diffusion checkpoint "
            f"(LoRA files belong in {LORA_DIR}/ inside the models dir).",
        )
    return replace(entry, family=family)


def _checkpoint_family(path: Path, keys: list[str]) -> str:
    turbo = "turbo" in path.name.lower()
    if any(k.startswith("conditioner.embedders.1") for k in keys):
        return "sdxl-turbo" if turbo else "sdxl"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "sd-turbo" if turbo else "sd2"
    if any(k.startswith("model.diffusion_model.") for k in keys):
        return "sd15"
    return "unknown"


def inspect_candidate(path: Path) -> ModelEntry | None:
    """What discovery would make of `path` (a model folder or file about to be added),
    judged as a model, or as a LoRA when it is a .safetensors file of LoRA weights; pickle
    weights are never allowed here. None: not a model at all."""
    entry = inspect_path(path, allow_pickle=False)
    if entry is not None and entry.format == "single-file" and entry.status == BROKEN:
        lora = checked(model_entry(path, "lora", "safetensors", "unknown"), [path], path.parent)
        if lora.ready and any("lora" in key.lower() for key in check_weights(path).tensors):
            return lora
    return entry
