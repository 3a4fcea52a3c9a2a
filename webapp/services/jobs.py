"""The job queue as people see it: their own jobs, or everyone's for admins.

A member who asks for everyone's jobs, or for a job that is not theirs (to see or cancel
it), is refused, and the refusal is recorded in the audit log."""

from __future__ import annotations

from dataclasses import dataclass

from webapp.engine import Engine, Job
from webapp.errors import Forbidden
from webapp.loader import ModelStats
from webapp.services.audit import AuditService
from webapp.users import User


@dataclass(frozen=True)
class QueueView:
    waiting: int
    running: int
    jobs: list[Job]
    # What people should know now, in words: an image cluster that cannot be reached.
    notices: tuple[str, ...] = ()


class JobService:
    def __init__(self, engine: Engine, audit: AuditService, client: str = "page"):
        self._engine = engine
        self._audit = audit
        self._client = client

    def my_queue(self, user: User) -> QueueView:
        return QueueView(
            self._engine.queue_length(),
            self._engine.running_count(),
            self._engine.jobs(user),
            tuple(self._engine.notices()),
        )

    def everyones_queue(self, user: User) -> QueueView:
        self._audit.require_admin(user, "jobs.everyone", "see everyone's jobs", self._client)
        return QueueView(
            self._engine.queue_length(),
            self._engine.running_count(),
            self._engine.jobs(user, everyone=True),
            tuple(self._engine.notices()),
        )

    def job(self, job_id: str, user: User) -> Job:
        """One of the person's jobs (any job, for an admin); another's is refused and
        recorded, with the same message as a job that does not exist."""
        try:
            return self._engine.get_job(job_id, user)
        except Forbidden as refused:
            self._audit.record(
                user,
                "job.open",
                "refused",
                subject=str(job_id)[:255],
                client=self._client,
                detail=refused.message,
            )
            raise

    def cancel(self, job_id: str, user: User) -> bool:
        """Cancel a job by id; only its owner or an admin may."""
        return self.job(job_id, user).cancel(user)

    def loaded_models(self, user: User) -> list[ModelStats]:
        self._audit.require_admin(user, "models.loaded", "see the loaded models", self._client)
        return self._engine.model_stats()
