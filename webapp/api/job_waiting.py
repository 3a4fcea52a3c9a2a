"""Waiting for a job without holding a thread: the engine wakes the event loop at every
change of the job (a step, a token, the end), and a client that goes away cancels its job,
which frees its place in the queue or its slot in the batch."""

from __future__ import annotations

import asyncio
import contextlib

from starlette.requests import Request

from webapp.engine import Job
from webapp.users import User


class ClientGone(Exception):
    """The client disconnected before its job ended; the job was cancelled."""


class JobWatch:
    """A job's changes, as an asyncio event set from the engine's thread."""

    def __init__(self, job: Job):
        self.job = job
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._stop = job.watch(self._poke)

    def _poke(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            self._loop.call_soon_threadsafe(self._changed.set)

    async def changed(self) -> None:
        await self._changed.wait()
        self._changed.clear()

    def close(self) -> None:
        self._stop()

    def __enter__(self) -> JobWatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def cancel_soon(job: Job, user: User) -> None:
    """Cancel from async code without waiting (cancelling writes the audit entry)."""
    if not job.finished:
        asyncio.get_running_loop().run_in_executor(None, job.cancel, user)


async def until_finished(job: Job, request: Request, user: User) -> None:
    """Wait for the job to end. If the client disconnects first, cancel the job and raise
    ClientGone. (The body has been read: the next message is the disconnect.)"""
    gone = asyncio.ensure_future(_disconnect(request))
    try:
        with JobWatch(job) as watch:
            while not job.wait(0):  # ended, and its end listeners have run
                change = asyncio.ensure_future(watch.changed())
                await asyncio.wait({change, gone}, return_when=asyncio.FIRST_COMPLETED)
                change.cancel()
                if gone.done() and not job.wait(0):
                    cancel_soon(job, user)
                    raise ClientGone
    finally:
        gone.cancel()


async def _disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass
