"""`atelier bench install`: installing a model from a Hub on this machine (the test Hub
server, on 127.0.0.1) against a plain `huggingface_hub.snapshot_download` of the same repo,
each in a fresh process, in the same run; and what the page's progress costs.

Atelier's install does more than the baseline: it looks the repo up first (a process of its
own), checks the free disk, verifies every file's SHA-256 against the Hub's, and moves the
model in. The bar: at least 80 % of the baseline's speed, and progress (what the page's
fragment asks every second) under 5 % of the install's time.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import save_file

from webapp.hub.process import worker_environment
from webapp.hub.server import FakeHub, repo_from_folder
from webapp.settings import Settings
from webapp.users import User

BENCH_ADMIN = User("bench-admin", "Bench admin", is_admin=True)
REPO_ID = "bench/random-llm"
PAGE_POLL_SECONDS = 1.0  # the Models page's fragment (webapp/ui/model_widgets.py)
FAST_POLL_SECONDS = 0.1

BASELINE = """
import sys, time
from huggingface_hub import snapshot_download
started = time.perf_counter()
snapshot_download(sys.argv[1], local_dir=sys.argv[2], endpoint=sys.argv[3])
print(time.perf_counter() - started)
"""


def make_repo(folder: Path, megabytes: int, shards: int) -> Path:
    """A text model's layout (config, tokenizer, sharded safetensors) with random weights."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    per_shard = megabytes * 2**20 // shards // 4
    weight_map = {}
    for index in range(shards):
        name = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        tensor = torch.randn(per_shard, generator=generator)
        save_file({f"layer{index}.weight": tensor}, str(folder / name))
        weight_map[f"layer{index}.weight"] = name
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text(
        json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    )
    (folder / "tokenizer.json").write_text(json.dumps({"version": "1.0", "model": {}}))
    return folder


def _baseline(hub: FakeHub, target: Path) -> float:
    """snapshot_download in a fresh process (as `hf download` would run); seconds."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", BASELINE, REPO_ID, str(target), hub.url],
        env=worker_environment(hub.url, None),
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def _atelier(services, poll_seconds: float | None) -> tuple[float, list[float]]:
    """One install through the install service, from the call to the model in place;
    with a poller asking for progress every `poll_seconds`, the seconds of each ask."""
    asks: list[float] = []
    started = time.perf_counter()
    install = services.installs.install_repo(REPO_ID, BENCH_ADMIN, name="bench-llm")
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(poll_seconds):
            began = time.perf_counter()
            services.installs.installs(BENCH_ADMIN)
            asks.append(time.perf_counter() - began)

    poller = threading.Thread(target=poll, daemon=True) if poll_seconds else None
    if poller:
        poller.start()
    done = services.installs.wait(install.id)
    seconds = time.perf_counter() - started
    stop.set()
    if poller:
        poller.join()
    if done.status != "done":
        raise RuntimeError(f"the bench install ended {done.status}: {done.error}")
    services.local_models.remove("bench-llm", BENCH_ADMIN)
    services.installs.dismiss(install.id, BENCH_ADMIN)
    return seconds, asks


def bench_install(
    settings: Settings, megabytes: int = 512, shards: int = 4, repeats: int = 3, port: int = 0
) -> dict[str, object]:
    from webapp.services import build_services

    work = Path(tempfile.mkdtemp(prefix="atelier-bench-install-"))
    try:
        repo = make_repo(work / "repo", megabytes, shards)
        with FakeHub(port) as hub:
            served = hub.add(repo_from_folder(REPO_ID, repo))
            total = sum(f.size for f in served.files.values())
            bench_settings = replace(
                settings,
                models_dir=work / "models",
                data_dir=work / "data",
                hf_endpoint=hub.url,
                auth_mode="none",
            )
            services = build_services(bench_settings, client="cli")
            try:
                baseline, atelier, page, fast = [], [], [], []
                for round_ in range(repeats):
                    target = work / f"baseline-{round_}"
                    baseline.append(_baseline(hub, target))
                    shutil.rmtree(target)
                    atelier.append(_atelier(services, None)[0])
                seconds, asks = _atelier(services, PAGE_POLL_SECONDS)
                page.append((seconds, asks))
                seconds, asks = _atelier(services, FAST_POLL_SECONDS)
                fast.append((seconds, asks))
            finally:
                services.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _figures(total, len(served.files), baseline, atelier, page[0], fast[0])


def _figures(total, files, baseline, atelier, page, fast) -> dict[str, object]:
    base, ours = statistics.median(baseline), statistics.median(atelier)
    page_seconds, page_asks = page
    fast_seconds, fast_asks = fast
    page_share = sum(page_asks) / page_seconds
    ratio = base / ours
    return {
        "bench": "install",
        "repo": {"files": files, "bytes": total},
        "repeats": len(baseline),
        "baseline_snapshot_download_s": [round(s, 3) for s in baseline],
        "atelier_install_s": [round(s, 3) for s in atelier],
        "baseline_median_s": round(base, 3),
        "atelier_median_s": round(ours, 3),
        "baseline_mb_per_s": round(total / 2**20 / base, 1),
        "atelier_mb_per_s": round(total / 2**20 / ours, 1),
        "speed_ratio": round(ratio, 3),
        "progress": {
            "page_poll_every_s": PAGE_POLL_SECONDS,
            "asks": len(page_asks),
            "ask_median_ms": round(statistics.median(page_asks) * 1e3, 3) if page_asks else None,
            "share_of_install_time": round(page_share, 5),
            "install_with_page_polling_s": round(page_seconds, 3),
            "fast_poll_every_s": FAST_POLL_SECONDS,
            "install_with_fast_polling_s": round(fast_seconds, 3),
            "fast_share_of_install_time": round(sum(fast_asks) / fast_seconds, 5),
        },
        "meets": {
            "speed_at_least_80_percent": ratio >= 0.8,
            "progress_under_5_percent": page_share < 0.05,
        },
    }
