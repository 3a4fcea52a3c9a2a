"""What models exist: discovered under the models dir, described by `models/catalog.toml`.

Discovery only reads small files (configs, file headers); it never loads weights.
Models that cannot be used are still listed, with the reason, so admins see why.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from webapp.errors import ModelLoadError, ModelNotFound, ModelRefused, ValidationError
from webapp.settings import Settings, env_name

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
CATALOG_FILE = "catalog.toml"
LORA_DIR = "loras"
CATALOG_KEYS = {"display_name", "description", "license", "source", "family", "defaults"}
SAFETY_CHECKER = "StableDiffusionSafetyChecker"
EMBEDDING_MARKERS = ("modules.json", "config_sentence_transformers.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")

READY, REFUSED, BROKEN = "ready", "refused", "broken"
PICKLE_REASON = (
    "uses a pickle weight format ({files}), which can run arbitrary code when loaded. "
    "Convert it to .safetensors, or an admin can set {setting}=true if it comes from a "
    "source you trust."
)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str  # image | text | embedding
    format: str  # diffusers | single-file | transformers | gguf | sentence-transformers
    family: str
    path: Path
    size_bytes: int
    status: str = READY
    problem: str | None = None
    display_name: str = ""
    description: str = ""
    license: str = ""
    source: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.status == READY


def check_model_name(name: str) -> str:
    """A model name is a plain name, never a path."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValidationError(
            f"{name!r} is not a model name: use only letters, digits, '.', '_' and '-' "
            "(no slashes, no leading dot). Pick a model from the list.",
            field="model",
        )
    return name


@dataclass(frozen=True)
class Registry:
    models_dir: Path
    entries: dict[str, ModelEntry]
    problems: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(sorted(self.entries.values(), key=lambda entry: (entry.kind, entry.name)))

    def of_kind(self, kind: str) -> list[ModelEntry]:
        return [entry for entry in self if entry.kind == kind and entry.ready]

    def get(self, name: str, kind: str | None = None) -> ModelEntry:
        """The ready entry of that name (of that kind, if given), or an error that says
        what to do."""
        check_model_name(name)
        entry = self.entries.get(name)
        if entry is None:
            available = ", ".join(e.name for e in self if e.ready) or "none"
            raise ModelNotFound(
                f"No model named {name!r} is installed. Available: {available}.",
                field="model",
            )
        if entry.status == REFUSED:
            raise ModelRefused(f"Model {name!r} is refused: {entry.problem}", field="model")
        if entry.status == BROKEN:
            raise ModelLoadError(f"Model {name!r} cannot be used: {entry.problem}", field="model")
        if kind is not None and entry.kind != kind:
            article = "an" if kind[0] in "aeiou" else "a"
            raise ValidationError(
                f"{name!r} is {'an' if entry.kind[0] in 'aeiou' else 'a'} {entry.kind} model; "
                f"choose {article} {kind} model.",
                field="model",
            )
        return entry

    def config_folder_for(self, entry: ModelEntry) -> Path | None:
        """Where a single-file checkpoint borrows its configuration offline: an installed
        diffusers folder of the same family."""
        for other in self.of_kind("image"):
            if other.format == "diffusers" and other.family == entry.family:
                return other.path
        return None


def lora_names(models_dir: Path) -> list[str]:
    """The LoRA files under `models/loras/` (safetensors only)."""
    folder = models_dir / LORA_DIR
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.safetensors") if NAME_PATTERN.match(p.stem))


def lora_path(models_dir: Path, name: str) -> Path:
    """The file of an installed LoRA, or a ValidationError naming the ones there are."""
    if not NAME_PATTERN.match(name or "") or name not in lora_names(models_dir):
        available = ", ".join(lora_names(models_dir)) or "none installed"
        raise ValidationError(
            f"Unknown LoRA {name!r}. Available: {available}. An admin adds LoRAs as "
            f"NAME.safetensors files in the {LORA_DIR} folder of the models dir.",
            field="loras",
        )
    return models_dir / LORA_DIR / f"{name}.safetensors"


