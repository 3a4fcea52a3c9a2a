"""`atelier bench tuning`: brand voice tuning on this machine, every figure beside its
baseline measured in the same run, each system in a fresh process (fresh.py).

1. Training: trained tokens per second of the engine's training lane (transformers'
   Trainer, checkpoints, a yield to waiting jobs after every step) against a plain PEFT
   loop on the same examples and settings, rounds in rotated order. Target: at least 0.9x.
2. Serving: seconds per generated token with a tuned voice's adapter switched on for the
   request, against the bare base, alternating; and a batch half in the voice against the
   same batch on the base. Target: under 10% added.
3. Interactive work while training: a short text job's latency on an idle engine and while
   a run trains (it waits at most for the step under way).

Medians over repeats.
"""

from __future__ import annotations

import statistics
from typing import Any

from webapp.bench.fresh import run_fresh
from webapp.settings import Settings

PARTS = ("training", "serving", "interactive")


def _median(values: list[float], digits: int = 4) -> float:
    return round(statistics.median(values), digits)


def bench_tuning(
    settings: Settings,
    model: str,
    examples: int = 48,
    steps: int = 12,
    batch_size: int = 4,
    repeats: int = 3,
    new_tokens: int = 48,
    users: int = 4,
    parts: tuple[str, ...] = PARTS,
) -> dict[str, Any]:
    arguments = {
        "models_dir": str(settings.models_dir),
        "device": settings.device,
        "model": model,
        "examples": examples,
        "steps": steps,
        "batch_size": batch_size,
        "repeats": repeats,
        "new_tokens": new_tokens,
        "users": users,
    }
    out: dict[str, Any] = {"model": model, "device": settings.device, "arguments": arguments}
    if "training" in parts:
        out["training"] = _training(arguments, repeats)
    if "serving" in parts:
        out["serving"] = _serving(run_fresh("adapter_serving", arguments))
    if "interactive" in parts:
        figures = run_fresh("text_during_training", arguments)
        out["interactive"] = {
            **{key: round(value, 4) for key, value in figures.items()},
            "ratio_during_vs_idle": round(figures["during_training_s"] / figures["idle_s"], 3),
        }
    return out


def _training(arguments: dict[str, Any], repeats: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"lane_training": [], "plain_training": []}
    systems = list(rates)
    for round_ in range(repeats):
        for system in systems[round_ % 2 :] + systems[: round_ % 2]:
            figures = run_fresh(system, arguments)
            rates[system].append(figures["tokens"] / figures["seconds"])
    lane, plain = _median(rates["lane_training"], 1), _median(rates["plain_training"], 1)
    return {
        "lane_tokens_per_s": lane,
        "plain_peft_loop_tokens_per_s": plain,
        "ratio_lane_vs_plain": round(lane / plain, 3),
        "target": ">= 0.9",
        "rounds": {name: [round(r, 1) for r in values] for name, values in rates.items()},
    }


def _serving(figures: dict[str, Any]) -> dict[str, Any]:
    base = _median(figures["per_token"]["base"], 5)
    voice = _median(figures["per_token"]["voice"], 5)
    batch_base = _median(figures["batch_per_token"]["base"], 5)
    batch_mixed = _median(figures["batch_per_token"]["mixed"], 5)
    return {
        "base_s_per_token": base,
        "voice_s_per_token": voice,
        "added_latency": f"{(voice / base - 1) * 100:.1f}%",
        "ratio_voice_vs_base": round(voice / base, 3),
        "batch_base_s_per_token": batch_base,
        "batch_half_in_voice_s_per_token": batch_mixed,
        "ratio_batch_mixed_vs_base": round(batch_mixed / batch_base, 3),
        "target": "< 10% added",
    }
