"""What to fetch from a Hub repo: the safe files of one model, chosen from its listing.

Pure functions over plain data (the Hub's file list with sizes and hashes), so every rule
is tested without a network. Only safetensors weights, JSON configs and tokenizer files are
ever fetched: never pickle weights, never code.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath
from typing import Any

from webapp.errors import ValidationError

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
PICKLE = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
TOKENIZER_FILES = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model")
TEXT_FILES = ("merges.txt", "vocab.txt", "added_tokens.txt")
DOCUMENTS = re.compile(r"^(README\.md|LICEN[CS]E(\.md|\.txt)?|USE_POLICY\.md|NOTICE(\.md)?)$", re.I)
SHARD = re.compile(r"^model-\d{5}-of-\d{5}\.safetensors$")
FP16 = ".fp16.safetensors"
# Licences with no use restrictions to agree to; any other needs the admin's acceptance.
PERMISSIVE = {"apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "cc-by-4.0"}


@dataclass(frozen=True)
class HubFile:
    """One file of a repo, as the Hub lists it. `sha256` is known for large (LFS) files;
    `blob_id` is git's SHA-1 of the content for the others."""

    path: str
    size: int
    sha256: str | None = None
    blob_id: str | None = None
    # Where it goes in the installed folder (an fp16 variant loses its ".fp16").
    target: str = ""

    @property
    def destination(self) -> str:
        return self.target or self.path


@dataclass(frozen=True)
class RepoPlan:
    """A repo at one commit, and the files that make its model."""

    repo_id: str
    revision: str  # what the admin asked for (a branch, a tag or a commit)
    commit: str  # the commit it resolved to: every file is fetched from this one
    layout: str  # diffusers | transformers | sentence-transformers | single-file
    files: tuple[HubFile, ...]
    skipped: tuple[str, ...] = ()  # files left out (pickle, code, other formats)
    license: str = ""
    license_link: str = ""
    gated: bool = False
    access: str = "open"  # open | granted | needs-token | token-refused
    name: str = ""  # the model's name once installed
    notes: tuple[str, ...] = field(default=())

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def needs_acceptance(self) -> bool:
        """A gated repo, or a licence with conditions: the admin must accept it first."""
        return self.gated or self.license.lower() not in PERMISSIVE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepoPlan:
        values = dict(data)
        values["files"] = tuple(HubFile(**f) for f in values["files"])
        for key in ("skipped", "notes"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)


def check_repo_id(repo_id: str) -> str:
    text = (repo_id or "").strip()
    if text.startswith(("https://", "http://")):
        # A pasted address: keep owner/name.
        parts = [p for p in text.split("/")[3:] if p]
        text = "/".join(parts[:2])
    if not REPO_ID.match(text):
        raise ValidationError(
            f"{repo_id!r} is not a Hub repo id: write it as owner/name, e.g. "
            "stabilityai/sd-turbo (the part of the model's address after huggingface.co/).",
            field="repo_id",
        )
    return text


def check_revision(revision: str | None) -> str:
    text = (revision or "").strip() or "main"
    if not REVISION.match(text) or ".." in text:
        raise ValidationError(
            f"{revision!r} is not a revision: give a branch (main), a tag or a commit id.",
            field="revision",
        )
    return text


def default_name(repo_id: str) -> str:
    """The installed model's name: the repo's name, lower case."""
    return repo_id.split("/", 1)[1].lower()


def choose_files(repo_id: str, files: list[HubFile]) -> tuple[str, list[HubFile], list[str]]:
    """(layout, files to fetch, files left out) for a repo, or a ValidationError that says
    why nothing can be installed from it and what to do instead."""
    names = {f.path for f in files}
    if "model_index.json" in names:
        layout, chosen = "diffusers", _diffusers_files(files)
    elif "config.json" in names:
        is_embedding = "modules.json" in names or "config_sentence_transformers.json" in names
        layout = "sentence-transformers" if is_embedding else "transformers"
        chosen = _transformers_files(files, nested_configs=is_embedding)
    else:
        layout, chosen = "single-file", _single_file(files)
    weights = [f for f in chosen if f.path.endswith(".safetensors")]
    if not weights:
        raise ValidationError(_no_safetensors(repo_id, files), field="repo_id")
    kept = {f.path for f in chosen}
    skipped = sorted(f.path for f in files if f.path not in kept)
    return layout, chosen, skipped


