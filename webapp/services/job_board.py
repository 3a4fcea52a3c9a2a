"""The jobs board: with several app replicas on one database, each replica's jobs are seen
and cancelled from any of them.

Each replica keeps its own queue and engine (in memory). About once a second its board
writes the lines of its jobs (what the Queue page shows: the place in line, the progress,
the end) to the shared database, marks itself alive, and stops the jobs that someone asked
to cancel from another replica. The Queue page lists this replica's jobs from its engine
and the others' from the board. A replica that stops writing for `GONE_SECONDS` has
stopped: its unfinished jobs are shown as lost.

Turned on by `ATELIER_SHARED_QUEUE=true` (docs/deploy.md); off, nothing is written.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from webapp.engine import Engine
from webapp.engine.jobs import FINAL
from webapp.errors import Forbidden
from webapp.job_words import JobLine, job_line
from webapp.store import Store, utc_now
from webapp.store.tables import BoardJob, Replica
from webapp.users import User

log = logging.getLogger(__name__)

GONE_SECONDS = 15  # a replica silent this long has stopped
FINISHED_SHOWN_SECONDS = 600  # how long an ended job stays on the board
NOT_YOURS = "That job does not exist or is not yours."
LOST_WORDS = "Lost: the Atelier server running it stopped. Start it again."
# The board reads every job of its own engine, as an admin would.
BOARD_USER = User("atelier-board", "Atelier", is_admin=True)


def replica_name() -> str:
    """This replica as admins see it on the Queue page: its host and process id, and a
    few random letters (containers often share a process id; a test builds two here)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class JobBoard:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        replica: str | None = None,
        clock: Callable[[], datetime] = utc_now,
        interval: float = 1.0,
    ):
        self.replica = replica or replica_name()
        self._store = store
        self._engine = engine
        self._clock = clock
        self._interval = interval
        self._written: dict[str, JobLine] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Write the board about once a second, on a thread of its own, until `stop()`."""
        self.publish()
        self._thread = threading.Thread(target=self._run, name="atelier-job-board", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.publish()
            except Exception:  # a database hiccup: the next round tries again
                log.exception("the jobs board could not be written")

    def publish(self) -> None:
        """One round: write what changed in this replica's jobs, mark this replica alive,
        stop the jobs someone cancelled from another replica, forget old ended jobs."""
        now = self._clock()
        lines = {line.id: line for line in map(job_line, self._engine.jobs(BOARD_USER, True))}
        with self._store.session() as session:
            for line in lines.values():
                if self._written.get(line.id) != line:
                    session.merge(_row(line, self.replica, now))
            session.merge(Replica(id=self.replica, seen=now))
            _forget_old(session, self.replica, now)
            asked = session.execute(
                select(BoardJob.id, BoardJob.cancel_requested_by).where(
                    BoardJob.replica == self.replica,
                    BoardJob.cancel_requested_by.is_not(None),
                    BoardJob.status.not_in(FINAL),
                )
            ).all()
        self._written = lines
        for job_id, requester in asked:
            self._cancel_here(job_id, requester)

    def _cancel_here(self, job_id: str, requester: str) -> None:
        try:
            job = self._engine.get_job(job_id, BOARD_USER)
        except Forbidden:
            return  # it ended and was forgotten here meanwhile
        by = job.user if requester == job.user.id else User(requester, requester, is_admin=True)
        job.cancel(by)

    def others(self) -> list[JobLine]:
        """Everyone's jobs on the other replicas, newest first: the caller shows a person
        only what they may see."""
        now = self._clock()
        with self._store.session() as session:
            seen = dict(session.execute(select(Replica.id, Replica.seen)).all())
            query = select(BoardJob).where(
                BoardJob.replica != self.replica,
                or_(
                    BoardJob.status.not_in(FINAL),
                    BoardJob.updated >= now - timedelta(seconds=FINISHED_SHOWN_SECONDS),
                ),
            )
            rows = session.scalars(query.order_by(BoardJob.created.desc())).all()
        gone_before = now - timedelta(seconds=GONE_SECONDS)
        shown_after = now - timedelta(seconds=FINISHED_SHOWN_SECONDS)
        lines = []
        for row in rows:
            last_seen = seen.get(row.replica, shown_after)
            if last_seen > shown_after:  # a replica gone longer ago is forgotten
                lines.append(_line(row, alive=last_seen > gone_before))
        return lines

    def request_cancel(self, job_id: str, user: User) -> bool:
        """Ask the replica running another replica's job to stop it: only its owner or an
        admin may (else Forbidden, worded as for a job that does not exist). False if it
        had already ended."""
        with self._store.session() as session:
            row = session.get(BoardJob, job_id)
            if row is None or row.replica == self.replica:
                raise Forbidden(NOT_YOURS)
            if row.owner_id != user.id and not user.is_admin:
                raise Forbidden(NOT_YOURS)
            if row.status in FINAL:
                return False
            session.execute(
                update(BoardJob)
                .where(BoardJob.id == job_id, BoardJob.cancel_requested_by.is_(None))
                .values(cancel_requested_by=user.id)
            )
        return True

    def elsewhere(self, job_id: str) -> bool:
        """Whether this job runs on another replica (as far as the board knows)."""
        with self._store.session() as session:
            replica = session.scalar(select(BoardJob.replica).where(BoardJob.id == job_id))
        return replica is not None and replica != self.replica


def _forget_old(session: Session, replica: str, now: datetime) -> None:
    """This replica's jobs that ended long enough ago, and replicas gone for a day with
    every job they left."""
    session.execute(
        delete(BoardJob).where(
            BoardJob.replica == replica,
            BoardJob.status.in_(FINAL),
            BoardJob.updated < now - timedelta(seconds=FINISHED_SHOWN_SECONDS),
        )
    )
    gone = select(Replica.id).where(Replica.seen < now - timedelta(days=1))
    session.execute(delete(BoardJob).where(BoardJob.replica.in_(gone)))
    session.execute(delete(Replica).where(Replica.id.in_(gone)))


def _row(line: JobLine, replica: str, now: datetime) -> BoardJob:
    return BoardJob(
        id=line.id,
        replica=replica,
        owner_id=line.owner_id,
        owner_name=line.owner_name,
        kind=line.kind,
        model=line.model,
        summary=line.summary,
        status=line.status,
        state=line.state,
        fraction=line.fraction,
        updated=now,
    )


def _line(row: BoardJob, alive: bool) -> JobLine:
    lost = not alive and row.status not in FINAL
    return JobLine(
        id=row.id,
        kind=row.kind,
        status="failed" if lost else row.status,
        owner_id=row.owner_id,
        owner_name=row.owner_name,
        model=row.model,
        summary=row.summary,
        state=LOST_WORDS if lost else row.state,
        fraction=row.fraction,
        replica=row.replica,
    )
