"""The job queue as people see it: their own jobs, or everyone's for admins."""

from __future__ import annotations

from dataclasses import dataclass

from webapp.engine import Engine, Job
from webapp.loader import ModelStats
from webapp.users import User, require_admin


@dataclass(frozen=True)
class QueueView:
    waiting: int
    running: int
    jobs: list[Job]


class JobService:
    def __init__(self, engine: Engine):
        self._engine = engine

    def my_queue(self, user: User) -> QueueView:
        return QueueView(
            self._engine.queue_length(), self._engine.running_count(), self._engine.jobs(user)
        )

    def everyones_queue(self, user: User) -> QueueView:
        require_admin(user, "see everyone's jobs")
        return QueueView(
            self._engine.queue_length(),
            self._engine.running_count(),
            self._engine.jobs(user, everyone=True),
        )

    def cancel(self, job_id: str, user: User) -> bool:
        """Cancel a job by id; only its owner or an admin may."""
        return self._engine.get_job(job_id, user).cancel(user)

    def loaded_models(self, user: User) -> list[ModelStats]:
        require_admin(user, "see the loaded models")
        return self._engine.model_stats()
