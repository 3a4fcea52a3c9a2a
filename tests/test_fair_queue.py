"""The fair queue: round-robin between people, caps, and batches of one key."""

import pytest

from webapp.engine import ImageRequest, Job
from webapp.engine.fair_queue import FairQueue
from webapp.errors import QueueFull
from webapp.users import User

ADA, BOB, CAROL = User("ada", "Ada"), User("bob", "Bob"), User("carol", "Carol")


def job(user: User, prompt: str, width: int = 64, kind: str = "image") -> Job:
    return Job(request=ImageRequest("m", prompt, width=width, height=64), user=user, kind=kind)


def prompts(jobs) -> list[str]:
    return [j.request.prompt for j in jobs]


def test_order_serves_one_job_per_person_per_round():
    queue = FairQueue(max_per_user=10, max_total=10)
    for item in (job(ADA, "a1"), job(ADA, "a2"), job(ADA, "a3"), job(BOB, "b1"), job(CAROL, "c1")):
        queue.push(item)
    assert prompts(queue.order()) == ["a1", "b1", "c1", "a2", "a3"]


def test_a_batch_takes_the_same_key_from_every_person_then_they_go_to_the_back():
    queue = FairQueue(max_per_user=10, max_total=10)
    for item in (job(ADA, "a1"), job(ADA, "a2", width=72), job(BOB, "b1"), job(CAROL, "c1", 72)):
        queue.push(item)
    batch = queue.take_batch("image", key=lambda j: j.request.width, max_units=8)
    assert prompts(batch) == ["a1", "b1"]
    assert prompts(queue.order()) == ["c1", "a2"]  # carol was not served, so she goes first


def test_a_batch_stops_at_its_units():
    queue = FairQueue(max_per_user=10, max_total=10)
    for index in range(5):
        queue.push(job(User(f"u{index}", "U"), f"p{index}"))
    batch = queue.take_batch("image", key=lambda j: 0, max_units=4, units=lambda j: 2)
    assert prompts(batch) == ["p0", "p1"]
    assert len(queue) == 3


def test_a_batch_stops_at_its_number_of_jobs():
    queue = FairQueue(max_per_user=10, max_total=10)
    for index in range(5):
        queue.push(job(User(f"u{index}", "U"), f"p{index}"))
    batch = queue.take_batch("image", key=lambda j: 0, max_units=100, max_jobs=3)
    assert prompts(batch) == ["p0", "p1", "p2"]


def test_jobs_of_another_kind_are_left_in_place():
    queue = FairQueue(max_per_user=10, max_total=10)
    queue.push(job(ADA, "words", kind="text"))
    queue.push(job(ADA, "picture"))
    assert prompts(queue.take_batch("image", key=lambda j: 0, max_units=8)) == ["picture"]
    assert prompts(queue.order()) == ["words"]


def test_caps_per_person_and_in_all():
    queue = FairQueue(max_per_user=2, max_total=3)
    queue.push(job(ADA, "a1"))
    queue.push(job(ADA, "a2"))
    with pytest.raises(QueueFull, match="You already have 2 jobs waiting"):
        queue.push(job(ADA, "a3"))
    queue.push(job(BOB, "b1"))
    with pytest.raises(QueueFull, match="The queue is full"):
        queue.push(job(CAROL, "c1"))


def test_removing_a_job_frees_its_place():
    queue = FairQueue(max_per_user=1, max_total=5)
    first = job(ADA, "a1")
    queue.push(first)
    assert queue.remove(first) and not queue.remove(first)
    queue.push(job(ADA, "a2"))
    assert prompts(queue.order()) == ["a2"]
