"""`atelier bench churn`: many people against the engine and the services for minutes on end,
with a slow stand-in pipeline and decoder (the engine is measured, not a model).

Each person makes pictures, runs text tools and sometimes cancels, as fast as they are
answered. Every request must be served, cancelled by its owner, or refused as busy with a
time to try again; none may hang; and the memory must stay flat (finished jobs let go of
their pictures once they are stored).
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psutil

from webapp.bench.fakes import CannedDecodeBatch, SlowImages
from webapp.engine import JobCancelled, JobFailed
from webapp.errors import QueueFull
from webapp.services.images import ImageForm
from webapp.settings import Settings
from webapp.users import User

ANSWER_TIMEOUT_SECONDS = 120


@dataclass
class Tally:
    outcomes: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: str, seconds: float | None = None) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            if seconds is not None:
                self.latencies.append(seconds)


def bench_churn(
    settings: Settings,
    people: int = 50,
    seconds: float = 600,
    step_seconds: float = 0.05,
    image_model: str = "tiny-sd",
    text_model: str = "tiny-llm",
) -> dict[str, Any]:
    from webapp.engine.factory import build_engine
    from webapp.services import build_services

    slow = SlowImages(steps=8, step_seconds=step_seconds, full_size=True)
    engine = build_engine(settings, image_runner=slow, decode_batch=CannedDecodeBatch)
    services = build_services(settings, engine=engine)
    process, tally = psutil.Process(), Tally()
    try:
        warm_up = services.accounts.user_for_identity("warm-up")
        _act(services, warm_up, random.Random(0), tally, image_model, text_model)
        tally.outcomes.clear()
        memory = [process.memory_info().rss]
        deadline = time.monotonic() + seconds
        crowd = [
            threading.Thread(
                target=_person,
                args=(services, i, deadline, tally, image_model, text_model),
                daemon=True,
            )
            for i in range(people)
        ]
        for person in crowd:
            person.start()
        while any(person.is_alive() for person in crowd):
            time.sleep(1)
            memory.append(process.memory_info().rss)
        holding = sum(
            bool(job.result().images)
            for job in engine.jobs(User("admin", "Admin", True), everyone=True)
            if job.kind == "image" and job.status == "done"
        )
    finally:
        services.close()
    latencies = sorted(tally.latencies)
    return {
        "bench": "churn",
        "people": people,
        "seconds": seconds,
        "requests": sum(tally.outcomes.values()),
        **{key: tally.outcomes.get(key, 0) for key in OUTCOMES},
        "median_answer_s": round(statistics.median(latencies), 3) if latencies else None,
        "p95_answer_s": round(latencies[int(len(latencies) * 0.95)], 3) if latencies else None,
        "rss_start_mb": round(memory[0] / 2**20),
        "rss_end_mb": round(memory[-1] / 2**20),
        "rss_max_mb": round(max(memory) / 2**20),
        "finished_image_jobs_holding_pictures": holding,
    }


OUTCOMES = ("served", "cancelled", "busy", "busy_without_a_time", "refused", "failed", "hung")


def _person(services, index, deadline, tally, image_model, text_model) -> None:
    # Each one a signed-in person, as the company's sign-on would make them.
    user = services.accounts.user_for_identity(f"person-{index}", f"Person {index}")
    chance = random.Random(index)
    while time.monotonic() < deadline:
        _act(services, user, chance, tally, image_model, text_model)


def _act(services, user, chance, tally, image_model, text_model) -> None:
    started = time.monotonic()
    try:
        if chance.random() < 0.6:
            form = ImageForm(
                f"a busy street {chance.randint(0, 999)}",
                model=image_model,
                num_images=chance.randint(1, 2),
                width=256,
                height=256,
                quality="Fast",
            )
            run = services.images.generate(form, user)
            if chance.random() < 0.1:
                run.job.cancel(user)
            services.images.finish(run, user, timeout=ANSWER_TIMEOUT_SECONDS)
        else:
            tool = services.text.run_tool(
                "summarise", {"text": "Anna books the room for Tuesday."}, user, model=text_model
            )
            tool.jobs[0].result(ANSWER_TIMEOUT_SECONDS)
        tally.add("served", time.monotonic() - started)
    except JobCancelled:
        tally.add("cancelled")
    except JobFailed:
        tally.add("failed")
    except QueueFull as error:
        tally.add("busy" if error.retry_after else "busy_without_a_time")
        time.sleep(min(error.retry_after or 1, 2))
    except TimeoutError:
        tally.add("hung")
    except Exception as error:  # a refusal with a message, or a failure
        tally.add("refused" if getattr(error, "message", None) else "failed")
