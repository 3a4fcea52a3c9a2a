"""`atelier bench api`: the API's cost. N people at once make images and stream answers
through the API (HTTP on a real server, JSON, base64, server-sent events) and, in the same
run and on the same engine, through the services the pages call directly; rounds alternate
and the medians are compared: image makespan, text tokens per second and the time to the
first streamed token.

Everyone is a person of their own (accounts mode, in a throwaway data dir), as a team is:
the fair queue and the per-person caps treat both sides alike. The direct side's clients
are threads of the server's process, as page sessions are; the API's clients are threads
of a process of their own, as other programs are.
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from webapp.api import ApiConfig, api_routes
from webapp.api.local_server import served_in_thread
from webapp.bench.api_clients import serve_rounds
from webapp.bench.at_once import at_once
from webapp.engine import ChatMessage
from webapp.services import Services, build_services
from webapp.services.images import ImageForm
from webapp.settings import Settings
from webapp.users import User

PROMPT = "a lighthouse on a cliff at dusk, oil painting"
QUESTION = "Write a short story about a lighthouse keeper and a storm."
OPERATOR = User("cli:bench", "Bench operator", is_admin=True)
TARGETS = {"image_ratio_min": 0.95, "text_ratio_min": 0.95, "first_token_extra_ms_max": 20.0}


@dataclass(frozen=True)
class ApiBench:
    image_model: str | None = "tiny-sd"
    text_model: str | None = "tiny-llm"
    clients: int = 16
    size: int = 512
    new_tokens: int = 128
    repeats: int = 3


@dataclass(frozen=True)
class Round:
    makespan: float
    tokens: int = 0
    first_tokens: tuple[float, ...] = ()  # seconds from asking to the first token, per client


def bench_api(settings: Settings, bench: ApiBench) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="atelier-bench-api-") as scratch:
        settings = replace(
            settings,
            data_dir=Path(scratch),
            database_url=None,
            auth_mode="accounts",
            queue_max_per_user=max(settings.queue_max_per_user, 2),
            queue_max_total=max(settings.queue_max_total, bench.clients * 2),
            quota_jobs_per_hour=0,
            quota_images_per_day=0,
        )
        services = build_services(settings)
        try:
            people = _people(services, bench.clients)
            app = Starlette(routes=api_routes(ApiConfig(lambda: services, lambda: services.team)))
            keys = [key for _, key in people]
            with served_in_thread(app) as url, clients_process(url, keys) as api_clients:
                figures: dict[str, Any] = {
                    "bench": "api",
                    "device": str(services.engine.device),
                    "clients": bench.clients,
                    "repeats": bench.repeats,
                    "targets": TARGETS,
                }
                if bench.image_model:
                    figures["image"] = _images(services, api_clients, people, bench)
                if bench.text_model:
                    figures["text"] = _text(services, api_clients, people, bench)
                return figures
        finally:
            services.close()


def _people(services: Services, count: int) -> list[tuple[User, str]]:
    """`count` members, each with an API key."""
    team = services.team
    people = []
    for number in range(count):
        login = f"bench{number:02d}"
        team.accounts.add_person(OPERATOR, login, "bench password " + login)
        user = team.accounts.sign_in(login, "bench password " + login)
        people.append((user, team.api_keys.create(user, "bench").key))
    return people


# -- images ----------------------------------------------------------------------------------


def _images(services: Services, api_clients, people, bench: ApiBench) -> dict[str, Any]:
    images = services.images
    # What the API makes of the body below: the model's steps for Balanced quality.
    form = ImageForm(PROMPT, model=bench.image_model, quality="Balanced", width=bench.size,
                     height=bench.size)  # fmt: skip
    body = {"model": bench.image_model, "prompt": PROMPT, "size": f"{bench.size}x{bench.size}",
            "response_format": "b64_json", "quality": "standard"}  # fmt: skip

    def direct(user: User) -> tuple[int, float | None]:
        images.finish(images.generate(form, user), user)
        return 0, None

    rounds = _alternate(direct, api_clients, ("image", body), people, bench.repeats)
    direct_s = statistics.median(r.makespan for r in rounds["direct"])
    api_s = statistics.median(r.makespan for r in rounds["api"])
    ratio = direct_s / api_s
    return {
        "model": bench.image_model,
        "size": f"{bench.size}x{bench.size}",
        "quality": "Balanced",
        "direct_makespan_s": round(direct_s, 4),
        "api_makespan_s": round(api_s, 4),
        "api_throughput_ratio": round(ratio, 3),
        "meets_target": ratio >= TARGETS["image_ratio_min"],
    }


# -- text ------------------------------------------------------------------------------------------


def _text(services: Services, api_clients, people, bench: ApiBench) -> dict[str, Any]:
    text = services.text
    messages = (ChatMessage("user", QUESTION),)
    body = {"model": bench.text_model, "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": bench.new_tokens, "temperature": 0, "seed": 1, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip

    def direct(user: User) -> tuple[int, float | None]:
        asked = time.perf_counter()
        job = text.complete(messages, user, bench.text_model, max_new_tokens=bench.new_tokens,
                            seed=1, temperature=0.0)  # fmt: skip
        first = None
        for _ in job.stream():
            first = first or time.perf_counter() - asked
        return job.result(60).tokens, first

    rounds = _alternate(direct, api_clients, ("text", body), people, bench.repeats)
    rate = {side: statistics.median(r.tokens / r.makespan for r in runs)
            for side, runs in rounds.items()}  # fmt: skip
    first = {side: statistics.median(statistics.median(r.first_tokens) for r in runs) * 1000
             for side, runs in rounds.items()}  # fmt: skip
    ratio = rate["api"] / rate["direct"]
    extra = first["api"] - first["direct"]
    return {
        "model": bench.text_model,
        "new_tokens": bench.new_tokens,
        "direct_tokens_per_s": round(rate["direct"], 1),
        "api_tokens_per_s": round(rate["api"], 1),
        "api_throughput_ratio": round(ratio, 3),
        "direct_first_token_ms": round(first["direct"], 1),
        "api_first_token_ms": round(first["api"], 1),
        "api_first_token_extra_ms": round(extra, 1),
        "meets_target": ratio >= TARGETS["text_ratio_min"]
        and extra <= TARGETS["first_token_extra_ms_max"],
    }


# -- running rounds ------------------------------------------------------------------------------


def _alternate(direct, api_clients, asked, people, repeats: int) -> dict[str, list[Round]]:
    """A warm-up round of each, then `repeats` rounds of each in alternating order."""

    def through_api() -> Round:
        api_clients.send(asked)
        answer = api_clients.recv()
        if isinstance(answer, Exception):
            raise answer
        makespan, tokens, firsts = answer
        return Round(makespan, tokens, tuple(firsts))

    def directly() -> Round:
        return _round(direct, [user for user, _ in people])

    directly(), through_api()
    rounds: dict[str, list[Round]] = {"direct": [], "api": []}
    for repeat in range(repeats):
        order = [("direct", directly), ("api", through_api)]
        for side, run in order if repeat % 2 == 0 else order[::-1]:
            rounds[side].append(run())
    return rounds


def _round(run: Callable[[User], tuple[int, float | None]], users: list[User]) -> Round:
    """Every person at once, from threads of this process (as page sessions are); the
    makespan from the start to the last one done."""
    makespan, results = at_once(run, users)
    tokens = sum(r[0] for r in results)
    firsts = tuple(r[1] for r in results if r[1] is not None)
    return Round(makespan, tokens, firsts)


@contextmanager
def clients_process(url: str, keys: list[str]) -> Iterator[Any]:
    """The API's clients in a process of their own; the pipe to ask it for rounds."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=serve_rounds, args=(theirs, url, keys), daemon=True)
    process.start()
    try:
        yield ours
    finally:
        ours.send(None)
        process.join(30)
