"""`atelier bench remote`: Atelier's remote paths beside what they drive, each system in a
fresh process, rounds in rotated order, in the same run.

- images: the image lane sending to Ray Serve replicas beside the local lane (one person's
  image, then everyone's at once): the distributed path's overhead.
- text (when a server is named): streams through Atelier's remote text backend beside the
  same chats sent straight to the server (vLLM): aggregate tokens/s and first tokens.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any

from webapp.bench.fresh import run_fresh
from webapp.settings import Settings


@dataclass(frozen=True)
class RemoteBench:
    image_model: str = "tiny-sd"
    users: int = 8
    size: int = 64
    steps: int = 10
    ray_address: str = ""  # empty: a Ray cluster of the bench's own, on this machine
    ray_cpus: int = 2
    ray_replicas: int = 2
    ray_gpus_per_replica: float = 0.0
    ray_cpus_per_replica: float = 0.5
    text_url: str = ""  # an OpenAI-compatible server's /v1 URL; empty: no text figures
    served_model: str = ""
    text_users: int = 8
    new_tokens: int = 64
    repeats: int = 3


def bench_remote(settings: Settings, bench: RemoteBench) -> dict[str, Any]:
    base = {
        "models_dir": str(settings.models_dir),
        "device": settings.device,
        "dtype": settings.dtype,
    }
    images = {
        **base,
        "model": bench.image_model,
        "users": bench.users,
        "size": bench.size,
        "steps": bench.steps,
        "ray_address": bench.ray_address,
        "ray_cpus": bench.ray_cpus,
        "ray_replicas": bench.ray_replicas,
        "ray_gpus_per_replica": bench.ray_gpus_per_replica,
        "ray_cpus_per_replica": bench.ray_cpus_per_replica,
    }
    systems = []
    if bench.image_model:
        systems += [("local", "engine_images", images), ("ray", "ray_images", images)]
    if bench.text_url:
        served = bench.served_model or "served"
        text = {
            **base,
            "model": "remote-bench",
            "users": bench.text_users,
            "new_tokens": bench.new_tokens,
            "url": bench.text_url.rstrip("/"),
            "served_model": served,
            "text_servers": json.dumps(
                [
                    {
                        "model": "remote-bench",
                        "served_model": served,
                        "urls": [bench.text_url],
                        "max_concurrency": bench.text_users,
                    }
                ]  # fmt: skip
            ),
        }
        systems.append(("atelier_text", "remote_engine_text", text))
        systems.append(("direct_text", "direct_text", text))
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in systems}
    for repeat in range(bench.repeats):
        turn = systems[repeat % len(systems) :] + systems[: repeat % len(systems)]
        for name, system, arguments in turn:
            rounds[name].append(run_fresh(system, arguments))
    median = {
        name: {key: round(statistics.median(f[key] for f in figures), 4) for key in figures[0]}
        for name, figures in rounds.items()
    }
    result: dict[str, Any] = {
        "bench": "remote",
        "each_system_in_a_fresh_process": True,
        "repeats": bench.repeats,
    }
    if bench.image_model:
        result["images"] = {
            "model": bench.image_model,
            "users": bench.users,
            "size": bench.size,
            "steps": bench.steps,
            "ray_address": bench.ray_address or "a local cluster of the bench's own",
            "ray_replicas": bench.ray_replicas,
            "device": settings.device,
            "local": median["local"],
            "ray": median["ray"],
            "makespan_ratio_ray_over_local": _ratio(median["ray"], median["local"], "makespan_s"),
            "lone_ratio_ray_over_local": _ratio(median["ray"], median["local"], "lone_s"),
        }
    if bench.text_url:
        atelier, direct = median["atelier_text"], median["direct_text"]
        result["text"] = {
            "url": bench.text_url,
            "users": bench.text_users,
            "new_tokens": bench.new_tokens,
            "atelier": atelier,
            "direct": direct,
            "batch_tok_s_ratio_atelier_over_direct": _ratio(atelier, direct, "batch_tok_s"),
            "single_tok_s_ratio_atelier_over_direct": _ratio(atelier, direct, "single_tok_s"),
            "batch_first_token_extra_s": round(
                atelier["batch_first_token_s"] - direct["batch_first_token_s"], 4
            ),
        }
    return result


def _ratio(numerator: dict[str, float], denominator: dict[str, float], key: str) -> float:
    return round(numerator[key] / denominator[key], 3)
