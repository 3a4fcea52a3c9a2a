"""A job in words, as the pages show it: its place in line, its progress, the time left.

Plain functions of a job (no Streamlit), so the jobs board that other app replicas read
(`services/job_board.py`) keeps the same words the Queue page shows here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webapp.engine.jobs import FINAL

STATUS_WORDS = {"done": "Done", "cancelled": "Cancelled"}
SUMMARY_CHARS = 160  # what a job's line shows of the person's prompt


def describe_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    return f"about {round(seconds / 60)} min"


def waiting_text(job: Any) -> str:
    when = describe_eta(job.eta_seconds)
    starts = f", starts in {when}" if when else ""
    return f"Waiting: number {job.position or 1} in line{starts}"


def progress_text(job: Any) -> str:
    """A running job in words: steps and the time left for pictures, words so far for text."""
    if job.kind not in ("image", "text"):  # documents and indexing say what they are doing
        left = describe_eta(job.eta_seconds)
        return (job.stage or "Starting…") + (f" · {left} left" if left else "")
    if job.kind == "text":
        words = len(job.text.split())
        return f"Writing: {words} word{'' if words == 1 else 's'} so far" if words else "Starting…"
    if job.progress.step == 0:
        return "Starting…"
    total = job.progress.total or job.request.steps
    left = describe_eta(job.eta_seconds)
    return f"Step {job.progress.step} of {total}" + (f" · {left} left" if left else "")


@dataclass(frozen=True)
class JobLine:
    """One job as the Queue page lists it: from this app's engine, or from the board that
    another app replica writes (`replica` names it then)."""

    id: str
    kind: str
    status: str
    owner_id: str
    owner_name: str
    model: str
    summary: str
    state: str  # the place in line, the progress or the error, in words
    fraction: float = 0.0
    replica: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINAL


def job_line(job: Any) -> JobLine:
    """The line of one of this engine's jobs."""
    return JobLine(
        id=job.id,
        kind=job.kind,
        status=str(job.status),
        owner_id=job.user.id,
        owner_name=job.user.display_name,
        model=job.request.model,
        summary=_shortened(job.request.summary),
        state=state_text(job),
        fraction=job.progress.fraction if str(job.status) == "running" else 0.0,
    )


def state_text(job: Any) -> str:
    status = str(job.status)
    if status == "queued":
        return waiting_text(job)
    if status == "running":
        return progress_text(job)
    if status == "failed":
        return job.error or "Failed."
    return STATUS_WORDS.get(status, status.capitalize())


def _shortened(summary: str) -> str:
    return summary[:SUMMARY_CHARS] + ("…" if len(summary) > SUMMARY_CHARS else "")
