"""The recommended models: a data file an admin may edit (`recommended.toml`, in the models
dir or, failing that, the project's models folder)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from webapp.errors import ValidationError
from webapp.hub.plan import check_repo_id, default_name

RECOMMENDED_FILE = "recommended.toml"
PROJECT_FILE = Path(__file__).resolve().parents[2] / "models" / RECOMMENDED_FILE
KINDS = ("image", "text", "embedding", "lora")
KEYS = {
    "repo", "name", "revision", "display_name", "kind", "family", "download_gb",
    "memory_gb", "license", "license_link", "gated", "good_for",
}  # fmt: skip
GIB = 2**30


@dataclass(frozen=True)
class Recommendation:
    repo: str
    name: str
    kind: str
    display_name: str = ""
    revision: str = "main"
    family: str = ""
    download_gb: float = 0.0
    memory_gb: float = 0.0
    license: str = ""
    license_link: str = ""
    gated: bool = False
    good_for: str = ""

    def fits(self, budget_bytes: int) -> bool:
        """Whether its memory (approximate) fits the memory models may use here."""
        return self.memory_gb * GIB <= budget_bytes


@dataclass(frozen=True)
class RecommendedList:
    path: Path | None
    models: tuple[Recommendation, ...]
    problems: tuple[str, ...] = ()


def recommended_file(models_dir: Path) -> Path | None:
    for path in (models_dir / RECOMMENDED_FILE, PROJECT_FILE):
        if path.is_file():
            return path
    return None


def read_recommended(models_dir: Path) -> RecommendedList:
    """The list, with a problem (naming the entry and what to fix) for each bad entry."""
    path = recommended_file(models_dir)
    if path is None:
        return RecommendedList(None, ())
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as error:
        return RecommendedList(path, (), (f"{path} could not be read: {error}. Fix the file.",))
    models, problems = [], []
    for number, raw in enumerate(data.get("models", []), start=1):
        try:
            models.append(_recommendation(raw))
        except (ValidationError, TypeError, ValueError) as error:
            message = getattr(error, "message", str(error))
            problems.append(f"{path}, model {number}: {message} This entry is left out.")
    return RecommendedList(path, tuple(models), tuple(problems))


def _recommendation(raw: object) -> Recommendation:
    if not isinstance(raw, dict):
        raise ValueError("is not a table.")
    unknown = set(raw) - KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; allowed: {sorted(KEYS)}.")
    repo = check_repo_id(str(raw.get("repo", "")))
    kind = str(raw.get("kind", ""))
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}.")
    return Recommendation(
        repo=repo,
        name=str(raw.get("name") or default_name(repo)),
        kind=kind,
        display_name=str(raw.get("display_name") or repo),
        revision=str(raw.get("revision") or "main"),
        family=str(raw.get("family", "")),
        download_gb=float(raw.get("download_gb", 0)),
        memory_gb=float(raw.get("memory_gb", 0)),
        license=str(raw.get("license", "")),
        license_link=str(raw.get("license_link", "")),
        gated=raw.get("gated") is True,
        good_for=str(raw.get("good_for", "")),
    )
