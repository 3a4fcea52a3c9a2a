"""What every bench system shares: the people, their chats, the settings and engine of a
fresh process, and releasing everyone at once.

The systems run as a script (`systems.py`) whose folder is first on the import path, so
they import these siblings by their own names: with `PYTHONPATH=TREE` the `webapp` package
is another checkout's, and these must not come from it.
"""

from __future__ import annotations

import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from at_once import at_once

TEXT = (
    "Northwind Trading is moving its spring campaign from April to May. The design team "
    "needs the new product photos by the end of March, and the copy team wants two weeks "
    "to review the brand voice for the launch emails. Anna from finance asked for a "
    "budget update before the board meeting on Tuesday, including the cost of the extra "
    "photo shoot and the translation of the landing page into German and French. Ben "
    "will collect quotes from three studios. The support team reminded everyone that the "
    "return policy changes on the first of June and that the FAQ must say so clearly."
)


def chat_prompt(index: int) -> list[dict[str, str]]:
    """A chat of about 200 tokens, different for each person."""
    return [
        {"role": "system", "content": "You are a helpful assistant for a marketing team."},
        {
            "role": "user",
            "content": f"Note {index}: {TEXT}\n\nWrite a long, detailed story "
            "about how this team prepares the campaign, week by week.",
        },
    ]


def bench_settings(arguments: dict[str, Any]):
    from webapp.settings import Settings

    known = {f.name for f in fields(Settings)}
    values = {
        "models_dir": Path(arguments["models_dir"]),
        "data_dir": Path(tempfile.mkdtemp(prefix="atelier-bench-")),
        "device": arguments.get("device", "auto"),
        "dtype": arguments.get("dtype", "auto"),
        "queue_max_per_user": 64,
        "queue_max_total": 256,
        **arguments.get("settings", {}),
    }
    return Settings(**{key: value for key, value in values.items() if key in known})


def bench_engine(settings):
    try:
        from webapp.engine.factory import build_engine
    except ImportError:  # engines before the lanes: one module, one global
        from webapp.engine import build_engine
    return build_engine(settings)


def people(count: int):
    from webapp.users import User

    return [User(f"user-{i}", f"User {i}") for i in range(count)]


def together(count: int, work) -> float:
    """Run work(i) on `count` threads released at once; the makespan in seconds."""
    return at_once(work, range(count))[0]
