"""`atelier bench studio`: time from pressing Generate to the image shown in Image Studio,
beside the engine's own job time for the same request, in one run (alternating); the first
sign of progress after Generate beside the service's own submit; and the page's rerun with
eight recent images beside the same page with none."""

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
from webapp.ui.page_bench import first_sign_through_page, image_through_page, rerun_seconds
from webapp.users import local_user

PROMPT = "a ceramic coffee mug on a wooden table, morning light"
STUDIO_PAGE = "app_pages/image_studio.py"
RECENT_IMAGES = 8  # what the studio shows under "Your recent images"
APPTEST_POLL_SECONDS = 0.001  # how often AppTest's run() asks whether the script has ended


def bench_studio(
    settings: Settings, model: str, steps: int | None, repeats: int, app_file: Path
) -> dict[str, Any]:
    """Steps None: the page's automatic steps (the default quality), as a person gets them."""
    from webapp.ui.resources import get_services

    # The page's own services (its cached resource's) are measured on every path.
    services = get_services()
    user = local_user(settings)
    if services.history.images(user).total:
        raise RuntimeError("bench studio needs a data dir without images (ATELIER_DATA_DIR)")
    empty_rerun = rerun_seconds(app_file, STUDIO_PAGE, max(repeats, 5))
    image_through_page(app_file, model, PROMPT, steps, seed=1, stock_wait=True)  # loads it
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
    first_sign, submit = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        run = services.images.generate(ImageForm(PROMPT, model=model, steps=steps), user)
        submit.append(time.perf_counter() - started)
        run.job.cancel(user)
        run.job.wait(60)
        first_sign.append(first_sign_through_page(app_file, model, PROMPT, steps))
    while services.history.images(user).total < RECENT_IMAGES:
        through_engine(len(seconds["engine"]))
    recent_rerun = rerun_seconds(app_file, STUDIO_PAGE, max(repeats, 5))
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
        # Server time from Generate to the page's run that shows the place in line or the
        # progress bar, beside the service's submit alone (checks, queueing).
        "first_sign_of_progress_ms": round(statistics.median(first_sign) * 1000, 1),
        "service_submit_ms": round(statistics.median(submit) * 1000, 1),
        # A rerun of Image Studio (script and drawing, AppTest), with no recent images and
        # with the eight it shows.
        "rerun_no_recent_images_ms": round(statistics.median(empty_rerun) * 1000, 1),
        "rerun_eight_recent_images_ms": round(statistics.median(recent_rerun) * 1000, 1),
        "rerun_ratio_eight_to_none": round(
            statistics.median(recent_rerun) / statistics.median(empty_rerun), 3
        ),
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
