"""Every job in the audit log, and quotas checked at submit: the engine calls these."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from webapp.engine import Job, JobStatus
from webapp.services.audit import AuditService
from webapp.users import User

OUTCOMES = {JobStatus.DONE: "ok", JobStatus.FAILED: "failed", JobStatus.CANCELLED: "cancelled"}
# Pictures, prompts kept elsewhere, and a training run's examples (the dataset has them)
# and folder (a server path).
LEFT_OUT = (
    "init_image",
    "mask",
    "messages",
    "prompt",
    "negative_prompt",
    "train",
    "held_back",
    "folder",
)


def record_job_end(audit: AuditService):
    """A listener for the engine: one audit entry per finished job."""

    def record(job: Job) -> None:
        request = job.request
        seconds = (job.finished_at or 0) - (job.started_at or job.finished_at or 0)
        outcome = OUTCOMES[job.status]
        if job.status == JobStatus.CANCELLED and (job.cancelled_by or "").startswith("the server"):
            outcome = "interrupted"
        audit.record(
            job.user,
            job.kind,
            outcome,
            model=request.model,
            tool=getattr(request, "title", "") or None,
            parameters=_parameters(request),
            prompt=request.summary,
            images=getattr(request, "num_images", 0) if job.status == JobStatus.DONE else 0,
            gpu_seconds=max(0.0, seconds),
            client=job.client,
            subject=job.id,
            detail=job.error,
        )

    return record


def check_quota(audit: AuditService):
    """A submit check for the engine: the person's quota, counting what they have waiting."""

    def check(request: Any, user: User, theirs: list[Job]) -> None:
        audit.check_quota(
            user,
            request.kind,
            getattr(request, "num_images", 1),
            pending_jobs=len(theirs),
            pending_images=sum(getattr(j.request, "num_images", 0) for j in theirs),
        )

    return check


def _parameters(request: Any) -> dict[str, Any]:
    fields = asdict(request)
    if fields.get("adapter"):  # a tuned voice: its name, not where its files are
        fields["adapter"] = fields["adapter"]["name"]
    return {key: value for key, value in fields.items() if key not in LEFT_OUT}
