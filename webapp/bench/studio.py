"""`atelier bench studio`: time from pressing Generate to the image shown in Image Studio,
beside the engine's own job time for the same request, in one run (alternating)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from webapp.engine import get_engine
from webapp.services.images import ImageForm
from webapp.settings import Settings
from webapp.ui.page_bench import image_through_page
from webapp.users import local_user

PROMPT = "a ceramic coffee mug on a wooden table, morning light"


def bench_studio(
    settings: Settings, model: str, steps: int | None, repeats: int, app_file: Path
) -> dict[str, Any]:
    """Steps None: the page's automatic steps (the default quality), as a person gets them."""
    from webapp.services import build_services

    # The page's own process-wide engine is the one measured on every path.
    image_through_page(app_file, model, PROMPT, steps, seed=1, stock_wait=True)  # loads it
    services = build_services(settings, engine=get_engine())
    user = local_user(settings)
    engine_seconds, page_seconds, stock_page_seconds = [], [], []
    for repeat in range(repeats):
        form = ImageForm(PROMPT, model=model, steps=steps, seed=repeat)
        started = time.perf_counter()
        run = services.images.generate(form, user)
        services.images.finish(run, user)
        engine_seconds.append(time.perf_counter() - started)
        page_seconds.append(
            image_through_page(app_file, model, PROMPT, steps, repeat, stock_wait=False)
        )
        stock_page_seconds.append(
            image_through_page(app_file, model, PROMPT, steps, repeat, stock_wait=True)
        )
    engine = statistics.median(engine_seconds)
    page, stock_page = statistics.median(page_seconds), statistics.median(stock_page_seconds)
    return {
        "bench": "studio",
        "model": model,
        "steps": run.request.steps,
        "size": f"{run.request.width}x{run.request.height}",
        "repeats": repeats,
        "device": str(services.device),
        "service_and_engine_s": round(engine, 4),
        "page_generate_to_image_s": round(page, 4),
        "page_ratio_to_engine": round(page / engine, 3),
        # The same, with AppTest's stock run(): it polls every millisecond from the
        # calling thread, and on a small CPU that alone slows the engine's worker.
        "stock_apptest_page_s": round(stock_page, 4),
        "stock_apptest_ratio_to_engine": round(stock_page / engine, 3),
    }
