"""Atelier is offline first: the Hugging Face libraries are told never to reach a hub, and
Ray never to send its usage report.

The CLI and the app call `use_offline_environment()` first thing: the libraries read these
variables when they are imported.
"""

from __future__ import annotations

import os

OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DISABLE_TELEMETRY": "1",
    "RAY_USAGE_STATS_ENABLED": "0",  # Ray's usage report to its makers (ATELIER_RAY_ADDRESS)
}


def use_offline_environment() -> None:
    """Set the offline variables, unless the operator has set them otherwise."""
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
