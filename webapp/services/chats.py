"""Answers kept in the person's work, whether or not a page is open: a text tool's result
(what the person gave it and the answer), and chats, turn by turn.

When a text job ends, its turn (the question and the answer, or what was written before
Stop) is written by a writer thread of its own, never the engine's worker. A tool's answer
is kept as a result; a chat turn that starts a conversation starts a chat, and Regenerate
and Continue rewrite the chat's last turn. A failed answer, an empty one, or one the server
interrupted is not kept (the page says why, from the job).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from threading import Lock
from typing import TYPE_CHECKING

from webapp.engine import ChatMessage, Job, JobStatus
from webapp.users import User

if TYPE_CHECKING:
    from webapp.services.history import HistoryService

log = logging.getLogger(__name__)

KEEP_TURNS = 500  # chat jobs whose turn a page may still ask about


@dataclass(frozen=True)
class Turn:
    """What a chat job is for."""

    user: User
    chat_id: int | None  # None: this turn starts a new chat
    earlier: tuple[ChatMessage, ...]  # the chat before this turn (the person's and the model's)
    question: str
    prefix: str = ""  # Continue: the answer so far; the job writes the rest
    tool: str = "chat"
    model: str | None = None
    result_title: str | None = None  # set: a tool's result, kept under this title, not a chat

    def answer(self, job: Job) -> str:
        return join_answer(self.prefix, job.text)

    def messages(self, job: Job) -> list[ChatMessage]:
        return [
            *self.earlier,
            ChatMessage("user", self.question),
            ChatMessage("assistant", self.answer(job)),
        ]


def join_answer(prefix: str, rest: str) -> str:
    """A continued answer: the model goes on from the end of the answer so far, which its
    chat template reads without trailing spaces."""
    return prefix.rstrip() + rest if prefix.strip() else rest


@dataclass
class _Entry:
    turn: Turn
    written: Future | None = None


class ChatKeeper:
    def __init__(self, history: HistoryService | None):
        self._history = history
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="atelier-chats")
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = Lock()

    @property
    def history(self) -> HistoryService | None:
        return self._history

    def track(self, job: Job, turn: Turn) -> None:
        """Keep `job`'s turn when it ends (at once, if it already has)."""
        with self._lock:
            self._entries[job.id] = _Entry(turn)
            while len(self._entries) > KEEP_TURNS:
                self._entries.popitem(last=False)
        if job.finished:
            self._schedule(job)

    def turn(self, job_id: str) -> Turn | None:
        with self._lock:
            entry = self._entries.get(job_id)
        return entry.turn if entry else None

    def job_ended(self, job: Job) -> None:
        """An engine listener: the turn goes to the writer thread."""
        if job.kind == "text":
            self._schedule(job)

    def written(self, job: Job, timeout: float | None = None) -> int | None:
        """The id of the chat that keeps the job's turn, once written; None when it is not
        kept (the answer failed, or the person has no account to keep it for)."""
        job.wait(timeout)
        with self._lock:
            entry = self._entries.get(job.id)
        if entry is None or entry.written is None:
            return None
        return entry.written.result(timeout)

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    def _schedule(self, job: Job) -> None:
        with self._lock:
            entry = self._entries.get(job.id)
            if entry is None or entry.written is not None:
                return  # not a chat turn, or already on its way
            entry.written = self._writer.submit(self._write, job, entry.turn)

    def _write(self, job: Job, turn: Turn) -> int | None:
        if not _worth_keeping(job, turn) or self._history is None:
            return None
        messages = turn.messages(job)
        try:
            if turn.result_title is not None:
                item = self._history.record_text(
                    turn.user, turn.tool, messages, title=turn.result_title, model=turn.model
                )
            elif turn.chat_id is None:  # the chat whose turns so far these are, or a new one
                item = self._history.record_chat_turn(
                    turn.user, turn.earlier, messages[len(turn.earlier) :],
                    model=turn.model, tool=turn.tool,
                )  # fmt: skip
            else:
                item = self._history.rewrite_chat(turn.user, turn.chat_id, messages)
        except Exception:  # the person still sees the answer; the log says why it is not kept
            log.warning("could not keep %s's chat turn", turn.user.id, exc_info=True)
            return None
        return item.id


def _worth_keeping(job: Job, turn: Turn) -> bool:
    """A failed answer, or one the server interrupted, is not kept; nor is a tool's empty
    answer. A chat question the person stopped before any word is kept, to ask again."""
    if job.status == JobStatus.FAILED:
        return False
    if job.status == JobStatus.CANCELLED and (job.cancelled_by or "").startswith("the server"):
        return False
    return bool(turn.answer(job).strip()) or turn.result_title is None


def asked_text(fields: list[tuple[str, object]]) -> str:
    """What the person gave a tool: the text of its one filled field, or a line per field
    ("Label: value") when they filled several."""
    filled = [(label, str(value).strip()) for label, value in fields if str(value).strip()]
    if len(filled) == 1:
        return filled[0][1]
    return "\n".join(f"{label}: {value}" for label, value in filled)


def result_title(tool_name: str, asked: str) -> str:
    words = " ".join(asked.split())
    return f"{tool_name}: {words}" if words else tool_name
