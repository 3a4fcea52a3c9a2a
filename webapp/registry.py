"""What models exist: discovered under the models dir, described by `models/catalog.toml`.

Discovery only reads small files (configs, and the header of every weight file, checked by
its content in `webapp.model_files`); it never loads weights. Models and LoRAs that cannot
be used are still listed, with the reason, so admins see why.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from webapp.errors import ModelLoadError, ModelNotFound, ModelRefused, ValidationError
from webapp.model_entry import (
    BROKEN,
    LORA_DIR,
    NAME_PATTERN,
    REFUSED,
    ModelEntry,
    check_model_name,
)
from webapp.model_inspection import (
    PICKLE_SUFFIXES,
    checked,
    inspect_path,
    model_entry,
    refuse_pickle,
)
from webapp.paths import PathEscape, confined
from webapp.settings import Settings, env_name
from webapp.text_servers import TextServer

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.toml"
CATALOG_KEYS = {
    "display_name", "description", "license", "source", "family", "defaults", "demo",
    "default", "pin",
}  # fmt: skip


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
        entry = model_entry(path, "lora", "safetensors", "unknown")
        try:
            confined(models_dir, path.relative_to(models_dir))
        except PathEscape:
            entry = replace(
                entry, status=REFUSED, problem=f"{path.name} links outside the models dir."
            )
        else:
            if suffix in PICKLE_SUFFIXES:
                entry = refuse_pickle(replace(entry, format="pickle"), [path])
            else:
                entry = checked(entry, [path], folder)
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
        entry = inspect_path(path, settings.allow_pickle)
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
