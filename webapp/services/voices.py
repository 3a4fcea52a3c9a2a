"""Brand voices tuned on a team's approved texts: datasets, training runs (engine jobs),
evaluation, an admin's approval, versions with roll back, and export.

A person's datasets and runs are theirs alone (another's are "not found"); a version is
offered to the team, in Text tools, only once an admin approves it, and then only the
voice's live version. Files live under `<data dir>/voices/` and rows refer to them by
relative path; a run writes its adapter whole, and a row names it only when the run is done.
"""

from __future__ import annotations

import io
import logging
import secrets
import zipfile
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from webapp.atomic import write_file
from webapp.engine import Engine, Job, JobStatus
from webapp.engine.requests import TrainingRequest, VoiceAdapter
from webapp.errors import NotFound, ValidationError
from webapp.paths import confined
from webapp.services.audit import AuditService
from webapp.services.voice_records import (
    DatasetInfo,
    TunedVoice,
    VoiceVersion,
    dataset_info,
    evaluation_of,
    model_card,
    voice_name,
)
from webapp.settings import Settings
from webapp.store import Store, utc_now
from webapp.store.tables import Person, VoiceDataset, VoiceRun
from webapp.text_tools import Voice
from webapp.tuning.dataset import Dataset, Example, build_dataset, from_jsonl, to_jsonl
from webapp.tuning.presets import TuningSettings, settings_for
from webapp.tuning.prompts import training_request
from webapp.users import User

log = logging.getLogger(__name__)

VOICES_DIR = "voices"
TUNED_PREFIX = "tuned-"  # a tuned voice's id in Text tools: never a library voice's
RESTARTED = "Stopped when Atelier restarted. Resume goes on from the last checkpoint."


