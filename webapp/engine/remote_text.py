"""Text jobs for models served elsewhere (OpenAI-compatible servers such as vLLM).

Atelier keeps what is its own: the fair queue decides who goes next, and each replica is
sent at most its `max_concurrency` requests at once. Each request streams from a thread of
its own (network waits, no torch); tokens reach the page as they come; cancelling closes
the stream, which makes the server stop. A replica that fails is left alone for a while and
a job that had not finished is retried from the start on another one (its text starts
again, never twice), or fails with a message saying which server stopped answering.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from webapp.backends import openai_server
from webapp.backends.openai_server import ServerDown, ServerRefused
from webapp.engine.jobs import Job, JobStatus, Progress, TextResult
from webapp.engine.requests import TextRequest
from webapp.engine.tokens import too_long_message
from webapp.errors import AtelierError
from webapp.text_servers import TextServer

if TYPE_CHECKING:
    from webapp.engine.core import Engine

log = logging.getLogger(__name__)

REST_SECONDS = 30  # how long a replica that failed is left alone
FINISH_REASONS = {"stop": "eos", "length": "length"}
# How servers word a chat longer than their context: vLLM, llama.cpp's server, TGI.
TOO_LONG_SIGNS = ("context length", "context size", "max_model_len", "maximum context")


@dataclass
class _Replica:
    url: str
    busy: int = 0
    resting_until: float = 0.0
    last_error: str = ""

    def resting(self, now: float) -> bool:
        return now < self.resting_until


@dataclass
class _Pool:
    server: TextServer
    replicas: list[_Replica] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def free_slots(self) -> int:
        now = time.monotonic()
        with self.lock:
            return sum(
                self.server.max_concurrency - r.busy for r in self.replicas if not r.resting(now)
            )

    def any_up(self) -> bool:
        now = time.monotonic()
        with self.lock:
            return any(not r.resting(now) for r in self.replicas)

    def claim(self, avoid: set[str], wait: bool = True) -> _Replica | None:
        """The least busy replica that is up and has room, other than those to avoid; None
        when none is up (or, not waiting, none has room). Waits while all are busy."""
        while True:
            now = time.monotonic()
            with self.lock:
                up = [r for r in self.replicas if not r.resting(now) and r.url not in avoid]
                room = [r for r in up if r.busy < self.server.max_concurrency]
                if room:
                    chosen = min(room, key=lambda r: r.busy)
                    chosen.busy += 1
                    return chosen
                if not up or not wait:
                    return None
            time.sleep(0.1)

    def release(self, replica: _Replica, error: str = "") -> None:
        with self.lock:
            replica.busy -= 1
            if error:
                replica.resting_until = time.monotonic() + REST_SECONDS
                replica.last_error = error


class RemoteText:
    def __init__(self, engine: Engine, servers: tuple[TextServer, ...]):
        self.engine = engine
        self._pools = {s.model: _Pool(s, [_Replica(url) for url in s.urls]) for s in servers}

    def serves(self, model: str) -> bool:
        return model in self._pools

    def ready(self, job: Job) -> bool:
        """Whether `job` can be dealt with now: a replica has room, or none is up (then it
        fails at once with a message, rather than wait for a server that is down)."""
        pool = self._pools[job.model]
        return pool.free_slots() > 0 or not pool.any_up()

    def start(self, job: Job) -> bool:
        """Send `job` to the least busy replica with room, streaming from a thread of its
        own; when no replica is up, fail it with a message. False when all are busy."""
        pool = self._pools[job.model]
        replica = pool.claim(avoid=set(), wait=False)
        if replica is None and not pool.any_up():
            job._finish(JobStatus.FAILED, error=_no_server_message(pool, set()))
            return True
        if replica is None:
            return False
        threading.Thread(
            target=self._serve, args=(job, replica), name=f"atelier-remote-{job.id}", daemon=True
        ).start()
        return True

    def replicas(self) -> dict[str, list[dict[str, Any]]]:
        """Each model's replicas and their state (for the Queue page and the doctor)."""
        now = time.monotonic()
        return {
            model: [
                {"url": r.url, "busy": r.busy, "up": not r.resting(now), "error": r.last_error}
                for r in pool.replicas
            ]
            for model, pool in self._pools.items()
        }

    # -- one job, on its own thread ---------------------------------------------------------

    def _serve(self, job: Job, replica: _Replica | None) -> None:
        pool, tried = self._pools[job.model], set()
        try:
            while not job.finished:
                replica = replica or pool.claim(avoid=tried)
                if replica is None:
                    job._finish(JobStatus.FAILED, error=_no_server_message(pool, tried))
                    return
                tried.add(replica.url)
                try:
                    self._stream(job, pool.server, replica.url)
                    pool.release(replica)
                    return
                except ServerDown as error:
                    log.warning("text server %s failed during %s: %s", replica.url, job.id, error)
                    pool.release(replica, str(error))
                    replica = None
                    job._update(text="", progress=Progress(0, job.request.max_new_tokens))
                except ServerRefused as error:
                    pool.release(replica)
                    job._finish(JobStatus.FAILED, error=self._refusal_message(job, error))
                    return
        finally:
            self.engine.wake()

    def _refusal_message(self, job: Job, error: ServerRefused) -> str:
        words = str(error).lower()
        if any(sign in words for sign in TOO_LONG_SIGNS):  # a chat that did not surely fit
            try:
                limit = self.engine.tokens.context_length(job.model)
            except AtelierError:
                limit = None
            if limit:
                return too_long_message(job.model, limit, None, job.request.max_new_tokens)
        return (
            f"The text server refused this request ({error}). Tell your Atelier admin if it "
            "keeps happening."
        )

    def _stream(self, job: Job, server: TextServer, url: str) -> None:
        request: TextRequest = job.request
        text, tokens, prompt_tokens, finish = "", 0, len(job.prompt_ids), "length"
        chunks = openai_server.stream_chat(url, _body(request, server), server.api_key)
        try:
            for chunk in chunks:
                if job.finished:  # cancelled: closing the stream stops the server
                    return
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece:
                        text += piece
                        tokens += 1
                        changes: dict[str, Any] = {
                            "text": text,
                            "progress": Progress(tokens, request.max_new_tokens),
                        }
                        if job.first_token_at is None:
                            changes["first_token_at"] = time.time()
                        job._update(**changes)
                    if choice.get("finish_reason"):
                        finish = FINISH_REASONS.get(choice["finish_reason"], "stop")
                usage = chunk.get("usage") or {}
                tokens = usage.get("completion_tokens") or tokens
                prompt_tokens = usage.get("prompt_tokens") or prompt_tokens
        finally:
            chunks.close()
        if request.stop and finish == "eos" and any(s in text for s in request.stop):
            finish = "stop"
        now = time.time()
        job._update(text=text)
        job._finish(
            JobStatus.DONE,
            TextResult(
                text=text,
                tokens=tokens,
                finish_reason=finish,
                seconds=now - job.submitted_at,
                first_token_seconds=(job.first_token_at or now) - job.submitted_at,
                prompt_tokens=prompt_tokens,
            ),
        )
        self.engine.record("text", now - (job.started_at or now))


def _body(request: TextRequest, server: TextServer) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": server.name_on_server,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        "max_tokens": request.max_new_tokens,
        "temperature": request.sampling_temperature,
        "top_p": request.top_p,
        "seed": request.seed,
    }
    if request.stop:
        body["stop"] = list(request.stop)
    if request.repetition_penalty != 1.0:
        body["repetition_penalty"] = request.repetition_penalty  # vLLM's extra parameter
    return body


def _no_server_message(pool: _Pool, tried: set[str]) -> str:
    if tried:
        return (
            "The text server stopped answering in the middle of this answer, and no other "
            "could take it over. Try again in a minute; if it keeps failing, tell your Atelier "
            "admin (the Queue page shows which servers are down)."
        )
    return (
        f"No text server for {pool.server.model} is answering at the moment. Try again in a "
        "minute; if it keeps failing, tell your Atelier admin."
    )
