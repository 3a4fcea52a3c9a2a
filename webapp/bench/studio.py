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
    settings: Settings, model: str, steps: int, repeats: int, app_file: Path
) -> dict[str, Any]:
    from webapp.services import build_services

    # The page's own process-wide engine is the one measured on both paths.
    image_through_page(app_file, model, PROMPT, steps, seed=1)  # warm-up, loads the model
    services = build_services(settings, engine=get_engine())
    user = local_user(settings)
    engine_seconds, page_seconds = [], []
    for repeat in range(repeats):
        form = ImageForm(PROMPT, model=model, steps=steps, seed=repeat)
        started = time.perf_counter()
        run = services.images.generate(form, user)
        services.images.finish(run, user)
        engine_seconds.append(time.perf_counter() - started)
        page_seconds.append(image_through_page(app_file, model, PROMPT, steps, seed=repeat))
    engine, page = statistics.median(engine_seconds), statistics.median(page_seconds)
    return {
        "bench": "studio",
        "model": model,
        "steps": steps,
        "repeats": repeats,
        "device": str(services.device),
        "service_and_engine_s": round(engine, 4),
        "page_generate_to_image_s": round(page, 4),
        "page_ratio_to_engine": round(page / engine, 3),
    }
