"""`atelier bench text`: text through the engine beside plain `generate`, each system in a
fresh process, rounds in rotated order: one stream and several people at once, first
tokens timed from submission, and the app's real path (a text tool through its page)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from webapp.bench.fresh import run_fresh
from webapp.settings import Settings


def bench_text(
    settings: Settings,
    model: str,
    users: int,
    new_tokens: int,
    repeats: int,
    app_file: Path,
    compare_tree: Path | None = None,
    continuous_batching: bool = False,
) -> dict[str, Any]:
    arguments = {
        "models_dir": str(settings.models_dir),
        "library_dir": str(settings.library_dir),
        "device": settings.device,
        "dtype": settings.dtype,
        "model": model,
        "users": users,
        "new_tokens": new_tokens,
        "app_file": str(app_file),
    }
    systems = [("generate", "generate_text", None), ("engine", "engine_text", None)]
    if compare_tree is not None:
        systems.append(("engine_before", "engine_text", compare_tree))
    if continuous_batching:
        systems.append(("transformers_cb", "continuous_batching_text", None))
    systems.append(("page", "page_text", None))
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in systems}
    for repeat in range(repeats):
        turn = systems[repeat % len(systems) :] + systems[: repeat % len(systems)]
        for name, system, tree in turn:
            rounds[name].append(run_fresh(system, arguments, tree))
    median = {name: _medians(figures) for name, figures in rounds.items()}
    result: dict[str, Any] = {
        "bench": "text",
        "model": model,
        "users": users,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "each_system_in_a_fresh_process": True,
        **{
            f"{name}_{key}": value
            for name, figures in median.items()
            for key, value in figures.items()
        },
    }
    result.update(_ratios(median))
    return result


def _medians(figures: list[dict[str, Any]]) -> dict[str, float]:
    return {key: round(statistics.median(f[key] for f in figures), 4) for key in figures[0]}


def _ratios(median: dict[str, dict[str, float]]) -> dict[str, float]:
    plain, engine = median["generate"], median["engine"]
    ratios = {
        "single_ratio_engine_over_generate": engine["single_tok_s"] / plain["single_tok_s"],
        "batch_ratio_engine_over_static_batch": engine["batch_tok_s"] / plain["batch_tok_s"],
        "page_ratio_over_generate": median["page"]["page_tok_s"] / plain["single_tok_s"],
    }
    if "transformers_cb" in median:
        cb = median["transformers_cb"]
        ratios["single_ratio_engine_over_transformers_cb"] = (
            engine["single_tok_s"] / cb["single_tok_s"]
        )
        ratios["batch_ratio_engine_over_transformers_cb"] = (
            engine["batch_tok_s"] / cb["batch_tok_s"]
        )
    if "engine_before" in median:
        before = median["engine_before"]
        ratios["single_ratio_engine_over_before"] = engine["single_tok_s"] / before["single_tok_s"]
        ratios["batch_ratio_engine_over_before"] = engine["batch_tok_s"] / before["batch_tok_s"]
    return {key: round(value, 3) for key, value in ratios.items()}


def bench_dtype(settings: Settings, model: str, new_tokens: int) -> dict[str, Any]:
    """Every text tool's greedy answer in float32 and in bfloat16: how many tokens agree."""
    arguments = {
        "models_dir": str(settings.models_dir),
        "library_dir": str(settings.library_dir),
        "device": settings.device,
        "model": model,
        "new_tokens": new_tokens,
    }
    full = run_fresh("golden_text", {**arguments, "dtype": "float32"})["answers"]
    half = run_fresh("golden_text", {**arguments, "dtype": "bfloat16"})["answers"]
    tools = {}
    for tool, reference in full.items():
        other = half[tool]
        same = next(
            (i for i, (a, b) in enumerate(zip(reference, other, strict=False)) if a != b),
            min(len(reference), len(other)),
        )
        tools[tool] = {"tokens": len(reference), "first_tokens_equal": same}
    return {
        "bench": "dtype",
        "model": model,
        "new_tokens": new_tokens,
        "tools": tools,
        "identical_answers": sum(full[t] == half[t] for t in full),
        "of": len(full),
    }
