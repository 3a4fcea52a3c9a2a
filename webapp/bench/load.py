"""`atelier bench load`: cold-load seconds and warm `get()` latency of one model.

For the embedded default model the same run also loads the packaged GGUF directly, the
baseline its converted folder must beat.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

import webapp.backends.diffusion  # noqa: F401  (imported up front: the bench times loads, not imports)
from webapp.backends.llm import load_text_model
from webapp.device import dtype_for, memory_budget_bytes, resolve_device
from webapp.embedded import DEFAULT_TEXT_MODEL, packaged_gguf
from webapp.loader import ModelManager
from webapp.registry import LiveRegistry
from webapp.settings import Settings


def bench_load(settings: Settings, model: str, warm_calls: int = 2000) -> dict[str, object]:
    """The model manager alone, in this process's only torch thread."""
    device = resolve_device(settings)
    registry = LiveRegistry(settings)
    manager = ModelManager(registry, device, memory_budget_bytes(settings, device), settings)
    entry = registry().get(model)

    started = time.perf_counter()
    manager.get(model)
    cold = time.perf_counter() - started

    warm = []
    for _ in range(warm_calls):
        started = time.perf_counter()
        manager.get(model)
        warm.append(time.perf_counter() - started)
    warm.sort()
    stats = manager.stats_of(model)
    result: dict[str, object] = {
        "bench": "load",
        "model": model,
        "format": entry.format,
        "device": stats.device,
        "dtype": stats.dtype,
        "resident_mb": round(stats.bytes / 2**20, 1),
        "cold_load_s": round(cold, 4),
        "warm_get_calls": warm_calls,
        "warm_get_median_ms": round(statistics.median(warm) * 1e3, 5),
        "warm_get_p99_ms": round(warm[int(len(warm) * 0.99) - 1] * 1e3, 5),
    }
    manager.unload_all()
    if model == DEFAULT_TEXT_MODEL:
        result.update(_gguf_baseline(entry, device, settings, cold))
    return result


def _gguf_baseline(entry, device, settings: Settings, folder_seconds: float) -> dict[str, object]:
    gguf = packaged_gguf()
    gguf_entry = replace(entry, path=gguf, format="gguf")
    dtype = dtype_for("text", entry.family, device, settings)
    started = time.perf_counter()
    load_text_model(gguf_entry, device, dtype)
    seconds = time.perf_counter() - started
    return {
        "baseline_gguf_load_s": round(seconds, 3),
        "speedup_vs_gguf": round(seconds / folder_seconds, 1),
    }
