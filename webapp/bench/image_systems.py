"""The image systems: one plain batched diffusers call, the engine on this device or on a
Ray cluster, and text streams while the engine makes images."""

from __future__ import annotations

import statistics
import time
from typing import Any

from system_kit import bench_engine, bench_settings, chat_prompt, people, together


def _image_request(arguments: dict[str, Any], index: int):
    from webapp.engine import ImageRequest

    return ImageRequest(
        arguments["model"],
        f"a product photo of item {index}, studio light",
        width=arguments["size"],
        height=arguments["size"],
        steps=arguments["steps"],
        guidance=7.5,
        seed=1000 + index,
    )


def plain_images(arguments: dict[str, Any]) -> dict[str, Any]:
    """Plain diffusers on this process's only thread: one image; everyone's images as one
    batched call (one generator per image); everyone's images one after another."""
    import torch

    from webapp.backends.diffusion import load_pipeline
    from webapp.device import dtype_for, resolve_device
    from webapp.registry import discover

    settings = bench_settings(arguments)
    entry = discover(settings).get(arguments["model"])
    device = resolve_device(settings)
    pipe = load_pipeline(entry, device, dtype_for("image", entry.family, device, settings))
    requests = [_image_request(arguments, i) for i in range(arguments["users"])]

    def call(batch) -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            pipe(
                prompt=[r.prompt for r in batch],
                negative_prompt=[r.negative_prompt for r in batch],
                width=batch[0].width,
                height=batch[0].height,
                num_inference_steps=batch[0].steps,
                guidance_scale=batch[0].guidance,
                generator=[torch.Generator(device).manual_seed(r.seed) for r in batch],
            )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

    call(requests[:1])  # warm-up
    return {
        "lone_s": call(requests[:1]),
        "batched_call_s": call(requests),
        "one_by_one_s": sum(call([r]) for r in requests),
    }


def engine_images(arguments: dict[str, Any]) -> dict[str, Any]:
    """The engine alone in its process: one person's image, then everyone pressing Generate
    at the same moment; times from submission."""
    return _engine_images(bench_engine(bench_settings(arguments)), arguments, warm_up=1)


def ray_images(arguments: dict[str, Any]) -> dict[str, Any]:
    """`engine_images` with the image lane sending to Ray Serve replicas: on the cluster at
    `ray_address`, or on a cluster of this process's own (`ray_cpus` CPUs, no dashboard)."""
    from dataclasses import replace

    import ray
    from ray import serve

    from webapp.engine.remote_images import ClusterState

    address = arguments.get("ray_address") or ""
    if not address:
        ray.init(num_cpus=arguments["ray_cpus"], include_dashboard=False,
                 logging_level="ERROR", log_to_driver=False)  # fmt: skip
        address = ray.get_runtime_context().gcs_address
    settings = replace(
        bench_settings(arguments),
        ray_address=address,
        ray_replicas=arguments["ray_replicas"],
        ray_gpus_per_replica=arguments["ray_gpus_per_replica"],
        ray_cpus_per_replica=arguments["ray_cpus_per_replica"],
    )
    engine = bench_engine(settings)
    try:
        remote = engine.lane("image").remote
        deadline = time.monotonic() + 600
        while remote.state == ClusterState.CONNECTING and time.monotonic() < deadline:
            time.sleep(0.2)
        if remote.state != ClusterState.UP:
            raise RuntimeError(f"the Ray cluster is not usable: {remote.status()}")
        return _engine_images(engine, arguments, warm_up=arguments["ray_replicas"])
    finally:
        if not arguments.get("ray_address"):
            serve.shutdown()
            ray.shutdown()


def _engine_images(engine, arguments: dict[str, Any], warm_up: int) -> dict[str, float]:
    users = people(max(arguments["users"], warm_up))

    def serve(index: int) -> None:
        engine.submit(_image_request(arguments, index), users[index]).result(3600)

    try:
        together(warm_up, serve)  # warm-up: loads the model (on every replica)
        lone = together(1, serve)
        makespan = together(arguments["users"], serve)
    finally:
        engine.shutdown()
    return {"lone_s": lone, "makespan_s": makespan}


def engine_mixed(arguments: dict[str, Any]) -> dict[str, Any]:
    """Images alone, then the same images with text streams at the same time: how long the
    streams go without a token while images are made, and what the text costs the images."""
    from webapp.engine import ChatMessage, TextRequest

    engine = bench_engine(bench_settings(arguments))
    users = people(arguments["users"] + arguments["text_users"])
    images = range(arguments["users"])
    streams = range(arguments["users"], len(users))

    def words(index: int, tokens: int) -> TextRequest:
        messages = tuple(ChatMessage(m["role"], m["content"]) for m in chat_prompt(index))
        return TextRequest(
            arguments["text_model"], messages, max_new_tokens=tokens, temperature=0.0
        )

    def timeline(job) -> list[float]:
        """When each step (a token, a denoising step) of `job` became visible."""
        seen, times = 0, []
        while not job.finished:
            job.wait_for_update(1)
            if job.progress.step > seen:
                seen = job.progress.step
                times.append(time.perf_counter())
        return times

    try:
        engine.submit(_image_request(arguments, 0), users[0]).result(3600)  # warm-ups
        engine.submit(words(0, 4), users[0]).result(3600)
        alone = together(
            len(images),
            lambda i: engine.submit(_image_request(arguments, i), users[i]).result(3600),
        )
        jobs: dict[int, Any] = {}
        steps: dict[int, list[float]] = {}

        def run(index: int) -> None:
            if index in images:
                jobs[index] = engine.submit(_image_request(arguments, index), users[index])
            else:
                jobs[index] = engine.submit(words(index, arguments["new_tokens"]), users[index])
            steps[index] = timeline(jobs[index])

        together(len(users), run)
        submitted = min(jobs[i].submitted_at for i in images)
        image_end = max(jobs[i].finished_at for i in images) - submitted
    finally:
        engine.shutdown()
    denoise = [b - a for i in images for a, b in zip(steps[i], steps[i][1:], strict=False)]
    image_span = (min(min(steps[i]) for i in images), max(max(steps[i]) for i in images))
    gaps, during = [], 0
    for index in streams:
        times = [t for t in steps[index] if image_span[0] <= t <= image_span[1]]
        during += len(times)
        gaps.extend(b - a for a, b in zip(times, times[1:], strict=False))
    step_seconds = statistics.median(denoise) if denoise else float("nan")
    longest = max(gaps) if gaps else float("nan")
    return {
        "images_alone_makespan_s": alone,
        "images_with_text_makespan_s": image_end,
        "denoising_step_s": step_seconds,
        "longest_token_gap_during_images_s": longest,
        "longest_token_gap_in_denoising_steps": longest / step_seconds,
        "text_tok_s_during_images": during / (image_span[1] - image_span[0]),
    }