class VoiceService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        store: Store,
        audit: AuditService,
        client: str = "page",
        clock: Callable[[], datetime] = utc_now,
    ):
        self._settings = settings
        self._engine = engine
        self._store = store
        self._audit = audit
        self._client = client
        self._clock = clock
        self._stop_orphans()

    # -- datasets --------------------------------------------------------------------------

    def check_dataset(self, examples: list[Example]) -> Dataset:
        """Counts, lengths, duplicates and the held-back share, or what is wrong."""
        return build_dataset(examples)

    def save_dataset(self, user: User, name: str, examples: list[Example]) -> DatasetInfo:
        """Keep a checked dataset: its file first, then its row (or neither)."""
        dataset = build_dataset(examples)
        name = " ".join(str(name).split())[:200] or "Approved texts"
        path = self._root() / "datasets" / f"{secrets.token_hex(16)}.jsonl"
        data = to_jsonl(dataset)
        write_file(path, lambda handle: handle.write(data))
        lengths = dataset.lengths
        stats = {
            "words": {
                "shortest": lengths.shortest,
                "median": lengths.median,
                "longest": lengths.longest,
            },
            "duplicates": [asdict(d) for d in dataset.duplicates],
            "notes": list(dataset.notes),
        }
        try:
            with self._store.session() as session:
                _require_person(session, user)
                row = VoiceDataset(
                    owner_id=user.id,
                    name=name,
                    path=self._store.relative(path),
                    examples=len(dataset.examples),
                    held_back=len(dataset.held_back),
                    pairs=dataset.pairs,
                    stats=stats,
                    created=self._clock(),
                )
                session.add(row)
                session.flush()
                info = dataset_info(row)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self._audit.record(user, "voice.dataset", "ok", subject=str(info.id), client=self._client)
        return info

    def datasets(self, user: User) -> list[DatasetInfo]:
        with self._store.session() as session:
            rows = session.scalars(
                select(VoiceDataset)
                .where(VoiceDataset.owner_id == user.id)
                .order_by(VoiceDataset.created.desc(), VoiceDataset.id.desc())
            )
            return [dataset_info(row) for row in rows]

    def dataset(self, user: User, dataset_id: int) -> Dataset:
        with self._store.session() as session:
            row = session.get(VoiceDataset, dataset_id)
            if row is None or row.owner_id != user.id:
                raise NotFound("That dataset does not exist or is not yours.", field="dataset")
            path = self._file(row.path)
        return from_jsonl(path.read_bytes())

    # -- training --------------------------------------------------------------------------

    def train(
        self,
        user: User,
        name: str,
        dataset_id: int,
        base_model: str,
        preset: str = "Standard",
        **advanced: Any,
    ) -> VoiceVersion:
        """Queue a run that tunes the next version of voice `name` on one of the person's
        datasets. The engine checks the base and the examples' lengths at submit."""
        voice = voice_name(name)
        settings = settings_for(preset, **advanced)
        dataset = self.dataset(user, dataset_id)
        with self._store.session() as session:
            _require_person(session, user)
            owners = set(session.scalars(select(VoiceRun.owner_id).where(VoiceRun.voice == voice)))
            if owners - {user.id}:
                raise ValidationError(
                    f"The name “{voice}” is taken by another voice: choose another.", "name"
                )
            version = (
                session.scalar(select(func.max(VoiceRun.version)).where(VoiceRun.voice == voice))
                or 0
            ) + 1
            folder = self._root() / "runs" / secrets.token_hex(12)
            row = VoiceRun(
                owner_id=user.id,
                voice=voice,
                version=version,
                base_model=base_model,
                dataset_id=dataset_id,
                preset=preset,
                settings=asdict(settings),
                status="queued",
                folder=self._store.relative(folder),
                evaluation={},
                created=self._clock(),
            )
            session.add(row)
            session.flush()
            run_id = row.id
        request = training_request(dataset, settings, base_model, folder, f"Tuning voice {voice}")
        return self._submit(user, run_id, request)

    def resume(self, user: User, run_id: int) -> VoiceVersion:
        """Start a stopped run again, from its last checkpoint."""
        run = self.version(user, run_id, own=True)
        if not run.can_resume:
            raise ValidationError(
                "Only a cancelled or failed run with a checkpoint can be resumed.", field="run"
            )
        dataset = self.dataset(user, run.dataset_id)
        with self._store.session() as session:
            folder = self._file(session.get(VoiceRun, run_id).folder)
        settings = TuningSettings(**run.settings)
        request = training_request(
            dataset, settings, run.base_model, folder, f"Tuning voice {run.voice}"
        )
        return self._submit(user, run_id, request)

    def _submit(self, user: User, run_id: int, request: TrainingRequest) -> VoiceVersion:
        try:
            job = self._engine.submit(request, user, client=self._client)
        except BaseException as error:
            with self._store.session() as session:
                row = session.get(VoiceRun, run_id)
                if row.status == "queued":  # a run never started leaves nothing behind
                    session.delete(row)
                else:
                    row.error = getattr(error, "message", row.error)
            raise
        with self._store.session() as session:
            row = session.get(VoiceRun, run_id)
            row.status, row.job_id, row.error, row.finished = "running", job.id, None, None
        return self.version(user, run_id)

    def job(self, user: User, run_id: int) -> Job | None:
        """The engine job of a run still in the engine (for live progress), or None."""
        run = self.version(user, run_id)
        if run.job_id is None:
            return None
        try:
            return self._engine.get_job(run.job_id, user)
        except Exception:  # finished long ago, or from before a restart
            return None

    def job_ended(self, job: Job) -> None:
        """Engine end listener: a training job's outcome is written to its run. Only a run
        that is done gets its adapter named, so no half-made voice is ever offered."""
        if job.kind != "training":
            return
        relative = self._store.relative(Path(job.request.folder))
        with self._store.session() as session:
            row = session.scalar(select(VoiceRun).where(VoiceRun.folder == relative))
            if row is None:
                return
            row.finished = self._clock()
            if job.status == JobStatus.DONE:
                result = job.outcome
                row.status = "done"
                row.adapter_path = self._store.relative(Path(result.adapter_folder))
                row.evaluation = evaluation_of(result)
                row.error = None
            elif job.status == JobStatus.CANCELLED:
                row.status = "cancelled"
                row.error = (
                    f"Cancelled by {job.cancelled_by} at step {job.progress.step:,} of "
                    f"{job.progress.total:,}. Resume goes on from the last checkpoint."
                )
            else:
                row.status, row.error = "failed", job.error

    # -- reading ---------------------------------------------------------------------------

    def versions(self, user: User, everyone: bool = False) -> list[VoiceVersion]:
        """The person's runs, newest first; an admin may ask for everyone's (to approve)."""
        if everyone:
            self._audit.require_admin(user, "voice.list", "see everyone's voices", self._client)
        chosen = select(VoiceRun).order_by(VoiceRun.created.desc(), VoiceRun.id.desc())
        if not everyone:
            chosen = chosen.where(VoiceRun.owner_id == user.id)
        with self._store.session() as session:
            return [self._version(row) for row in session.scalars(chosen)]

    def version(self, user: User, run_id: int, own: bool = False) -> VoiceVersion:
        """One run: the person's own, an approved one, or (for an admin) any."""
        with self._store.session() as session:
            row = session.get(VoiceRun, run_id)
            visible = row is not None and (
                row.owner_id == user.id
                or (not own and (user.is_admin or row.approved_at is not None))
            )
            if not visible:
                raise NotFound("That voice does not exist or is not yours.", field="run")
            return self._version(row)

    def find(self, user: User, name: str) -> VoiceVersion:
        """A voice by name: its live version, else the person's newest finished one."""
        voice = voice_name(name)
        with self._store.session() as session:
            rows = session.scalars(
                select(VoiceRun).where(VoiceRun.voice == voice).order_by(VoiceRun.version.desc())
            ).all()
            for row in rows:
                if row.live:
                    return self._version(row)
            for row in rows:
                if row.owner_id == user.id or user.is_admin:
                    return self._version(row)
        raise NotFound(f"There is no voice named “{voice}” that you can see.", field="name")

    def team_voices(self) -> list[TunedVoice]:
        """The approved, live voices: what Text tools offers everyone."""
        with self._store.session() as session:
            rows = session.scalars(
                select(VoiceRun).where(VoiceRun.live.is_(True)).order_by(VoiceRun.voice)
            ).all()
            return [
                TunedVoice(
                    id=TUNED_PREFIX + row.voice,
                    voice=row.voice,
                    version=row.version,
                    base_model=row.base_model,
                    adapter=VoiceAdapter(
                        name=f"voice-{row.id}", folder=str(self._file(row.adapter_path))
                    ),
                )
                for row in rows
                if row.adapter_path
            ]

    # -- approval (admins) -----------------------------------------------------------------

    def approve(self, user: User, run_id: int) -> VoiceVersion:
        """Make a finished version the voice's live one, for the whole team."""
        self._audit.require_admin(user, "voice.approve", "approve a tuned voice", self._client)
        with self._store.session() as session:
            row = session.get(VoiceRun, run_id)
            if row is None:
                raise NotFound("That voice does not exist.", field="run")
            if row.status != "done" or not row.adapter_path:
                raise ValidationError(
                    f"Version {row.version} of “{row.voice}” has not finished training, so it "
                    "cannot be approved.",
                    field="run",
                )
            self._make_live(session, row)
            row.approved_by, row.approved_at = user.id, self._clock()
            voice, version = row.voice, row.version
        self._audit.record(
            user, "voice.approve", "ok", subject=f"{voice} v{version}", client=self._client
        )
        return self.version(user, run_id)

    def roll_back(self, user: User, name: str) -> VoiceVersion:
        """The voice's previous approved version becomes the live one again."""
        self._audit.require_admin(user, "voice.roll_back", "roll a voice back", self._client)
        voice = voice_name(name)
        with self._store.session() as session:
            approved = session.scalars(
                select(VoiceRun)
                .where(VoiceRun.voice == voice, VoiceRun.approved_at.is_not(None))
                .order_by(VoiceRun.version.desc())
            ).all()
            live = next((row for row in approved if row.live), None)
            earlier = [row for row in approved if live is None or row.version < live.version]
            if not earlier:
                raise ValidationError(
                    f"“{voice}” has no earlier approved version to roll back to.", field="name"
                )
            self._make_live(session, earlier[0])
            run_id, version = earlier[0].id, earlier[0].version
        self._audit.record(
            user, "voice.roll_back", "ok", subject=f"{voice} v{version}", client=self._client
        )
        return self.version(user, run_id)

    @staticmethod
    def _make_live(session: Any, row: VoiceRun) -> None:
        for other in session.scalars(select(VoiceRun).where(VoiceRun.voice == row.voice)):
            other.live = other.id == row.id

    # -- export ----------------------------------------------------------------------------

    def export(self, user: User, run_id: int) -> tuple[str, bytes]:
        """A ZIP of the adapter (safetensors and its config) and a model card; the owner's
        or an admin's, or an approved voice's."""
        run = self.version(user, run_id)
        if run.status != "done":
            raise ValidationError("Only a finished voice can be exported.", field="run")
        with self._store.session() as session:
            folder = self._file(session.get(VoiceRun, run_id).adapter_path)
            dataset = session.get(VoiceDataset, run.dataset_id)
            examples, held = dataset.examples, dataset.held_back
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in ("adapter_model.safetensors", "adapter_config.json"):
                archive.write(folder / name, name)
            archive.writestr("README.md", model_card(run, examples, held))
        self._audit.record(
            user, "voice.export", "ok", subject=f"{run.voice} v{run.version}", client=self._client
        )
        return f"{run.voice}-v{run.version}.zip", buffer.getvalue()

    # -- helpers ---------------------------------------------------------------------------

    def _root(self) -> Path:
        return self._store.data_dir / VOICES_DIR

    def _file(self, relative: str) -> Path:
        return confined(self._root(), Path(relative).relative_to(VOICES_DIR))

    def _version(self, row: VoiceRun) -> VoiceVersion:
        checkpoint = self._store.data_dir / row.folder / "checkpoint"
        return VoiceVersion(
            id=row.id,
            voice=row.voice,
            version=row.version,
            owner_id=row.owner_id,
            base_model=row.base_model,
            dataset_id=row.dataset_id,
            preset=row.preset,
            settings=dict(row.settings),
            status=row.status,
            job_id=row.job_id,
            evaluation=dict(row.evaluation),
            error=row.error,
            approved_by=row.approved_by,
            approved_at=row.approved_at,
            live=row.live,
            created=row.created,
            finished=row.finished,
            can_resume=row.status in ("cancelled", "failed") and checkpoint.is_dir(),
        )

    def _stop_orphans(self) -> None:
        """Runs left 'running' by a restart have no job any more: say so, keep the
        checkpoint for Resume."""
        with self._store.session() as session:
            for row in session.scalars(
                select(VoiceRun).where(VoiceRun.status.in_(("queued", "running")))
            ):
                if row.job_id is None or not self._engine_knows(row.job_id):
                    row.status, row.error = "cancelled", RESTARTED

    def _engine_knows(self, job_id: str) -> bool:
        return any(job.id == job_id for job in self._engine.jobs(_SYSTEM, everyone=True))


_SYSTEM = User("system", "Atelier", is_admin=True)


def tool_voices(voices: VoiceService) -> Callable[[], list[Voice]]:
    """The approved, live tuned voices as Text tools' voices."""

    def listed() -> list[Voice]:
        return [
            Voice(
                id=tuned.id,
                name=f"{tuned.voice} (tuned)",
                description=f"Tuned on the team's approved texts (version {tuned.version}).",
                adapter=tuned.adapter,
                base_model=tuned.base_model,
            )
            for tuned in voices.team_voices()
        ]

    return listed


def _require_person(session: Any, user: User) -> None:
    if session.get(Person, user.id) is None:
        raise ValidationError(f"There is no account {user.id!r} to keep this for.", "owner")
