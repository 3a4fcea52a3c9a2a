"""Finished answers are kept in the person's work, whoever waits for them: a text tool's
result (what the person gave it and the answer), or the next turn of a chat (added to that
chat, so a chat can be reopened). A page that was closed or reloaded loses nothing.

The text service tells the keeper what each job is when it submits it; the engine tells
the keeper when the job ends. An answer the person stopped is kept with what was written;
one the server interrupted, or that failed, is not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from threading import Lock
from typing import TYPE_CHECKING, Any

from webapp.engine import Job, JobStatus

if TYPE_CHECKING:
    from webapp.services.history import HistoryService

log = logging.getLogger(__name__)
MAX_TRACKED = 1000  # jobs submitted and not yet ended (a safety cap, never reached in use)


@dataclass(frozen=True)
class _Tracked:
    tool: str  # the tool's id
    title: str  # the tool's name
    asked: str  # what the person gave the tool, as they would recognise it
    earlier: tuple[Any, ...] | None  # a chat's turns before this one; None for a result


class TextKeeper:
    def __init__(self, history: HistoryService):
        self._history = history
        self._tracked: dict[str, _Tracked] = {}
        self._lock = Lock()

    def track(
        self, job: Job, tool: str, title: str, asked: str, earlier: tuple[Any, ...] | None
    ) -> None:
        with self._lock:
            if len(self._tracked) >= MAX_TRACKED:
                self._tracked.pop(next(iter(self._tracked)))
            self._tracked[job.id] = _Tracked(tool, title, asked, earlier)

    def job_ended(self, job: Job) -> None:
        """An engine listener: keep a finished (or stopped) answer."""
        with self._lock:
            tracked = self._tracked.pop(job.id, None)
        if tracked is None or not _worth_keeping(job):
            return
        answer = [{"role": "user", "content": tracked.asked}]
        answer.append({"role": "assistant", "content": job.text})
        try:
            if tracked.earlier is None:
                self._history.record_text(
                    job.user, tracked.tool, answer, title=_title(tracked), model=job.request.model
                )
            else:
                self._history.record_chat_turn(
                    job.user, tracked.earlier, answer, model=job.request.model, tool=tracked.tool
                )
        except Exception:  # the person still sees the answer; the log says why it is not kept
            log.warning("could not keep %s's %s answer", job.user.id, tracked.tool, exc_info=True)


def _worth_keeping(job: Job) -> bool:
    if not job.text.strip():
        return False
    if job.status == JobStatus.DONE:
        return True
    stopped = job.status == JobStatus.CANCELLED
    return stopped and not (job.cancelled_by or "").startswith("the server")


def _title(tracked: _Tracked) -> str:
    words = " ".join(tracked.asked.split())
    return f"{tracked.title}: {words}" if words else tracked.title


def asked_text(fields: list[tuple[str, Any]]) -> str:
    """What the person gave a tool: the text of its one filled field, or a line per field
    ("Label: value") when they filled several."""
    filled = [(label, str(value).strip()) for label, value in fields if str(value).strip()]
    if len(filled) == 1:
        return filled[0][1]
    return "\n".join(f"{label}: {value}" for label, value in filled)
