"""Writes that never leave half a file or folder behind: write beside, then rename."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def write_folder(folder: Path, save: Callable[[Path], None]) -> Path:
    """`save(staging)` fills a staging folder, which then replaces `folder`."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        save(staging)
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def write_file(path: Path, write: Callable[[object], None]) -> Path:
    """`write(handle)` writes a staging file (binary), which then replaces `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=".", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return path


STALE_AFTER_SECONDS = 600  # older staging files belong to a write that was killed


def remove_stale_staging(root: Path, older_than: float = STALE_AFTER_SECONDS) -> int:
    """Delete the staging files and folders (dot names) that killed writes left under `root`;
    recent ones may belong to a write still under way and stay. Returns how many went."""
    if not root.is_dir():
        return 0
    cutoff, removed = time.time() - older_than, 0
    for path in root.rglob(".*"):
        try:
            if path.lstat().st_mtime > cutoff or path.is_symlink():
                continue
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed += 1
        except FileNotFoundError:
            continue  # removed with its folder, or by another process
    return removed
