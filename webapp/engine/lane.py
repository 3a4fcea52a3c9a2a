"""The one small interface every kind of work implements.

The engine's core owns the queue, the jobs' lifecycle, estimates and the worker thread; a
lane knows how to run one kind of job. Documents, embeddings and training become new
lanes without touching the core.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from webapp.engine.core import Engine
    from webapp.engine.jobs import Job


class Lane(ABC):
    kind: ClassVar[str]
    # May step inside another lane's long step (between two denoising steps, say), so
    # that its jobs never wait for the other lane's to finish.
    interleaves: ClassVar[bool] = False
    # Jobs that run together at most (for estimates).
    capacity: ClassVar[int] = 1

    def __init__(self, engine: Engine):
        self.engine = engine

    def admit(self, request: Any, job: Job) -> None:
        """Checks at submit beyond `request.check()` (the model's kind, its files…), in the
        submitting thread; may prepare the job for the lane. Raises an AtelierError."""
        return None

    @abstractmethod
    def ready_in(self, now: float) -> float | None:
        """Seconds until there is work to do (0: now), or None when there is none.
        Called with the engine's lock held: look, don't work."""

    @abstractmethod
    def step(self, nested: bool) -> None:
        """Do one unit of work on the worker thread: a batch, a token. `nested` when
        called from inside another lane's step."""

    def cancel(self, job: Job) -> None:
        """A running job of this lane was cancelled (it is already marked so): stop its
        work at the next step. Called with the engine's lock held."""
        return None

    def notices(self) -> list[str]:
        """What people should know about this lane now, in words (a cluster that cannot be
        reached). Called from any thread: look, don't work."""
        return []

    def release(self) -> None:
        """Drop what the lane holds between steps (a model kept loaded, a cache)."""
        return None
