"""Fakes for tests above the model adapters (the slow and canned ones live in webapp.bench.fakes,
which the load benchmark shares)."""

from __future__ import annotations

import threading

import torch
from PIL import Image

from webapp.bench.fakes import CannedDecodeBatch, SlowImages  # noqa: F401  (re-exported)


class Recorder:
    """A fake image runner: records each pipeline call, can block, fail or run out of memory."""

    def __init__(self, steps=3):
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.in_first_call = threading.Event()
        self.fail_prompts: set[str] = set()
        self.oom_above = None
        self.steps = steps
        self.on_step_hook = None

    def __call__(self, pipe, rows, settings, on_step):
        self.in_first_call.set()
        self.gate.wait(30)
        prompts = [row.prompt for row in rows]
        if self.oom_above is not None and len(rows) > self.oom_above:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if self.fail_prompts & set(prompts):
            raise RuntimeError("injected failure")
        self.calls.append(prompts)
        for step in range(1, self.steps + 1):
            if self.on_step_hook:
                self.on_step_hook(step, prompts)
            if on_step(step, torch.zeros(len(rows), 4, 8, 8)):
                break
        return [Image.new("RGB", (8, 8), (row.seed % 256, 0, 0)) for row in rows]
