"""The installs under way and finished, kept beside their files: each install is a folder
`<models dir>/.installs/<id>/` holding `install.json` (what, by whom, how far, what went
wrong) and `files/` (the download, until it is verified and moved into the models dir).

Keeping the record with the files means a restart finds both or neither; the dot folder is
never listed as a model. No token is ever written here.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from webapp.atomic import write_file

INSTALLS_DIR = ".installs"
QUEUED, DOWNLOADING, PLACING = "queued", "downloading", "placing"
DONE, FAILED, CANCELLED, INTERRUPTED = "done", "failed", "cancelled", "interrupted"
STOPPED_MESSAGE = (
    "Atelier stopped during this install. Press Retry: the files already fetched are kept."
)
ACTIVE = (QUEUED, DOWNLOADING, PLACING)
STALE_SECONDS = 600  # an import or a delete older than this was killed half-way
STATUSES = (*ACTIVE, DONE, FAILED, CANCELLED, INTERRUPTED)


@dataclass(frozen=True)
class Install:
    id: str
    source: str  # a Hub repo id, or "import"
    revision: str
    name: str
    by: str
    plan: dict[str, Any] = field(default_factory=dict, repr=False)
    total_bytes: int = 0
    status: str = QUEUED
    error: str | None = None
    error_field: str | None = None  # the form field the error concerns
    license: str = ""
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    owner_pid: int = field(default_factory=os.getpid)  # the Atelier process that runs it

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def can_retry(self) -> bool:
        return self.status in (FAILED, INTERRUPTED, CANCELLED) and self.source != "import"


class InstallBook:
    """The install records of one models dir (thread-safe by file: one writer per install)."""

    def __init__(self, models_dir: Path):
        self.root = models_dir / INSTALLS_DIR

    def new(self, **values: Any) -> Install:
        install = Install(id=f"install-{uuid.uuid4().hex[:10]}", **values)
        self.files(install).mkdir(parents=True, exist_ok=True)
        return self.save(install)

    def files(self, install: Install) -> Path:
        return self.root / install.id / "files"

    def save(self, install: Install) -> Install:
        data = json.dumps(asdict(install), indent=1).encode()
        write_file(self.root / install.id / "install.json", lambda handle: handle.write(data))
        return install

    def update(self, install: Install, **changes: Any) -> Install:
        return self.save(replace(install, **changes))

    def get(self, install_id: str) -> Install | None:
        path = self.root / install_id / "install.json"
        if not install_id.startswith("install-") or "/" in install_id or not path.is_file():
            return None
        try:
            return Install(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def all(self) -> list[Install]:
        """Every install, newest first."""
        if not self.root.is_dir():
            return []
        found = (self.get(folder.name) for folder in self.root.iterdir())
        return sorted((i for i in found if i), key=lambda i: i.started_at, reverse=True)

    def forget(self, install: Install) -> None:
        """The record and any files left of it."""
        shutil.rmtree(self.root / install.id, ignore_errors=True)

    def drop_files(self, install: Install) -> None:
        shutil.rmtree(self.files(install), ignore_errors=True)

    def tidy(self, older_than: float = STALE_SECONDS) -> int:
        """Delete what a killed import or delete left in its folder; returns how many."""
        if not self.root.is_dir():
            return 0
        cutoff, removed = time.time() - older_than, 0
        for folder in self.root.iterdir():
            killed = folder.name.startswith(("import-", "removing-"))
            if killed and folder.lstat().st_mtime < cutoff:
                if folder.is_dir() and not folder.is_symlink():
                    shutil.rmtree(folder, ignore_errors=True)
                else:
                    folder.unlink(missing_ok=True)
                removed += 1
        return removed

    def mark_interrupted(self, running_here: Callable[[str], bool]) -> list[Install]:
        """Installs whose Atelier process has gone (a restart) wait for a Retry, which
        keeps the files already verified. Those still running, here or in another live
        process (the app, while the CLI looks), are left alone."""
        return [
            self.update(
                install,
                status=INTERRUPTED,
                error=STOPPED_MESSAGE,
            )
            for install in self.all()
            if install.active and not _running(install, running_here)
        ]


def _running(install: Install, running_here: Callable[[str], bool]) -> bool:
    pid = install.owner_pid
    if pid == os.getpid():
        return running_here(install.id)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0
