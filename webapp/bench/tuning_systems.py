"""The systems `atelier bench tuning` compares, each run in a fresh process (fresh.py):
the engine's training lane against a plain PEFT training loop on the same data; serving
with a tuned voice's adapter against the bare base; a text job's latency while a run
trains against an idle engine."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

VOICE = (
    "Hey friend! Our {thing} does one job and does it well: it {verb} in seconds, cleans "
    "up in a minute, and lasts for years. Simple, cheerful, done. Questions? We're one "
    "message away, every day of the week."
)
THINGS = ("kettle", "toaster", "blender", "lamp", "fan", "heater", "grinder", "scale")
VERBS = ("boils", "toasts", "blends", "shines", "cools", "warms", "grinds", "weighs")


def examples(count: int):
    """Approved texts of about the same length (so padding costs both sides alike)."""
    from webapp.engine.requests import TrainingExample
    from webapp.tuning.prompts import prompt_messages

    return tuple(
        TrainingExample(
            prompt_messages(""),
            VOICE.format(thing=THINGS[i % 8], verb=VERBS[(i // 8) % 8]) + f" (No. {i})",
            f"bench {i}",
        )
        for i in range(count)
    )


def _settings(arguments: dict[str, Any]):
    from webapp.settings import Settings

    return Settings(
        models_dir=Path(arguments["models_dir"]),
        data_dir=Path(tempfile.mkdtemp(prefix="atelier-bench-")),
        device=arguments.get("device", "auto"),
        queue_max_per_user=64,
        queue_max_total=256,
    )


def _tuning(arguments: dict[str, Any]):
    from webapp.tuning.presets import TuningSettings

    return TuningSettings(
        rank=8, alpha=16, learning_rate=2e-4, epochs=50, batch_size=arguments["batch_size"],
        max_steps=arguments["steps"],
    )  # fmt: skip


def _request(arguments: dict[str, Any], steps: int | None = None):
    from dataclasses import replace

    from webapp.engine.requests import TrainingRequest

    data = examples(arguments["examples"])
    settings = _tuning(arguments)
    if steps is not None:
        settings = replace(settings, max_steps=steps)
    return TrainingRequest(
        model=arguments["model"],
        train=data[2:],
        held_back=data[:2],
        settings=settings,
        folder=tempfile.mkdtemp(prefix="atelier-bench-run-"),
        samples=0,
    )


def lane_training(arguments: dict[str, Any]) -> dict[str, Any]:
    """The engine's training lane: trained tokens per second of `trainer.train()`."""
    from webapp.engine.factory import build_engine
    from webapp.users import User

    engine = build_engine(_settings(arguments))
    try:
        result = engine.submit(_request(arguments), User("bench", "Bench")).result(3600)
    finally:
        engine.shutdown()
    return {"tokens": result.tokens, "seconds": result.seconds, "steps": result.steps}


def plain_training(arguments: dict[str, Any]) -> dict[str, Any]:
    """A plain PEFT loop on the same examples, settings and device: forward, backward,
    clip, AdamW step and a linear schedule, batches in order."""
    import torch

    from webapp.backends import lora_training
    from webapp.backends.llm import load_text_model
    from webapp.device import resolve_device
    from webapp.registry import LiveRegistry

    settings = _settings(arguments)
    entry = LiveRegistry(settings)().get(arguments["model"], kind="text")
    device = resolve_device(settings)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    text_model = load_text_model(entry, device, dtype)
    tuning = _tuning(arguments)
    model = lora_training.with_lora(text_model.model, tuning)
    model.train()
    tokenizer = text_model.tokenizer
    rows = [
        lora_training.encode(tokenizer, [vars(m) for m in e.prompt], e.answer)
        for e in examples(arguments["examples"])[2:]
    ]
    collate = lora_training.collate(tokenizer.pad_token_id or 0)
    dataset = [{"input_ids": r.input_ids, "labels": r.labels} for r in rows]
    size, steps = tuning.batch_size, tuning.max_steps
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=tuning.learning_rate
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    tokens = 0
    started = time.perf_counter()
    for step in range(steps):
        first = (step * size) % len(dataset)
        chosen = (dataset * 2)[first : first + size]
        batch = {k: v.to(device) for k, v in collate(chosen).items()}
        tokens += int(batch["attention_mask"].sum())
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"tokens": tokens, "seconds": time.perf_counter() - started, "steps": steps}


