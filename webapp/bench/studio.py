"""`atelier bench studio`: time from pressing Generate to the image shown in Image Studio,
beside the engine's own job time for the same request, in one run (alternating)."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from webapp.engine import ImageRequest
from webapp.services.images import ImageForm
from webapp.settings import Settings
from webapp.ui.page_bench import image_through_page
from webapp.users import local_user

PROMPT = "a ceramic coffee mug on a wooden table, morning light"
APPTEST_POLL_SECONDS = 0.001  # how often AppTest's run() asks whether the script has ended


def bench_studio(
    settings: Settings, model: str, steps: int | None, repeats: int, app_file: Path
) -> dict[str, Any]:
    """Steps None: the page's automatic steps (the default quality), as a person gets them."""
    from webapp.services import build_services
    from webapp.ui.resources import get_services

    # The page's own engine (its cached resource's) is the one measured on every path.
    image_through_page(app_file, model, PROMPT, steps, seed=1, stock_wait=True)  # loads it
    services = build_services(settings, engine=get_services().engine)
    user = local_user(settings)
    seconds: dict[str, list[float]] = {"engine": [], "page": [], "polled": [], "stock": []}

    def through_engine(seed: int) -> tuple[float, ImageRequest]:
        started = time.perf_counter()
        run = services.images.generate(ImageForm(PROMPT, model=model, steps=steps, seed=seed), user)
        services.images.finish(run, user)
        return time.perf_counter() - started, run.request

    for repeat in range(repeats):
        elapsed, request = through_engine(repeat)
        seconds["engine"].append(elapsed)
        seconds["page"].append(
            image_through_page(app_file, model, PROMPT, steps, repeat, stock_wait=False)
        )
        with polling_like_apptest():
            seconds["polled"].append(through_engine(repeat)[0])
        seconds["stock"].append(
            image_through_page(app_file, model, PROMPT, steps, repeat, stock_wait=True)
        )
    median = {name: statistics.median(values) for name, values in seconds.items()}
    return {
        "bench": "studio",
        "model": model,
        "steps": request.steps,
        "size": f"{request.width}x{request.height}",
        "repeats": repeats,
        "device": str(services.engine.device),
        "service_and_engine_s": round(median["engine"], 4),
        "page_generate_to_image_s": round(median["page"], 4),
        "page_ratio_to_engine": round(median["page"] / median["engine"], 3),
        # AppTest's stock run() asks every millisecond from the calling thread whether the
        # script has ended; on a small CPU that alone slows the engine's worker. Both sides
        # measured under that same poll:
        "stock_apptest_page_s": round(median["stock"], 4),
        "engine_under_apptest_poll_s": round(median["polled"], 4),
        "stock_apptest_ratio_to_engine_under_poll": round(median["stock"] / median["polled"], 3),
        "stock_apptest_ratio_to_engine": round(median["stock"] / median["engine"], 3),
    }


@contextmanager
def polling_like_apptest() -> Iterator[None]:
    """A thread that wakes as AppTest's run() does while the engine works."""
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            time.sleep(APPTEST_POLL_SECONDS)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