def _no_safetensors(repo_id: str, files: list[HubFile]) -> str:
    pickled = sorted(f.path for f in files if f.path.lower().endswith(PICKLE))
    if pickled:
        shown = ", ".join(pickled[:3]) + (" …" if len(pickled) > 3 else "")
        return (
            f"{repo_id} has only pickle weights ({shown}), which can run code when loaded, so "
            "Atelier will not install it. Look for a version of this model in safetensors "
            "(search the Hub for its name with 'safetensors'), or convert it on a machine you "
            "trust and import the .safetensors file."
        )
    if any(f.path.endswith(".gguf") for f in files):
        return (
            f"{repo_id} holds GGUF files only. Download the one .gguf file you want and import "
            "it (Import from a file), or pick a repo with safetensors weights."
        )
    return (
        f"{repo_id} holds no model Atelier can use (no .safetensors weights with a "
        "model_index.json or config.json). Check the repo id, or pick a model from the "
        "recommended list."
    )


def _is_safe_extra(path: PurePosixPath) -> bool:
    """A config, tokenizer or licence file."""
    name = path.name
    return (
        name.endswith(".json")
        or name in TOKENIZER_FILES
        or name in TEXT_FILES
        or name == "vocab.json"
        or bool(DOCUMENTS.match(name))
    )


def _diffusers_files(files: list[HubFile]) -> list[HubFile]:
    """model_index.json, and in each component folder its configs, tokenizer files and one
    set of safetensors weights: the fp16 variant when there is one (half the download;
    Atelier picks the dtype at load), renamed to the plain name diffusers looks for."""
    by_folder: dict[str, list[HubFile]] = {}
    chosen = []
    for f in files:
        path = PurePosixPath(f.path)
        if len(path.parts) == 1:
            if path.name == "model_index.json" or DOCUMENTS.match(path.name):
                chosen.append(f)
        elif len(path.parts) == 2:
            by_folder.setdefault(path.parts[0], []).append(f)
    for folder_files in by_folder.values():
        chosen.extend(f for f in folder_files if _is_safe_extra(PurePosixPath(f.path)))
        weights = [f for f in folder_files if f.path.endswith(".safetensors")]
        half = [f for f in weights if f.path.endswith(FP16)]
        # Plain names only: not another variant (.fp32, .non_ema, ...) of the same weights.
        plain = [
            f for f in weights if "." not in PurePosixPath(f.path).name[: -len(".safetensors")]
        ]
        if half:
            chosen.extend(_renamed(f, f.path.removesuffix(FP16) + ".safetensors") for f in half)
        else:
            chosen.extend(plain or weights)
    return chosen


def _renamed(f: HubFile, target: str) -> HubFile:
    return HubFile(f.path, f.size, f.sha256, f.blob_id, target)


def _transformers_files(files: list[HubFile], nested_configs: bool) -> list[HubFile]:
    """Root configs, tokenizers and weights (a sharded set when there is one: some repos
    also carry the same weights in another layout, e.g. Mistral's consolidated file);
    for sentence-transformers, the JSON configs of its numbered module folders too."""
    root = [f for f in files if "/" not in f.path]
    weights = [f for f in root if f.path.endswith(".safetensors")]
    shards = [f for f in weights if SHARD.match(f.path)]
    if shards:
        weights = shards
    chosen = [f for f in root if _is_safe_extra(PurePosixPath(f.path))] + weights
    if nested_configs:
        chosen += [f for f in files if re.match(r"^\d+_[A-Za-z]+/[^/]+\.json$", f.path)]
    return chosen


def _single_file(files: list[HubFile]) -> list[HubFile]:
    """A repo holding one checkpoint or LoRA file (e.g. an LCM-LoRA): the largest
    safetensors file at its root, and its licence files."""
    root = [f for f in files if "/" not in f.path]
    weights = sorted(
        (f for f in root if f.path.endswith(".safetensors")), key=lambda f: f.size, reverse=True
    )
    return [f for f in root if DOCUMENTS.match(f.path)] + weights[:1]


def is_safe_file(relative: str) -> bool:
    """A file that may be part of an installed model: weights in safetensors or GGUF, a
    JSON config, a tokenizer file or a licence; never pickle, never code."""
    path = PurePosixPath(relative)
    if any(part.startswith(".") for part in path.parts):
        return False
    return path.name.endswith((".safetensors", ".gguf")) or _is_safe_extra(path)