def _adapter(arguments: dict[str, Any], settings) -> Any:
    """A LoRA adapter with random, non-zero weights on every projection (a tuned voice
    costs the same whatever it learned)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from webapp.backends.lora_training import TARGET_MODULES
    from webapp.engine.requests import VoiceAdapter

    folder = Path(tempfile.mkdtemp(prefix="atelier-bench-adapter-"))
    base = settings.models_dir / arguments["model"]
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, local_files_only=True)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=TARGET_MODULES,
                        init_lora_weights=False, task_type="CAUSAL_LM")  # fmt: skip
    get_peft_model(model, config).save_pretrained(folder, safe_serialization=True)
    return VoiceAdapter(name="bench-voice", folder=str(folder))


def _ask(arguments: dict[str, Any], adapter, index: int = 0):
    """The brand-voice rewrite of a short text, answered greedily."""
    from webapp.engine.requests import TextRequest
    from webapp.tuning.prompts import prompt_messages

    question = VOICE.format(thing=THINGS[index % 8], verb="works")
    return TextRequest(
        model=arguments["model"],
        messages=prompt_messages(question),
        max_new_tokens=arguments["new_tokens"],
        temperature=0.0,
        adapter=adapter,
    )


def adapter_serving(arguments: dict[str, Any]) -> dict[str, Any]:
    """Seconds per generated token, one request at a time, with the voice's adapter and
    with the bare base, alternating; then a batch of `users` requests, half in the voice,
    against the same batch all on the base."""
    from webapp.engine.factory import build_engine
    from webapp.users import User

    settings = _settings(arguments)
    adapter = _adapter(arguments, settings)
    engine = build_engine(settings)
    user = User("bench", "Bench")
    per_token: dict[str, list[float]] = {"base": [], "voice": []}
    batch: dict[str, list[float]] = {"base": [], "mixed": []}
    try:
        for warm in (None, adapter):
            engine.submit(_ask(arguments, warm), user).result(600)
        for _ in range(arguments["repeats"]):
            for name, chosen in (("base", None), ("voice", adapter)):
                started = time.perf_counter()
                result = engine.submit(_ask(arguments, chosen), user).result(600)
                per_token[name].append((time.perf_counter() - started) / max(1, result.tokens))
            for name in ("base", "mixed"):
                count = arguments["users"]
                voices = [adapter if name == "mixed" and i % 2 else None for i in range(count)]
                started = time.perf_counter()
                jobs = [engine.submit(_ask(arguments, v, i), user) for i, v in enumerate(voices)]
                tokens = sum(job.result(600).tokens for job in jobs)
                batch[name].append((time.perf_counter() - started) / max(1, tokens))
    finally:
        engine.shutdown()
    return {"per_token": per_token, "batch_per_token": batch}


def text_during_training(arguments: dict[str, Any]) -> dict[str, Any]:
    """A short text job's latency (submit to done) on an idle engine, then while a long
    training run is under way; and the training run's seconds per step meanwhile."""
    from webapp.engine.factory import build_engine
    from webapp.users import User

    engine = build_engine(_settings(arguments))
    user, trainer = User("bench", "Bench"), User("trainer", "Trainer")
    idle, busy = [], []
    try:
        engine.submit(_ask(arguments, None), user).result(600)  # warm
        for _ in range(arguments["repeats"]):
            started = time.perf_counter()
            engine.submit(_ask(arguments, None), user).result(600)
            idle.append(time.perf_counter() - started)
        run = engine.submit(_request(arguments, steps=10_000), trainer)
        while run.progress.step < 2:
            run.wait_for_update(1)
        step_started, steps_started = time.perf_counter(), run.progress.step
        for _ in range(arguments["repeats"]):
            threading.Event().wait(0.3)  # land in the middle of a training step
            started = time.perf_counter()
            engine.submit(_ask(arguments, None), user).result(600)
            busy.append(time.perf_counter() - started)
        steps = max(1, run.progress.step - steps_started)
        step_seconds = (time.perf_counter() - step_started) / steps
        run.cancel(trainer)
    finally:
        engine.shutdown()
    return {
        "idle_s": statistics.median(idle),
        "during_training_s": statistics.median(busy),
        "training_s_per_step_meanwhile": step_seconds,
    }


TUNING_SYSTEMS = {
    "lane_training": lane_training,
    "plain_training": plain_training,
    "adapter_serving": adapter_serving,
    "text_during_training": text_during_training,
}
