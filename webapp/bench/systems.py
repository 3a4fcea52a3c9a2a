"""The systems benchmarks compare, each run alone in a fresh process (see fresh.py).

Run as a script: `python webapp/bench/systems.py SYSTEM JSON`; the last line printed is
the figures as JSON. The engine systems use only what today's engine and earlier ones
share, so the same code measures another checkout (`PYTHONPATH=TREE`). The systems live
beside this script (`text_systems.py`, `image_systems.py`, their shared `system_kit.py`)
and are imported by their own names, from this folder, never from that checkout.
"""

from __future__ import annotations

import json
import sys

from image_systems import engine_images, engine_mixed, plain_images, ray_images
from text_systems import (
    continuous_batching_text,
    direct_text,
    engine_text,
    generate_text,
    golden_text,
    page_text,
    remote_engine_text,
)

SYSTEMS = {
    "generate_text": generate_text,
    "engine_text": engine_text,
    "continuous_batching_text": continuous_batching_text,
    "golden_text": golden_text,
    "page_text": page_text,
    "plain_images": plain_images,
    "engine_images": engine_images,
    "ray_images": ray_images,
    "remote_engine_text": remote_engine_text,
    "direct_text": direct_text,
    "engine_mixed": engine_mixed,
}


def system(name: str):
    """The system called `name`. The tuning systems are imported only when asked for:
    older checkouts, which `--compare-tree` runs these systems against, do not have them."""
    if name in SYSTEMS:
        return SYSTEMS[name]
    from webapp.bench.tuning_systems import TUNING_SYSTEMS

    return TUNING_SYSTEMS[name]


if __name__ == "__main__":
    figures = system(sys.argv[1])(json.loads(sys.argv[2]))
    print(json.dumps(figures))
