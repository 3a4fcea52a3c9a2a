"""The job queue as people see it: their own jobs, or everyone's for admins; with several
app replicas sharing a jobs board, the other replicas' jobs too.

A member who asks for everyone's jobs, or for a job that is not theirs (to see or cancel
it), is refused, and the refusal is recorded in the audit log."""

from __future__ import annotations

from dataclasses import dataclass

from webapp.engine import Engine, Job
from webapp.errors import Forbidden
from webapp.job_words import JobLine, job_line
from webapp.loader import ModelStats
from webapp.services.audit import AuditService
from webapp.services.job_board import JobBoard
from webapp.users import User


@dataclass(frozen=True)
class QueueView:
    waiting: int
    running: int
    jobs: list[JobLine]
    # What people should know now, in words: an image cluster that cannot be reached.
    notices: tuple[str, ...] = ()


class JobService:
    def __init__(
        self,
        engine: Engine,
        audit: AuditService,
        client: str = "page",
        board: JobBoard | None = None,
    ):
        self._engine = engine
        self._audit = audit
        self._client = client
        self._board = board

    def my_queue(self, user: User) -> QueueView:
        return self._view(user, everyone=False)

    def everyones_queue(self, user: User) -> QueueView:
        self._audit.require_admin(user, "jobs.everyone", "see everyone's jobs", self._client)
        return self._view(user, everyone=True)

    def _view(self, user: User, everyone: bool) -> QueueView:
        """The lines of this replica's jobs and, on a shared board, the other replicas';
        the counts are of everyone's jobs, as a place in line is."""
        here = [job_line(job) for job in self._engine.jobs(user, everyone=everyone)]
        waiting, running = self._engine.queue_length(), self._engine.running_count()
        elsewhere = self._board.others() if self._board is not None else []
        waiting += sum(line.status == "queued" for line in elsewhere)
        running += sum(line.status == "running" for line in elsewhere)
        if not everyone:
            elsewhere = [line for line in elsewhere if line.owner_id == user.id]
        return QueueView(waiting, running, here + elsewhere, tuple(self._engine.notices()))

    def job(self, job_id: str, user: User) -> Job:
        """One of the person's jobs (any job, for an admin); another's is refused and
        recorded, with the same message as a job that does not exist."""
        try:
            return self._engine.get_job(job_id, user)
        except Forbidden as refused:
            self._refused(job_id, user, refused)
            raise

    def cancel(self, job_id: str, user: User) -> bool:
        """Cancel a job by id; only its owner or an admin may. A job on another replica is
        stopped there within about a second."""
        if self._board is not None and self._board.elsewhere(job_id):
            try:
                return self._board.request_cancel(job_id, user)
            except Forbidden as refused:
                self._refused(job_id, user, refused)
                raise
        return self.job(job_id, user).cancel(user)

    def _refused(self, job_id: str, user: User, refused: Forbidden) -> None:
        self._audit.record(
            user,
            "job.open",
            "refused",
            subject=str(job_id)[:255],
            client=self._client,
            detail=refused.message,
        )

    def loaded_models(self, user: User) -> list[ModelStats]:
        self._audit.require_admin(user, "models.loaded", "see the loaded models", self._client)
        return self._engine.model_stats()