def discover(settings: Settings) -> Registry:
    """Scan the models dir and apply the catalog."""
    models_dir = settings.models_dir
    problems: list[str] = []
    if not models_dir.is_dir():
        problems.append(
            f"The models dir {models_dir} does not exist: create it or set "
            f"{env_name('models_dir')}."
        )
        return Registry(models_dir, {}, tuple(problems))

    catalog = _read_catalog(models_dir / CATALOG_FILE, problems)
    entries: dict[str, ModelEntry] = {}
    for path in sorted(models_dir.iterdir()):
        if (
            path.name.startswith(".")
            or path.name == LORA_DIR
            or path.name in (CATALOG_FILE, "README.md")
        ):
            continue
        entry = _inspect(path, settings.allow_pickle)
        if entry is None:
            continue
        if not NAME_PATTERN.match(entry.name):
            problems.append(
                f"{path.name!r} was skipped: rename it using only letters, digits, "
                "'.', '_' and '-'."
            )
            continue
        entries[entry.name] = _apply_catalog(entry, catalog.get(entry.name, {}))
    for name in sorted(set(catalog) - set(entries)):
        log.info("catalog entry %s has no model under %s", name, models_dir)
    return Registry(models_dir, entries, tuple(problems))


def _read_catalog(path: Path, problems: list[str]) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        problems.append(f"{path} could not be read ({error}); its descriptions are ignored.")
        return {}
    models = data.get("models", {})
    catalog: dict[str, dict[str, Any]] = {}
    for name, info in models.items():
        unknown = set(info) - CATALOG_KEYS if isinstance(info, dict) else {"(not a table)"}
        if unknown:
            problems.append(
                f"{path}: entry {name!r} has unknown keys {sorted(unknown)}; "
                f"allowed: {sorted(CATALOG_KEYS)}."
            )
            continue
        catalog[name] = info
    return catalog


def _apply_catalog(entry: ModelEntry, info: dict[str, Any]) -> ModelEntry:
    return replace(
        entry,
        display_name=info.get("display_name", entry.name),
        description=info.get("description", ""),
        license=info.get("license", entry.license),
        source=info.get("source", ""),
        family=info.get("family", entry.family),
        defaults=dict(info.get("defaults", {})),
    )


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _entry(path: Path, kind: str, fmt: str, family: str, **extra: Any) -> ModelEntry:
    name = path.stem if path.is_file() else path.name
    return ModelEntry(
        name=name, kind=kind, format=fmt, family=family, path=path, size_bytes=_size(path), **extra
    )


def _broken(entry: ModelEntry, problem: str) -> ModelEntry:
    return replace(entry, status=BROKEN, problem=problem)


def _refuse_pickle(entry: ModelEntry, files: Iterable[Path]) -> ModelEntry:
    names = ", ".join(sorted({f.name for f in files}))
    reason = PICKLE_REASON.format(files=names, setting=env_name("allow_pickle"))
    return replace(entry, status=REFUSED, problem=reason)


def _inspect(path: Path, allow_pickle: bool) -> ModelEntry | None:
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
        entry = _entry(path, "image", "single-file", "unknown")
        return entry if allow_pickle else _refuse_pickle(entry, [path])
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
    entry = _entry(path, "image", "diffusers", "sd15")
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
        if component in ("unet", "vae", "text_encoder", "text_encoder_2", "transformer"):
            safe, pickles = _weights_in(folder)
            if not safe and not pickles:
                return _broken(entry, f"the {component!r} folder has no weight files.")
            if not safe:
                pickled.extend(pickles)
    if pickled and not allow_pickle:
        return _refuse_pickle(entry, pickled)
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
    entry = _entry(path, kind, fmt, "unknown")
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
        return _refuse_pickle(entry, pickles)
    return entry


def _inspect_gguf(path: Path) -> ModelEntry:
    entry = _entry(path, "text", "gguf", "unknown")
    try:
        from gguf import GGUFReader

        reader = GGUFReader(path)
        arch = reader.get_field("general.architecture")
        family = arch.contents() if arch is not None else "unknown"
    except Exception as error:  # gguf raises assorted errors on bad files
        return _broken(entry, f"the GGUF file cannot be read ({error}).")
    return replace(entry, family=str(family))


def _inspect_single_file(path: Path) -> ModelEntry:
    entry = _entry(path, "image", "single-file", "unknown")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
    except Exception as error:  # safetensors raises its own error types on corrupt files
        return _broken(entry, f"the .safetensors file cannot be read ({error}).")
    family = _checkpoint_family(path, keys)
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


class LiveRegistry:
    """The current registry, rescanned on demand (thread-safe swap)."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._registry = discover(settings)

    def __call__(self) -> Registry:
        return self._registry

    def rescan(self) -> Registry:
        self._registry = discover(self._settings)
        return self._registry
