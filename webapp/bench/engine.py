"""`atelier bench engine`: the engine beside plain diffusers and transformers, each system in
a fresh process, rounds in rotated order, medians.

Images: everyone pressing Generate at once through the engine against one plain batched
call of the same images (and against the same images one after another); one person's
image against one plain call. Text: one stream and several people (see bench text).
Mixed: text streams while images are made: the longest wait between two tokens, in
denoising steps, and what the text costs the images.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webapp.bench.fresh import run_fresh
from webapp.settings import Settings


@dataclass(frozen=True)
class EngineBench:
    image_model: str | None
    text_model: str | None
    users: int = 8
    size: int = 512
    steps: int = 30
    text_users: int = 16
    new_tokens: int = 256
    repeats: int = 3
    speedups: bool = False
    mixed: bool = False
    mixed_text_users: int = 4
    mixed_only: bool = False
    compare_tree: Path | None = None


def bench_engine(settings: Settings, bench: EngineBench) -> dict[str, Any]:
    base = {
        "models_dir": str(settings.models_dir),
        "device": settings.device,
        "dtype": settings.dtype,
    }
    result: dict[str, Any] = {"bench": "engine", "repeats": bench.repeats}
    if bench.image_model and not bench.mixed_only:
        images = {**base, "model": bench.image_model, "users": bench.users}
        images.update(size=bench.size, steps=bench.steps)
        result["images"] = _images(images, bench)
        if bench.speedups:
            for name, option in (("channels_last", "channels_last"), ("compiled", "compile_unet")):
                faster = {**images, "settings": {option: True}}
                result[f"images_{name}"] = _images(faster, bench, baseline=False)
    if bench.text_model and not bench.mixed_only:
        text = {**base, "model": bench.text_model, "users": bench.text_users}
        text["new_tokens"] = bench.new_tokens
        result["text"] = _text(text, bench)
    if bench.mixed and bench.image_model and bench.text_model:
        mixed = {**base, "model": bench.image_model, "text_model": bench.text_model}
        mixed.update(
            users=bench.users,
            size=bench.size,
            steps=bench.steps,
            text_users=bench.mixed_text_users,
            new_tokens=bench.new_tokens,
        )
        result["mixed"] = _rounds({"engine": ("engine_mixed", None)}, mixed, bench)
        if bench.compare_tree:
            before = _rounds({"before": ("engine_mixed", bench.compare_tree)}, mixed, bench)
            result["mixed_engine_before"] = before
    return result


def _images(arguments: dict[str, Any], bench: EngineBench, baseline: bool = True) -> dict:
    systems: dict[str, tuple[str, Path | None]] = {"engine": ("engine_images", None)}
    if baseline:
        systems["plain"] = ("plain_images", None)
        if bench.compare_tree:
            systems["engine_before"] = ("engine_images", bench.compare_tree)
    figures = _rounds(systems, arguments, bench)
    if baseline:
        engine, plain = figures["engine"], figures["plain"]
        figures["makespan_ratio_engine_over_one_batched_call"] = round(
            engine["makespan_s"] / plain["batched_call_s"], 3
        )
        figures["makespan_ratio_engine_over_one_by_one"] = round(
            engine["makespan_s"] / plain["one_by_one_s"], 3
        )
        figures["lone_overhead_ratio"] = round(engine["lone_s"] / plain["lone_s"], 3)
        if "engine_before" in figures:
            before = figures["engine_before"]
            figures["makespan_ratio_engine_over_before"] = round(
                engine["makespan_s"] / before["makespan_s"], 3
            )
            figures["lone_ratio_engine_over_before"] = round(engine["lone_s"] / before["lone_s"], 3)
    return figures


def _text(arguments: dict[str, Any], bench: EngineBench) -> dict:
    systems: dict[str, tuple[str, Path | None]] = {
        "engine": ("engine_text", None),
        "generate": ("generate_text", None),
    }
    if bench.compare_tree:
        systems["engine_before"] = ("engine_text", bench.compare_tree)
    figures = _rounds(systems, arguments, bench)
    engine, plain = figures["engine"], figures["generate"]
    figures["single_ratio_engine_over_generate"] = round(
        engine["single_tok_s"] / plain["single_tok_s"], 3
    )
    figures["batch_ratio_engine_over_static_batch"] = round(
        engine["batch_tok_s"] / plain["batch_tok_s"], 3
    )
    if "engine_before" in figures:
        before = figures["engine_before"]
        for key in ("single_tok_s", "batch_tok_s"):
            figures[f"{key}_ratio_engine_over_before"] = round(engine[key] / before[key], 3)
    return figures


def _rounds(
    systems: dict[str, tuple[str, Path | None]], arguments: dict[str, Any], bench: EngineBench
) -> dict[str, Any]:
    """Each system once per round, in a fresh process, the order rotated every round."""
    names = list(systems)
    seen: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for repeat in range(bench.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            system, tree = systems[name]
            seen[name].append(run_fresh(system, arguments, tree))
    return {
        name: {key: round(statistics.median(f[key] for f in figures), 4) for key in figures[0]}
        for name, figures in seen.items()
    }
