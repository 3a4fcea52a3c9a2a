"""Each person's images under the data dir: PNGs carrying their recipe, nothing else."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

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

    def folder_of(self, user: User) -> Path:
        """A folder per person; the id is made safe for a path and kept unique."""
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", user.id)[:40]
        digest = hashlib.sha256(user.id.encode()).hexdigest()[:8]
        return self.root / f"{safe}-{digest}"

    def save(
        self,
        user: User,
        job_id: str,
        index: int,
        image: Image.Image,
        parameters: str,
        recipe: dict[str, Any],
    ) -> StoredImage:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.folder_of(user) / f"{stamp}-{job_id}-{index + 1}.png"
        save_png(image, path, parameters, recipe)
        return StoredImage(path, parameters, recipe, path.stat().st_mtime)

    def recent(self, user: User, limit: int = 24) -> list[StoredImage]:
        folder = self.folder_of(user)
        if not folder.is_dir():
            return []
        paths = sorted(folder.glob("*.png"), key=lambda p: p.stat().st_mtime, reverse=True)
        stored = []
        for path in paths[:limit]:
            try:
                parameters, recipe = read_recipe(path)
            except (OSError, ValueError):
                continue  # unreadable file: leave it out rather than fail the list
            stored.append(StoredImage(path, parameters, recipe, path.stat().st_mtime))
        return stored

    def owns(self, user: User, path: Path) -> bool:
        return path.resolve().parent == self.folder_of(user).resolve()
