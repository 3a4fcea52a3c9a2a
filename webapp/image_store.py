"""Each person's images under the data dir: PNGs carrying their recipe, nothing else."""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from webapp.atomic import remove_stale_staging
from webapp.paths import PathEscape, confined
from webapp.png_recipe import read_recipe, save_png
from webapp.users import User


@dataclass(frozen=True)
class StoredImage:
    path: Path
    parameters: str
    recipe: dict[str, Any]
    created: float


class ImageStore:
    def __init__(self, data_dir: Path):
        self.root = data_dir / "images"
        remove_stale_staging(self.root)
        # Saves per folder: with the folder's mtime (which a coarse file system may not
        # change within a second), this says when a folder must be listed again.
        self._saves: Counter[Path] = Counter()

    def folder_of(self, user: User) -> Path:
        """A folder per person; the id is made safe for a path and kept unique."""
        return self.root / folder_name(user.id)

    def save(
        self,
        user: User,
        job_id: str,
        index: int,
        image: Image.Image,
        parameters: str,
        recipe: dict[str, Any],
    ) -> StoredImage:
        path = self.folder_of(user) / f"{_timestamp()}-{job_id}-{index + 1}.png"
        save_png(image, path, parameters, recipe)
        self._saves[path.parent] += 1
        return StoredImage(path, parameters, recipe, path.stat().st_mtime)

    def recent(self, user: User, limit: int = 24) -> list[StoredImage]:
        """This person's newest images."""
        folder = self.folder_of(user)
        if not folder.is_dir():
            return []
        version = (folder.stat().st_mtime_ns, self._saves[folder])
        names = _png_names_newest_first(folder, version)
        stored = (self.read(folder / name) for name in names[:limit])
        return [item for item in stored if item is not None]

    @staticmethod
    def read(path: Path) -> StoredImage | None:
        """A stored image with its recipe, or None if it is gone or unreadable."""
        try:
            return _read_stored_version(path, path.stat().st_mtime)
        except OSError:
            return None  # deleted meanwhile

    def owns(self, user: User, path: str | os.PathLike[str]) -> bool:
        """Whether `path` names a PNG in this person's own folder (links followed, and
        never through `..`, an encoded name or a link into another folder)."""
        folder = self.folder_of(user)
        relative = os.path.relpath(os.path.abspath(path), os.path.abspath(folder))
        try:
            found = confined(folder, relative)
        except PathEscape:
            return False
        return found.parent == folder.resolve() and found.suffix == ".png"


def folder_name(user_id: str) -> str:
    """The name of a person's image folder: the id made safe for a path, and a digest of
    the id that keeps it unique."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", user_id)[:40]
    digest = hashlib.sha256(user_id.encode()).hexdigest()[:8]
    return f"{safe}-{digest}"


def _timestamp() -> str:
    """Local time to the microsecond: file names sort in the order the images were made."""
    now = time.time_ns() // 1000
    seconds, micros = divmod(now, 1_000_000)
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(seconds)) + f"{micros:06d}"


@lru_cache(maxsize=64)
def _png_names_newest_first(folder: Path, version: tuple[int, int]) -> tuple[str, ...]:
    """Listed again only when the folder changes (the page asks on every run). Names start
    with the time they were made, so the newest sort last; dot files are writes under way."""
    names = (n for n in os.listdir(folder) if n.endswith(".png") and not n.startswith("."))
    return tuple(sorted(names, reverse=True))


@lru_cache(maxsize=2048)
def _read_stored_version(path: Path, mtime: float) -> StoredImage | None:
    """A stored image's recipe, read once per version of the file (the page asks each run)."""
    try:
        parameters, recipe = read_recipe(path)
    except (OSError, ValueError):
        return None  # unreadable file: leave it out rather than fail the list
    return StoredImage(path, parameters, recipe, mtime)


THUMBNAIL_PIXELS = 384


@lru_cache(maxsize=512)
def _thumbnail(path: Path, mtime: float) -> bytes:
    with Image.open(path) as image:
        image.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def thumbnail_of(stored: StoredImage) -> bytes:
    """A small JPEG of a stored image for galleries, made once per version of the file."""
    return _thumbnail(stored.path, stored.created)


def thumbnail_at(path: Path) -> bytes | None:
    """A small JPEG of the PNG at `path` (made once per version of the file), or None if the
    file is gone or is not a picture."""
    try:
        return _thumbnail(path, path.stat().st_mtime)
    except (OSError, ValueError):
        return None
