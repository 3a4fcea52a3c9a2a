"""Two app replicas on one database (SQLite here, PostgreSQL in CI), each with its own
engine, sharing the jobs board: a person sees and cancels, from either replica, the jobs
that run on the other; nobody else's; and a replica that stops is told, not hidden."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from sqlalchemy import select

from tests.fakes import SlowImages
from webapp.engine import ImageRequest, JobStatus
from webapp.errors import Forbidden
from webapp.services import build_services
from webapp.services.job_board import GONE_SECONDS, LOST_WORDS, JobBoard
from webapp.services.jobs import JobService
from webapp.store.tables import AuditEvent
from webapp.users import User

ANNA = User("anna", "Anna")
BEN = User("ben", "Ben")
ADA = User("ada", "Ada", is_admin=True)


def long_picture(prompt: str) -> ImageRequest:
    return ImageRequest("tiny-sd", prompt, width=64, height=64, steps=4)


class Replica:
    """One app replica: its engine, its board and the Queue page's service over them."""

    def __init__(self, name, team, engine, clock):
        self.engine = engine
        self.board = JobBoard(team.store, engine, replica=name, clock=clock)
        self.jobs = JobService(engine, team.audit, board=self.board)


@pytest.fixture
def replicas(make_team, make_engine, clock):
    """Replicas "app-1" and "app-2"; each engine's pictures take 400 steps of 20 ms."""
    return [
        Replica(name, make_team(), make_engine(image_runner=SlowImages(400, 0.02)), clock)
        for name in ("app-1", "app-2")
    ]


def test_a_persons_job_on_one_replica_is_listed_on_the_other_for_them_only(replicas):
    first, second = replicas
    job = first.engine.submit(long_picture("a red mug"), ANNA)
    first.board.publish()

    [line] = second.jobs.my_queue(ANNA).jobs
    assert (line.id, line.replica, line.owner_name) == (job.id, "app-1", "Anna")
    assert line.summary == "a red mug" and line.status in ("queued", "running")
    assert second.jobs.my_queue(BEN).jobs == []
    assert [line.id for line in second.jobs.everyones_queue(ADA).jobs] == [job.id]
    view = second.jobs.my_queue(BEN)
    assert view.waiting + view.running == 1  # counts are everyone's, as a place in line is


def test_cancel_on_the_other_replica_stops_the_job_where_it_runs(replicas):
    first, second = replicas
    job = first.engine.submit(long_picture("a red mug"), ANNA)
    first.board.publish()

    assert second.jobs.cancel(job.id, ANNA)
    first.board.publish()  # the replica running it reads the request
    assert job.status == JobStatus.CANCELLED and job.cancelled_by == "Anna"
    first.board.publish()
    [line] = second.jobs.my_queue(ANNA).jobs
    assert (line.status, line.state) == ("cancelled", "Cancelled")
    assert not second.jobs.cancel(job.id, ANNA)  # already ended


def test_an_admin_cancels_anyones_job_from_the_other_replica(replicas):
    first, second = replicas
    job = first.engine.submit(long_picture("a red mug"), ANNA)
    first.board.publish()
    assert second.jobs.cancel(job.id, ADA)
    first.board.publish()
    assert job.status == JobStatus.CANCELLED


def test_nobody_else_cancels_a_job_on_the_other_replica_and_the_refusal_is_recorded(
    replicas, make_team
):
    first, second = replicas
    job = first.engine.submit(long_picture("a red mug"), ANNA)
    first.board.publish()

    with pytest.raises(Forbidden, match="does not exist or is not yours"):
        second.jobs.cancel(job.id, BEN)
    first.board.publish()
    assert not job.finished
    with make_team().store.session() as session:
        refusals = session.scalars(select(AuditEvent).where(AuditEvent.actor == "ben")).all()
    assert [(e.kind, e.outcome, e.subject) for e in refusals] == [("job.open", "refused", job.id)]


def test_a_replica_that_stops_writing_shows_its_unfinished_jobs_as_lost(replicas, clock):
    first, second = replicas
    first.engine.submit(long_picture("a red mug"), ANNA)
    first.board.publish()
    clock.advance(seconds=GONE_SECONDS + 1)  # app-1 has not written since

    [line] = second.jobs.my_queue(ANNA).jobs
    assert (line.status, line.state) == ("failed", LOST_WORDS)
    second.board.publish()  # the other replica going on changes nothing of app-1's
    assert second.jobs.my_queue(ANNA).jobs == [line]


def test_a_replica_lists_its_own_jobs_from_its_engine_not_twice(replicas):
    first, _ = replicas
    job = first.engine.submit(long_picture("a red mug"), ANNA)
    first.board.publish()
    assert [(line.id, line.replica) for line in first.jobs.my_queue(ANNA).jobs] == [(job.id, None)]


def test_app_replicas_with_a_shared_queue_show_and_cancel_each_others_jobs(
    make_team, make_engine, engine_settings
):
    """As the app builds them (`ATELIER_SHARED_QUEUE=true`): the boards write on their own."""
    settings = replace(engine_settings, shared_queue=True)
    built = [
        build_services(
            settings, engine=make_engine(image_runner=SlowImages(400, 0.02)), team=make_team()
        )
        for _ in range(2)
    ]
    try:
        first, second = built
        assert first.board.replica != second.board.replica
        job = first.engine.submit(long_picture("a red mug"), ANNA)
        seen = _within(5, lambda: [line.id for line in second.jobs.my_queue(ANNA).jobs])
        assert seen == [job.id]
        second.jobs.cancel(job.id, ANNA)
        assert _within(5, lambda: job.status == JobStatus.CANCELLED)
    finally:
        for services in built:
            services.close()


def _within(seconds: float, check):
    """`check()`'s first truthy answer within `seconds` (its last answer otherwise)."""
    deadline = time.monotonic() + seconds
    while not (answer := check()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return answer


def test_the_queue_page_lists_a_job_of_another_replica_and_cancels_it_there(
    app_env, tiny_models_dir
):
    from tests.test_pages import run_app
    from webapp.store import utc_now
    from webapp.store.tables import BoardJob
    from webapp.store.tables import Replica as ReplicaRow
    from webapp.ui.resources import get_services

    app_env(tiny_models_dir, shared_queue="true")
    store = get_services().team.store
    with store.session() as session:  # what the replica "app-9" wrote about its job
        session.add(ReplicaRow(id="app-9", seen=utc_now()))
        session.add(
            BoardJob(
                id="job-on-app-9", replica="app-9", owner_id="local", owner_name="Local user",
                kind="image", model="tiny-sd", summary="<b>a fox</b> on app 9",
                status="running", state="Step 3 of 30", fraction=0.1,
            )
        )  # fmt: skip

    app = run_app()
    app.switch_page("app_pages/queue.py").run()
    assert "<b>a fox</b> on app 9" in [t.value for t in app.text]  # plain text, as here
    assert any("on app\\-9" in m.value for m in app.markdown)  # escaped, as words
    assert [m.value for m in app.metric] == ["0", "1"]
    app.button(key="cancel-job-on-app-9").click().run()
    assert not app.exception
    with store.session() as session:
        assert session.get(BoardJob, "job-on-app-9").cancel_requested_by == "local"
