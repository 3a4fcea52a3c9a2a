"""`atelier bench engine`: the engine against plain diffusers / transformers, in one run.

Images: N users submit one image each at the same moment; the baseline serves the same
requests one at a time with a plain pipeline call. Text: one stream and N concurrent
streams through the engine, against plain `model.generate` one request at a time and as
one static batch. Every figure is a median over repeats, beside its baseline.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import replace
from typing import Any

import torch

from webapp.engine import ChatMessage, ImageRequest, TextRequest
from webapp.engine.factory import build_engine
from webapp.settings import Settings
from webapp.users import User


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def _concurrently(count: int, work) -> tuple[float, list[float]]:
    """Run work(i) on `count` threads released together; makespan and each latency."""
    barrier = threading.Barrier(count + 1)
    latencies = [0.0] * count

    def run(index: int) -> None:
        barrier.wait()
        started = time.perf_counter()
        work(index)
        latencies[index] = time.perf_counter() - started

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, latencies


# -- images ---------------------------------------------------------------------------------


def _image_requests(model: str, users: int, size: int, steps: int) -> list[ImageRequest]:
    return [
        ImageRequest(
            model,
            f"a product photo of item {i}",
            width=size,
            height=size,
            steps=steps,
            guidance=7.5,
            seed=1000 + i,
        )
        for i in range(users)
    ]


def _plain_pipeline_call(pipe, request: ImageRequest, device: torch.device) -> None:
    generator = torch.Generator(device).manual_seed(request.seed)
    pipe(
        request.prompt,
        negative_prompt=request.negative_prompt,
        width=request.width,
        height=request.height,
        num_inference_steps=request.steps,
        guidance_scale=request.guidance,
        generator=generator,
    )
    _sync(device)


def _unet_flops_per_step(pipe, size: int, device: torch.device) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    unet = pipe.unet
    latent = size // pipe.vae_scale_factor
    sample = torch.randn(
        2, unet.config.in_channels, latent, latent, device=device, dtype=unet.dtype
    )
    context = torch.randn(2, 77, unet.config.cross_attention_dim, device=device, dtype=unet.dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(sample, torch.tensor([500, 500], device=device), context)
    return counter.get_total_flops()


def bench_images(
    settings: Settings, model: str, users: int, size: int, steps: int, repeats: int
) -> dict[str, Any]:
    engine = build_engine(settings)
    device = engine.manager.device
    requests = _image_requests(model, users, size, steps)
    owners = [User(f"user-{i}", f"User {i}") for i in range(users)]
    lone_plain, baseline_makespan, baseline_latencies = [], [], []
    lone_engine, engine_makespan, engine_latencies = [], [], []
    try:
        with engine.manager.use(model) as pipe:
            _plain_pipeline_call(pipe, requests[0], device)  # warm-up
            engine.submit(requests[0], owners[0]).result(600)  # warm-up through the engine
            flops = _unet_flops_per_step(pipe, size, device)
            # Baseline and engine alternate within each repeat, so drift in a shared
            # machine's speed affects both alike.
            for _ in range(repeats):
                started = time.perf_counter()
                _plain_pipeline_call(pipe, requests[0], device)
                lone_plain.append(time.perf_counter() - started)
                started = time.perf_counter()
                engine.submit(requests[0], owners[0]).result(600)
                lone_engine.append(time.perf_counter() - started)

                started, finished = time.perf_counter(), []
                for request in requests:
                    _plain_pipeline_call(pipe, request, device)
                    finished.append(time.perf_counter() - started)
                baseline_makespan.append(finished[-1])
                baseline_latencies.append(finished)
                makespan, latencies = _concurrently(
                    users, lambda i: engine.submit(requests[i], owners[i]).result(600)
                )
                engine_makespan.append(makespan)
                engine_latencies.append(latencies)
    finally:
        engine.shutdown()
        engine.manager.unload_all()

    image_steps = users * steps
    makespan = _median(engine_makespan)
    return {
        "model": model,
        "users": users,
        "size": size,
        "steps": steps,
        "repeats": repeats,
        "baseline_plain_makespan_s": _median(baseline_makespan),
        "baseline_plain_user_latency_s": [
            _median(list(c)) for c in zip(*baseline_latencies, strict=True)
        ],
        "engine_makespan_s": makespan,
        "engine_user_latency_s": [_median(list(c)) for c in zip(*engine_latencies, strict=True)],
        "makespan_ratio_engine_over_baseline": round(makespan / _median(baseline_makespan), 3),
        "lone_plain_s": _median(lone_plain),
        "lone_engine_s": _median(lone_engine),
        "lone_overhead_ratio": round(_median(lone_engine) / _median(lone_plain), 3),
        "unet_gflop_per_cfg_step": round(flops / 1e9, 3),
        "engine_unet_tflops_achieved": round(flops * image_steps / makespan / 1e12, 4),
        "channels_last": settings.channels_last,
        "compile_unet": settings.compile_unet,
    }


# -- text -----------------------------------------------------------------------------------


def _text_requests(model: str, users: int, new_tokens: int) -> list[TextRequest]:
    return [
        TextRequest(
            model,
            (ChatMessage("user", f"Write a long story about lighthouse {i}."),),
            max_new_tokens=new_tokens,
            temperature=0.0,
            seed=i,
        )
        for i in range(users)
    ]


def _plain_generate(text_model, requests: list[TextRequest], device: torch.device) -> int:
    """Plain `generate` over the requests as one (left-padded) batch; tokens made."""
    tokenizer = text_model.tokenizer
    tokenizer.padding_side = "left"
    prompts = [
        tokenizer.apply_chat_template(
            [vars(m) for m in r.messages], add_generation_prompt=True, tokenize=False
        )
        for r in requests
    ]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    inputs = inputs.to(device)
    new = requests[0].max_new_tokens
    with torch.inference_mode():
        output = text_model.model.generate(
            **inputs, max_new_tokens=new, min_new_tokens=new, do_sample=False
        )
    _sync(device)
    return (output.shape[1] - inputs["input_ids"].shape[1]) * len(requests)


def bench_text(
    settings: Settings, model: str, users: int, new_tokens: int, repeats: int
) -> dict[str, Any]:
    engine = build_engine(settings)
    device = engine.manager.device
    requests = _text_requests(model, users, new_tokens)
    owners = [User(f"user-{i}", f"User {i}") for i in range(users)]
    plain_single, plain_batch, single, together, first_token = [], [], [], [], []

    def serve_all() -> float:
        results = [None] * users

        def serve(index: int) -> None:
            results[index] = engine.submit(requests[index], owners[index]).result(600)

        makespan, _ = _concurrently(users, serve)
        return sum(r.tokens for r in results) / makespan

    try:
        with engine.manager.use(model) as text_model:
            _plain_generate(text_model, requests[:1], device)  # warm-up
            engine.submit(requests[0], owners[0]).result(600)
            for _ in range(repeats):  # baseline and engine alternate, as for images
                started = time.perf_counter()
                tokens = _plain_generate(text_model, requests[:1], device)
                plain_single.append(tokens / (time.perf_counter() - started))
                started = time.perf_counter()
                result = engine.submit(requests[0], owners[0]).result(600)
                single.append(result.tokens / (time.perf_counter() - started))
                first_token.append(result.first_token_seconds)

                started = time.perf_counter()
                tokens = _plain_generate(text_model, requests, device)
                plain_batch.append(tokens / (time.perf_counter() - started))
                together.append(serve_all())
    finally:
        engine.shutdown()
        engine.manager.unload_all()
    return {
        "model": model,
        "users": users,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "baseline_generate_single_tok_s": _median(plain_single),
        "baseline_generate_static_batch_tok_s": _median(plain_batch),
        "engine_single_stream_tok_s": _median(single),
        "engine_concurrent_aggregate_tok_s": _median(together),
        "engine_first_token_s": _median(first_token),
        "single_ratio_engine_over_generate": round(_median(single) / _median(plain_single), 3),
        "concurrent_ratio_engine_over_static_batch": round(
            _median(together) / _median(plain_batch), 3
        ),
    }


def bench_engine(
    settings: Settings,
    image_model: str | None,
    text_model: str | None,
    users: int,
    size: int,
    steps: int,
    text_users: int,
    new_tokens: int,
    repeats: int,
    speedups: bool,
) -> dict[str, Any]:
    result: dict[str, Any] = {"bench": "engine", "torch": torch.__version__}
    if image_model:
        result["images"] = bench_images(settings, image_model, users, size, steps, repeats)
        if speedups:
            for name, options in (
                ("channels_last", {"channels_last": True}),
                ("compiled", {"compile_unet": True}),
            ):
                started = time.perf_counter()
                figures = bench_images(
                    replace(settings, **options), image_model, users, size, steps, repeats
                )
                figures["bench_seconds_including_compile"] = round(time.perf_counter() - started, 1)
                result[f"images_{name}"] = figures
    if text_model:
        result["text"] = bench_text(settings, text_model, text_users, new_tokens, repeats)
    return result
