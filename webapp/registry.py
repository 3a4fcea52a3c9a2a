"""What models exist: discovered under the models dir, described by `models/catalog.toml`.

Discovery only reads small files (configs, and the header of every weight file, checked by
its content in `webapp.model_files`); it never loads weights. Models and LoRAs that cannot
be used are still listed, with the reason, so admins see why.
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
from webapp.model_files import check_weights
from webapp.paths import PathEscape, confined
from webapp.settings import Settings, env_name
from webapp.text_servers import TextServer

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
CATALOG_FILE = "catalog.toml"
LORA_DIR = "loras"
CATALOG_KEYS = {
    "display_name", "description", "license", "source", "family", "defaults", "demo",
    "default", "pin",
}  # fmt: skip
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
    # diffusers | single-file | transformers | gguf | sentence-transformers | remote
    format: str
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
    # A text model served elsewhere (format "remote"): its servers.
    server: TextServer | None = None
    demo: bool = False  # a small model for trying Atelier: its answers carry a note
    default: bool = False  # the model of its kind that pages offer first (an admin's choice)
    pin: bool = False  # loaded when Atelier starts and kept loaded

    @property
    def label(self) -> str:
        """What people call the model: its display name, or its name."""
        return self.display_name or self.name

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
    # LoRAs (kind "lora"), kept apart: they are not models and share no names with them.
    loras: dict[str, ModelEntry] = field(default_factory=dict)

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(sorted(self.entries.values(), key=lambda entry: (entry.kind, entry.name)))

    def listing(self) -> list[ModelEntry]:
        """Every model, then every LoRA, usable or not: what admins are shown."""
        return [*self, *sorted(self.loras.values(), key=lambda entry: entry.name)]

    def of_kind(self, kind: str) -> list[ModelEntry]:
        """The ready models of a kind, the admin's default first."""
        ready = [entry for entry in self if entry.kind == kind and entry.ready]
        return sorted(ready, key=lambda entry: not entry.default)

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


def lora_entries(models_dir: Path) -> dict[str, ModelEntry]:
    """The LoRA files under `models/loras/`, each checked by its content (a stat per file
    once its header has been read)."""
    folder = models_dir / LORA_DIR
    if not folder.is_dir():
        return {}
    entries = {}
    for path in sorted(folder.iterdir()):
        suffix = path.suffix.lower()
        if path.name.startswith(".") or suffix not in (".safetensors", *PICKLE_SUFFIXES):
            continue
        if not path.is_file() or not NAME_PATTERN.match(path.stem):
            continue  # special files are never opened; odd names never listed
        entry = _entry(path, "lora", "safetensors", "unknown")
        try:
            confined(models_dir, path.relative_to(models_dir))
        except PathEscape:
            entry = replace(
                entry, status=REFUSED, problem=f"{path.name} links outside the models dir."
            )
        else:
            if suffix in PICKLE_SUFFIXES:
                entry = _refuse_pickle(replace(entry, format="pickle"), [path])
            else:
                entry = _checked(entry, [path], folder)
        entries.setdefault(entry.name, entry)
    return entries


def lora_names(models_dir: Path) -> list[str]:
    """The LoRAs that can be used."""
    return [name for name, entry in lora_entries(models_dir).items() if entry.ready]


def lora_path(models_dir: Path, name: str) -> Path:
    """The file of a usable LoRA, or a ValidationError that says why not."""
    entries = lora_entries(models_dir)
    entry = entries.get(name) if NAME_PATTERN.match(name or "") else None
    if entry is None:
        available = ", ".join(n for n, e in entries.items() if e.ready) or "none installed"
        raise ValidationError(
            f"Unknown LoRA {name!r}. Available: {available}. An admin adds LoRAs as "
            f"NAME.safetensors files in the {LORA_DIR} folder of the models dir.",
            field="loras",
        )
    if not entry.ready:
        raise ValidationError(f"LoRA {name!r} cannot be used: {entry.problem}", field="loras")
    return confined(models_dir, entry.path.relative_to(models_dir), field="loras")


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
    for server in settings.text_servers:
        if server.model in entries:
            problems.append(
                f"The text server model {server.model!r} has the name of a model in the "
                "models dir; it was left out: give it another name."
            )
            continue
        entries[server.model] = _apply_catalog(
            _remote(server, models_dir), catalog.get(server.model, {})
        )
    for name in sorted(set(catalog) - set(entries)):
        log.info("catalog entry %s has no model under %s", name, models_dir)
    return Registry(models_dir, entries, tuple(problems), lora_entries(models_dir))


def inspect_candidate(path: Path) -> ModelEntry | None:
    """What discovery would make of `path` (a model folder or file about to be added),
    judged as a model, or as a LoRA when it is a .safetensors file of LoRA weights; pickle
    weights are never allowed here. None: not a model at all."""
    entry = _inspect(path, allow_pickle=False)
    if entry is not None and entry.format == "single-file" and entry.status == BROKEN:
        lora = _checked(_entry(path, "lora", "safetensors", "unknown"), [path], path.parent)
        if lora.ready and any("lora" in key.lower() for key in check_weights(path).tensors):
            return lora
    return entry


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
        demo=info.get("demo") is True,
        default=info.get("default") is True,
        pin=info.get("pin") is True,
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


def _remote(server: TextServer, models_dir: Path) -> ModelEntry:
    """A text model served elsewhere; its tokenizer folder, if any, is in the models dir."""
    return ModelEntry(
        name=server.model,
        kind="text",
        format="remote",
        family="remote",
        path=models_dir / server.tokenizer if server.tokenizer else models_dir,
        size_bytes=0,
        source=", ".join(server.urls),
        server=server,
    )


def _broken(entry: ModelEntry, problem: str) -> ModelEntry:
    return replace(entry, status=BROKEN, problem=problem)


def _refuse_pickle(entry: ModelEntry, files: Iterable[Path]) -> ModelEntry:
    names = ", ".join(sorted({f.name for f in files}))
    reason = PICKLE_REASON.format(files=names, setting=env_name("allow_pickle"))
    return replace(entry, status=REFUSED, problem=reason)


def _checked(entry: ModelEntry, files: Iterable[Path], root: Path) -> ModelEntry:
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
        safe, pickles = _weights_in(folder)
        if component in ("unet", "vae", "text_encoder", "text_encoder_2", "transformer"):
            if not safe and not pickles:
                return _broken(entry, f"the {component!r} folder has no weight files.")
            if not safe:
                pickled.extend(pickles)
        checked = _checked(entry, safe, path)
        if not checked.ready:
            return checked
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
    return _checked(entry, safe, path)


def _inspect_gguf(path: Path) -> ModelEntry:
    entry = _checked(_entry(path, "text", "gguf", "unknown"), [path], path.parent)
    if not entry.ready:
        return entry
    return replace(entry, family=check_weights(path).architecture)


def _inspect_single_file(path: Path) -> ModelEntry:
    entry = _checked(_entry(path, "image", "single-file", "unknown"), [path], path.parent)
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
