"""The GPU job engine: one per device, the only code that runs models.

`get_engine()` returns the process-wide engine; `build_engine(settings)` makes one for tests
and tools.
"""

from __future__ import annotations

import threading

from webapp.device import memory_budget_bytes, resolve_device
from webapp.engine.engine import Engine
from webapp.engine.jobs import (
    ImageResult,
    Job,
    JobCancelled,
    JobFailed,
    JobStatus,
    Progress,
    TextResult,
)
from webapp.engine.requests import ChatMessage, ImageRequest, LoraWeight, TextRequest
from webapp.loader import ModelManager
from webapp.registry import LiveRegistry
from webapp.settings import Settings, load_settings

__all__ = [
    "ChatMessage",
    "Engine",
    "ImageRequest",
    "ImageResult",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobStatus",
    "LoraWeight",
    "Progress",
    "TextRequest",
    "TextResult",
    "build_engine",
    "get_engine",
    "reset_engine",
]

_engine: Engine | None = None
_engine_lock = threading.Lock()


def build_engine(settings: Settings, **engine_options) -> Engine:
    device = resolve_device(settings)
    registry = LiveRegistry(settings)
    manager = ModelManager(registry, device, memory_budget_bytes(settings, device), settings)
    return Engine(manager, settings, **engine_options)


def get_engine() -> Engine:
    """The process-wide engine, made on first use from the settings."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = build_engine(load_settings())
        return _engine


def reset_engine() -> None:
    """Stop and forget the process-wide engine (tests, settings changes)."""
    global _engine
    with _engine_lock:
        if _engine is not None:
            _engine.shutdown()
            _engine.manager.unload_all()
        _engine = None
