"""Installing models (admins) from the Hub or a company mirror (imports from the server's
disk or an upload, and removing, are `local_models.py`).

A download runs in a worker process of its own (never on the engine's worker), watched by a
thread here; its record and files live in the models dir (`webapp.hub.book`), so an install
goes on when the page is left and shows after a reload, and a restart leaves it waiting for
a Retry. A finished install is moved in whole and the engine rescans: it appears in Image
Studio and Text tools at once. Tokens for gated repos are passed to the worker and forgotten:
never stored, shown, logged or audited.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from webapp.engine import Engine
from webapp.errors import AtelierError, ValidationError
from webapp.formatting import human_bytes
from webapp.hub import process
from webapp.hub.book import (
    CANCELLED,
    DONE,
    DOWNLOADING,
    FAILED,
    INTERRUPTED,
    PLACING,
    STOPPED_MESSAGE,
    Install,
    InstallBook,
)
from webapp.hub.plan import RepoPlan, check_repo_id, check_revision
from webapp.hub.recommended import Recommendation, read_recommended
from webapp.model_placing import (
    arrange_download,
    check_new_name,
    judge,
    move_in,
)
from webapp.registry import ModelEntry
from webapp.services.audit import AuditService
from webapp.settings import Settings
from webapp.users import User

log = logging.getLogger(__name__)

# Room kept free beyond the download itself: the system and other writes need some too.
DISK_MARGIN_BYTES = 512 * 2**20
SPEED_WINDOW_SECONDS = 10
# The installs this process runs (every InstallService in it): a second service built on
# the same models dir must not take them for interrupted ones.
_RUNNING_HERE: set[str] = set()


@dataclass(frozen=True)
class InstallProgress:
    """An install as the page shows it: how far, how fast, how long still."""

    install: Install
    done_bytes: int
    bytes_per_second: float | None = None
    seconds_left: float | None = None

    @property
    def fraction(self) -> float:
        total = self.install.total_bytes
        return min(self.done_bytes / total, 1.0) if total else 0.0


@dataclass(frozen=True)
class RecommendedView:
    """A recommended model beside this machine: installed, being installed, and whether it
    fits the memory models may use here."""

    model: Recommendation
    installed: bool
    installing: bool
    fits: bool


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


class _Running:
    def __init__(self, thread: threading.Thread):
        self.thread = thread
        self.worker = None
        self.cancelled = False
        self.interrupted = False  # Atelier is stopping: the install waits for a Retry
        self.samples: deque[tuple[float, int]] = deque(maxlen=64)


class InstallService:
    def __init__(self, settings: Settings, engine: Engine, audit: AuditService, client: str):
        self._settings = settings
        self._engine = engine
        self._audit = audit
        self._client = client
        self._book = InstallBook(settings.models_dir)
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._book.mark_interrupted(lambda install_id: install_id in _RUNNING_HERE)
        self._book.tidy()

    @property
    def endpoint(self) -> str:
        return self._settings.hf_endpoint

    def _require_admin(self, user: User, kind: str, action: str) -> None:
        self._audit.require_admin(user, kind, action, self._client)

    # -- from the Hub ------------------------------------------------------------------------

    def recommended(self, user: User) -> tuple[list[RecommendedView], list[str]]:
        """The recommended models beside what is installed, and the list's problems."""
        self._require_admin(user, "models.install", "see the recommended models")
        listing = read_recommended(self._settings.models_dir)
        registry = self._engine.registry()
        budget = self._engine.memory_budget_bytes()
        installing = {i.name for i in self._book.all() if i.active}
        views = [
            RecommendedView(
                model,
                installed=model.name in registry.entries or model.name in registry.loras,
                installing=model.name in installing,
                fits=model.fits(budget),
            )
            for model in listing.models
        ]
        return views, list(listing.problems)

    def look_up(
        self, repo_id: str, user: User, revision: str | None = None, token: str | None = None
    ) -> RepoPlan:
        """What installing this repo would fetch (files, size, licence, access), asked of
        the Hub; within seconds a clear message when it cannot be reached."""
        self._require_admin(user, "models.install", "install models")
        repo_id, revision = check_repo_id(repo_id), check_revision(revision)
        return process.look_up(repo_id, revision, self.endpoint, token)

    def install(
        self,
        plan: RepoPlan,
        user: User,
        *,
        name: str | None = None,
        token: str | None = None,
        accept_license: bool = False,
    ) -> Install:
        """Start downloading a looked-up repo in the background; its record at once. An
        earlier try of the same repo that stopped goes on where it stopped."""
        self._require_admin(user, "models.install", "install models")
        earlier = self._earlier_try(plan, name or plan.name)
        if earlier is not None:
            if plan.needs_acceptance and not accept_license:
                self._check_start(plan, earlier.name, token, False, retrying=earlier.id)
            return self.retry(earlier.id, user, token)
        name = self._check_start(plan, name or plan.name, token, accept_license)
        install = self._book.new(
            source=plan.repo_id,
            revision=plan.revision,
            name=name,
            by=user.id,
            plan=plan.to_dict(),
            total_bytes=plan.total_bytes,
            license=plan.license,
        )
        return self._start(install, token, user)

    def install_repo(
        self,
        repo_id: str,
        user: User,
        *,
        revision: str | None = None,
        name: str | None = None,
        token: str | None = None,
        accept_license: bool = False,
    ) -> Install:
        """Look up and install in one call (the CLI)."""
        plan = self.look_up(repo_id, user, revision, token)
        return self.install(plan, user, name=name, token=token, accept_license=accept_license)

    def _earlier_try(self, plan: RepoPlan, name: str) -> Install | None:
        return next(
            (
                earlier
                for earlier in self._book.all()
                if earlier.can_retry
                and (earlier.source, earlier.name) == (plan.repo_id, name)
                and earlier.plan.get("commit") == plan.commit
            ),
            None,
        )

    def retry(self, install_id: str, user: User, token: str | None = None) -> Install:
        """Start a failed, cancelled or interrupted install again; files already verified
        are kept (the licence was accepted when it was first started)."""
        self._require_admin(user, "models.install", "install models")
        install = self._get(install_id)
        if not install.can_retry:
            raise ValidationError(f"This install is {install.status}; nothing to retry.")
        plan = RepoPlan.from_dict(install.plan)
        self._check_start(plan, install.name, token, True, retrying=install.id)
        self._book.files(install).mkdir(parents=True, exist_ok=True)
        install = self._book.update(install, status=DOWNLOADING, error=None, error_field=None)
        return self._start(install, token, user)

    def cancel(self, install_id: str, user: User) -> Install:
        """Stop an install and delete what it fetched."""
        self._require_admin(user, "models.install", "install models")
        install = self._get(install_id)
        with self._lock:
            running = self._running.get(install.id)
            if running is not None:
                running.cancelled = True
                if running.worker is not None:
                    running.worker.kill()
        if running is not None:
            running.thread.join(timeout=30)
            return self._get(install_id)
        if install.active:
            raise ValidationError("This install is run by another Atelier process; stop it there.")
        self._book.drop_files(install)
        return self._book.update(install, status=CANCELLED, error=None)

    def dismiss(self, install_id: str, user: User) -> None:
        """Forget an install that is over (and delete any files it left)."""
        self._require_admin(user, "models.install", "install models")
        install = self._get(install_id)
        if install.active:
            raise ValidationError("This install is still running: cancel it first.")
        self._book.forget(install)

    def installs(self, user: User) -> list[InstallProgress]:
        """Every install, newest first, with its progress."""
        self._require_admin(user, "models.install", "see installs")
        return [self._progress(install) for install in self._book.all()]

    def progress(self, install_id: str, user: User) -> InstallProgress:
        self._require_admin(user, "models.install", "see installs")
        return self._progress(self._get(install_id))

    def wait(self, install_id: str, timeout: float | None = None) -> Install:
        """The install once it is over (or as it is after `timeout` seconds)."""
        with self._lock:
            running = self._running.get(install_id)
        if running is not None:
            running.thread.join(timeout)
        return self._get(install_id)

    def close(self) -> None:
        """Stop running downloads; they show as interrupted and can be retried."""
        with self._lock:
            running = list(self._running.values())
            for item in running:
                item.interrupted = True
                if item.worker is not None:
                    item.worker.kill()
        for item in running:
            item.thread.join(timeout=30)

    def _check_start(
        self,
        plan: RepoPlan,
        name: str,
        token: str | None,
        accept_license: bool,
        retrying: str | None = None,
    ) -> str:
        models_dir = self._settings.models_dir
        if plan.access == "needs-token" and not token:
            raise ValidationError(
                f"{plan.repo_id} is gated: accept its licence at {self.endpoint}/{plan.repo_id} "
                "with a Hub account, create an access token (read) for it, and paste it in "
                "Access token.",
                field="token",
            )
        if plan.access == "token-refused" and not token:
            raise ValidationError(
                f"The access token was refused for {plan.repo_id}: paste a token of an account "
                "that has accepted the model's licence.",
                field="token",
            )
        if plan.needs_acceptance and not accept_license:
            raise ValidationError(
                f"{plan.repo_id} is under the licence {plan.license!r} ({plan.license_link}): "
                "read it, then tick that you accept it to install the model.",
                field="accept_license",
            )
        check_new_name(models_dir, name)
        for other in self._book.all():
            if other.active and other.name == name and other.id != retrying:
                raise ValidationError(
                    f"{name!r} is already being installed: wait for it, or choose another name.",
                    field="name",
                )
        fetched = process.folder_bytes(self._book.root / (retrying or "-") / "files")
        needed = max(plan.total_bytes - fetched, 0) + DISK_MARGIN_BYTES
        models_dir.mkdir(parents=True, exist_ok=True)
        free = free_bytes(models_dir)
        if free < needed:
            raise ValidationError(
                f"Not enough free disk: {plan.repo_id} needs {human_bytes(needed)} "
                f"(with some room to spare) and the models dir's disk has {human_bytes(free)}. "
                "Free some space or delete a model you no longer use, then try again.",
                field="disk",
            )
        return name

    def _start(self, install: Install, token: str | None, user: User) -> Install:
        install = self._book.update(install, status=DOWNLOADING)
        thread = threading.Thread(
            target=self._run,
            args=(install, token, user),
            name=f"install-{install.name}",
            daemon=True,
        )
        with self._lock:
            self._running[install.id] = _Running(thread)
            _RUNNING_HERE.add(install.id)
        thread.start()
        return install

    def _run(self, install: Install, token: str | None, user: User) -> None:
        plan = RepoPlan.from_dict(install.plan)
        files = self._book.files(install)
        try:
            worker = process.start_worker(self.endpoint, token)
            with self._lock:
                running = self._running[install.id]
                running.worker = worker
                if running.cancelled:
                    worker.kill()
            reply = process.answer(worker, process.download_request(plan, files), self.endpoint)
            if running.cancelled:
                self._book.drop_files(install)
                self._finish(install, user, CANCELLED, None, None)
            elif running.interrupted:
                self._finish(install, user, INTERRUPTED, STOPPED_MESSAGE, None)
            elif not reply["ok"]:
                self._finish(install, user, FAILED, reply["error"], reply.get("field"))
            else:
                install = self._book.update(install, status=PLACING)
                self._place(install, plan, files)
                self._finish(install, user, DONE, None, None)
        except AtelierError as error:
            self._book.drop_files(install)
            self._finish(install, user, FAILED, error.message, error.field)
        except Exception as error:  # the thread must record every end
            log.exception("install %s failed", install.id)
            self._finish(install, user, FAILED, f"The install failed: {error}", None)
        finally:
            with self._lock:
                self._running.pop(install.id, None)
                _RUNNING_HERE.discard(install.id)

    def _place(self, install: Install, plan: RepoPlan, files: Path) -> ModelEntry:
        waiting = self._book.root / install.id / "ready"
        candidate = arrange_download(files, plan, waiting, install.name)
        entry = judge(candidate)
        move_in(candidate, entry, self._settings.models_dir)
        self._engine.rescan()
        return entry

    def _finish(
        self, install: Install, user: User, status: str, error: str | None, field: str | None
    ) -> None:
        self._book.update(
            install, status=status, error=error, error_field=field, finished_at=time.time()
        )
        if status == DONE:
            shutil.rmtree(self._book.root / install.id / "ready", ignore_errors=True)
        outcome = {DONE: "ok", CANCELLED: "cancelled", INTERRUPTED: "interrupted"}.get(
            status, "failed"
        )
        self._audit.record(
            user,
            "models.install",
            outcome,
            model=install.name,
            client=self._client,
            subject=install.source,
            parameters={"revision": install.revision, "license": install.license},
            detail=error,
        )

    def _get(self, install_id: str) -> Install:
        install = self._book.get(install_id)
        if install is None:
            raise ValidationError("No such install: it may have been dismissed.")
        return install

    def _progress(self, install: Install) -> InstallProgress:
        if install.status == DONE:
            return InstallProgress(install, install.total_bytes)
        done = min(process.folder_bytes(self._book.files(install)), install.total_bytes)
        with self._lock:
            running = self._running.get(install.id)
        if running is None or install.status != DOWNLOADING:
            return InstallProgress(install, done)
        now = time.monotonic()
        running.samples.append((now, done))
        while running.samples and now - running.samples[0][0] > SPEED_WINDOW_SECONDS:
            running.samples.popleft()
        first_time, first_bytes = running.samples[0]
        if now - first_time < 0.5 or done <= first_bytes:
            return InstallProgress(install, done)
        speed = (done - first_bytes) / (now - first_time)
        return InstallProgress(install, done, speed, (install.total_bytes - done) / speed)
