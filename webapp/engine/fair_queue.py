"""Queued jobs per user, served round-robin, with a per-user and a global cap."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

from webapp.engine.jobs import Job
from webapp.errors import QueueFull


class FairQueue:
    """Not thread-safe on its own: the engine holds its lock around every call."""

    def __init__(self, max_per_user: int, max_total: int):
        self.max_per_user = max_per_user
        self.max_total = max_total
        # Users in serving order: the next batch starts with the first who has work.
        self._queues: OrderedDict[str, deque[Job]] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def count_for(self, user_id: str) -> int:
        return len(self._queues.get(user_id, ()))

    def push(self, job: Job, retry_after: int = 0) -> None:
        """Queue `job`, or refuse with QueueFull saying when to try again (`retry_after`
        seconds: the caller's estimate of when there will be room)."""
        wait = f"about {retry_after} s" if retry_after else "a minute"
        if len(self) >= self.max_total:
            raise QueueFull(
                f"The queue is full ({self.max_total} jobs waiting). Try again in {wait}.",
                retry_after,
            )
        if self.count_for(job.user.id) >= self.max_per_user:
            raise QueueFull(
                f"You already have {self.max_per_user} jobs waiting, the most allowed. "
                f"Try again in {wait}, when one has started, or cancel one.",
                retry_after,
            )
        self._queues.setdefault(job.user.id, deque()).append(job)

    def remove(self, job: Job) -> bool:
        queue = self._queues.get(job.user.id)
        if queue is None or job not in queue:
            return False
        queue.remove(job)
        return True

    def has(self, kind: str) -> bool:
        return any(job.kind == kind for queue in self._queues.values() for job in queue)

    def order(self) -> list[Job]:
        """Every queued job in the order it would be served: one per user per round."""
        queues = [list(queue) for queue in self._queues.values()]
        ordered = []
        for round_index in range(max((len(q) for q in queues), default=0)):
            ordered.extend(q[round_index] for q in queues if round_index < len(q))
        return ordered

    def take_batch(
        self,
        kind: str,
        key: Callable[[Job], Hashable],
        max_units: int,
        units: Callable[[Job], int] = lambda job: 1,
        accept: Callable[[Job], bool] = lambda job: True,
        max_jobs: int | None = None,
    ) -> list[Job]:
        """The next batch of `kind`: the first waiting user's oldest job, joined by jobs of the
        same key from every user, one per user per round, up to `max_units` (and `max_jobs`)."""
        rotation = list(self._queues)
        first = next(
            (
                (user, job)
                for user in rotation
                for job in self._queues[user]
                if job.kind == kind and accept(job)
            ),
            None,
        )
        if first is None:
            return []
        start_user, head = first
        batch_key, used = key(head), units(head)
        batch, served = [head], [start_user]
        self._queues[start_user].remove(head)

        start = rotation.index(start_user)
        cycle = rotation[start + 1 :] + rotation[: start + 1]
        added = True

        def room() -> bool:
            return used < max_units and (max_jobs is None or len(batch) < max_jobs)

        while added and room():
            added = False
            for user in cycle:
                if not room():
                    break
                match = next(
                    (
                        job
                        for job in self._queues[user]
                        if job.kind == kind and accept(job) and key(job) == batch_key
                    ),
                    None,
                )
                if match is None or used + units(match) > max_units:
                    continue
                self._queues[user].remove(match)
                batch.append(match)
                used += units(match)
                added = True
                if user not in served:
                    served.append(user)
        # Users just served go to the back of the line, in the order they were served.
        for user in served:
            self._queues.move_to_end(user)
        for user in [u for u, q in self._queues.items() if not q]:
            del self._queues[user]
        return batch
