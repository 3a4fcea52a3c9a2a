"""The systems benchmarks compare, each run alone in a fresh process (see fresh.py).

Run as a script: `python webapp/bench/systems.py SYSTEM JSON`; the last line printed is
the figures as JSON. The engine systems use only what today's engine and earlier ones
share, so the same code measures another checkout (`PYTHONPATH=TREE`).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

TEXT = (
    "Northwind Trading is moving its spring campaign from April to May. The design team "
    "needs the new product photos by the end of March, and the copy team wants two weeks "
    "to review the brand voice for the launch emails. Anna from finance asked for a "
    "budget update before the board meeting on Tuesday, including the cost of the extra "
    "photo shoot and the translation of the landing page into German and French. Ben "
    "will collect quotes from three studios. The support team reminded everyone that the "
    "return policy changes on the first of June and that the FAQ must say so clearly."
)


def chat_prompt(index: int) -> list[dict[str, str]]:
    """A chat of about 200 tokens, different for each person."""
    return [
        {"role": "system", "content": "You are a helpful assistant for a marketing team."},
        {
            "role": "user",
            "content": f"Note {index}: {TEXT}\n\nWrite a long, detailed story "
            "about how this team prepares the campaign, week by week.",
        },
    ]


def _settings(arguments: dict[str, Any]):
    from webapp.settings import Settings

    known = {f.name for f in fields(Settings)}
    values = {
        "models_dir": Path(arguments["models_dir"]),
        "data_dir": Path(tempfile.mkdtemp(prefix="atelier-bench-")),
        "device": arguments.get("device", "auto"),
        "dtype": arguments.get("dtype", "auto"),
        "queue_max_per_user": 64,
        "queue_max_total": 256,
        **arguments.get("settings", {}),
    }
    return Settings(**{key: value for key, value in values.items() if key in known})


def _build_engine(settings):
    try:
        from webapp.engine.factory import build_engine
    except ImportError:  # engines before the lanes: one module, one global
        from webapp.engine import build_engine
    return build_engine(settings)


def _users(count: int):
    from webapp.users import User

    return [User(f"user-{i}", f"User {i}") for i in range(count)]


def _together(count: int, work) -> float:
    """Run work(i) on `count` threads released at once; the makespan in seconds."""
    barrier = threading.Barrier(count + 1)
    threads = [threading.Thread(target=lambda i=i: (barrier.wait(), work(i))) for i in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


# -- text -----------------------------------------------------------------------------------


def generate_text(arguments: dict[str, Any]) -> dict[str, Any]:
    """Plain transformers `generate` on this process's only thread: one stream, then the
    people's prompts as one left-padded static batch."""
    import torch

    from webapp.backends.llm import load_text_model
    from webapp.device import dtype_for, resolve_device
    from webapp.registry import discover

    settings = _settings(arguments)
    entry = discover(settings).get(arguments["model"])
    device = resolve_device(settings)
    text_model = load_text_model(entry, device, dtype_for("text", entry.family, device, settings))
    tokenizer, model = text_model.tokenizer, text_model.model
    tokenizer.padding_side = "left"
    new_tokens, users = arguments["new_tokens"], arguments["users"]

    def encode(count: int):
        prompts = [
            tokenizer.apply_chat_template(
                chat_prompt(i), add_generation_prompt=True, tokenize=False
            )
            for i in range(count)
        ]
        return tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(
            device
        )

    def timed(inputs, tokens: int) -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

    one, everyone = encode(1), encode(users)
    timed(one, 4)  # warm-up
    single = timed(one, new_tokens)
    batch = timed(everyone, new_tokens)
    return {
        "prompt_tokens": int(one["input_ids"].shape[1]),
        "single_tok_s": new_tokens / single,
        "single_first_token_s": timed(one, 1),
        "batch_tok_s": new_tokens * users / batch,
        "batch_first_token_s": timed(everyone, 1),
    }


def continuous_batching_text(arguments: dict[str, Any]) -> dict[str, Any]:
    """transformers' own continuous-batching manager (paged attention), one stream and
    everyone's prompts at once, from this process's main thread."""
    import torch
    from transformers import GenerationConfig

    from webapp.backends.llm import load_text_model
    from webapp.device import dtype_for, resolve_device
    from webapp.registry import discover

    settings = _settings(arguments)
    entry = discover(settings).get(arguments["model"])
    device = resolve_device(settings)
    text_model = load_text_model(entry, device, dtype_for("text", entry.family, device, settings))
    tokenizer, model = text_model.tokenizer, text_model.model
    new_tokens, users = arguments["new_tokens"], arguments["users"]
    prompts = [
        list(
            tokenizer.apply_chat_template(
                chat_prompt(i), add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
        )
        for i in range(users)
    ]
    config = GenerationConfig(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        eos_token_id=-1,  # every answer as long as the others'
        pad_token_id=tokenizer.pad_token_id or 0,
    )

    def timed(batch) -> tuple[float, int]:
        started = time.perf_counter()
        with torch.inference_mode():
            outputs = model.generate_batch(batch, generation_config=config, warmup=False)
        tokens = sum(len(o.generated_tokens) for o in outputs.values())
        return time.perf_counter() - started, tokens

    timed(prompts[:1])  # warm-up
    single, single_tokens = timed(prompts[:1])
    batch, batch_tokens = timed(prompts)
    return {"single_tok_s": single_tokens / single, "batch_tok_s": batch_tokens / batch}


def golden_text(arguments: dict[str, Any]) -> dict[str, Any]:
    """Greedy answers to every text tool's prompt (filled with a sample text), in the dtype
    asked for: the same tools in float32 and bfloat16 show what bfloat16 changes."""
    import torch

    from webapp.backends.llm import load_text_model
    from webapp.device import DTYPES, resolve_device
    from webapp.registry import discover
    from webapp.text_tools import build_messages, load_library

    settings = _settings(arguments)
    entry = discover(settings).get(arguments["model"])
    device = resolve_device(settings)
    text_model = load_text_model(entry, device, DTYPES[arguments["dtype"]])
    answers = {}
    for tool in load_library(Path(arguments["library_dir"])).tools.values():
        values = {field.id: _sample_value(field) for field in tool.fields}
        messages = [vars(m) for m in build_messages(tool, values)]
        inputs = text_model.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(device)
        with torch.inference_mode():
            output = text_model.model.generate(
                **inputs, max_new_tokens=arguments["new_tokens"], do_sample=False
            )
        answers[tool.id] = output[0, inputs["input_ids"].shape[1] :].tolist()
    return {"answers": answers}


def _sample_value(field) -> Any:
    if field.type == "choice":
        return field.default if field.default in field.choices else field.choices[0]
    if field.type == "number":
        return field.default if field.default is not None else field.min or 1
    return TEXT


def engine_text(arguments: dict[str, Any]) -> dict[str, Any]:
    """The engine alone in its process, people submitting from their own threads (as page
    threads do): one stream, then everyone at once; times from submission."""
    return _engine_text(_build_engine(_settings(arguments)), arguments)


def remote_engine_text(arguments: dict[str, Any]) -> dict[str, Any]:
    """`engine_text` for a model served by OpenAI-compatible servers (vLLM)."""
    from dataclasses import replace

    from webapp.text_servers import parse_text_servers

    servers = parse_text_servers(arguments["text_servers"])
    settings = replace(_settings(arguments), text_servers=servers)
    return _engine_text(_build_engine(settings), arguments)


def _engine_text(engine, arguments: dict[str, Any]) -> dict[str, Any]:
    from webapp.engine import ChatMessage, TextRequest

    users = _users(arguments["users"])
    new_tokens = arguments["new_tokens"]

    def request(index: int, tokens: int = new_tokens) -> TextRequest:
        messages = tuple(ChatMessage(m["role"], m["content"]) for m in chat_prompt(index))
        return TextRequest(arguments["model"], messages, max_new_tokens=tokens, temperature=0.0)

    def serve(index: int, tokens: int = new_tokens) -> Any:
        job = engine.submit(request(index, tokens), users[index])
        result = job.result(1800)
        return result.tokens, job.first_token_at - job.submitted_at

    try:
        serve(0, 4)  # warm-up: loads the model on the worker
        done: dict[int, Any] = {}
        single = _together(1, lambda i: done.update({i: serve(i)}))
        single_tokens, single_first = done[0]
        done.clear()
        makespan = _together(len(users), lambda i: done.update({i: serve(i)}))
    finally:
        engine.shutdown()
    return _text_figures(single, single_tokens, single_first, makespan, done)


def direct_text(arguments: dict[str, Any]) -> dict[str, Any]:
    """The same chats sent straight to an OpenAI-compatible server, streamed, from one
    thread per person: what Atelier's remote path is measured against."""
    from webapp.backends import openai_server

    url, model = arguments["url"], arguments["served_model"]
    new_tokens = arguments["new_tokens"]

    def serve(index: int, tokens: int = new_tokens) -> tuple[int, float]:
        body = {"model": model, "messages": chat_prompt(index), "max_tokens": tokens,
                "temperature": 0.0, "seed": 0}  # fmt: skip
        started, first, count = time.perf_counter(), None, 0
        for chunk in openai_server.stream_chat(url, body):
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    first = first or time.perf_counter() - started
                    count += 1
            count = (chunk.get("usage") or {}).get("completion_tokens") or count
        return count, first or 0.0

    serve(0, 4)
    done: dict[int, Any] = {}
    single = _together(1, lambda i: done.update({i: serve(i)}))
    single_tokens, single_first = done[0]
    done.clear()
    makespan = _together(arguments["users"], lambda i: done.update({i: serve(i)}))
    return _text_figures(single, single_tokens, single_first, makespan, done)


def _text_figures(single, single_tokens, single_first, makespan, done) -> dict[str, Any]:
    return {
        "single_tokens": single_tokens,
        "single_tok_s": single_tokens / single,
        "single_first_token_s": single_first,
        "batch_tokens": sum(tokens for tokens, _ in done.values()),
        "batch_tok_s": sum(tokens for tokens, _ in done.values()) / makespan,
        "batch_first_token_s": statistics.median(first for _, first in done.values()),
    }


def page_text(arguments: dict[str, Any]) -> dict[str, Any]:
    """A text tool run through the Text tools page (Streamlit's AppTest in this process)."""
    from webapp.ui.page_bench import text_tool_through_page

    for key, value in {
        "ATELIER_MODELS_DIR": arguments["models_dir"],
        "ATELIER_DATA_DIR": tempfile.mkdtemp(prefix="atelier-bench-"),
        "ATELIER_DEVICE": arguments.get("device", "auto"),
        "ATELIER_LIBRARY_DIR": arguments["library_dir"],
    }.items():
        os.environ[key] = str(value)
    app = Path(arguments["app_file"])
    text_tool_through_page(app, "summarise", TEXT, arguments["model"], 4)  # warm-up
    tokens, seconds = text_tool_through_page(
        app, "summarise", TEXT, arguments["model"], arguments["new_tokens"]
    )
    return {"page_tokens": tokens, "page_tok_s": tokens / seconds}


# -- images ---------------------------------------------------------------------------------


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

    settings = _settings(arguments)
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
    return _engine_images(_build_engine(_settings(arguments)), arguments, warm_up=1)


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
        _settings(arguments),
        ray_address=address,
        ray_replicas=arguments["ray_replicas"],
        ray_gpus_per_replica=arguments["ray_gpus_per_replica"],
        ray_cpus_per_replica=arguments["ray_cpus_per_replica"],
    )
    engine = _build_engine(settings)
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
    users = _users(max(arguments["users"], warm_up))

    def serve(index: int) -> None:
        engine.submit(_image_request(arguments, index), users[index]).result(3600)

    try:
        _together(warm_up, serve)  # warm-up: loads the model (on every replica)
        lone = _together(1, serve)
        makespan = _together(arguments["users"], serve)
    finally:
        engine.shutdown()
    return {"lone_s": lone, "makespan_s": makespan}


def engine_mixed(arguments: dict[str, Any]) -> dict[str, Any]:
    """Images alone, then the same images with text streams at the same time: how long the
    streams go without a token while images are made, and what the text costs the images."""
    from webapp.engine import ChatMessage, TextRequest

    engine = _build_engine(_settings(arguments))
    users = _users(arguments["users"] + arguments["text_users"])
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
        alone = _together(
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

        _together(len(users), run)
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


SYSTEMS = {
    "generate_text": generate_text,
    "engine_text": engine_text,
    "continuous_batching_text": continuous_batching_text,
    "golden_text": golden_text,
    "page_text": page_text,
    "plain_images": plain_images,
    "engine_images": engine_images,
    "ray_images": ray_images,
    "remote_engine_text": remote_engine_text,
    "direct_text": direct_text,
    "engine_mixed": engine_mixed,
}


def system(name: str):
    """The system called `name`. The tuning systems are imported only when asked for:
    older checkouts, which `--compare-tree` runs these systems against, do not have them."""
    if name in SYSTEMS:
        return SYSTEMS[name]
    from webapp.bench.tuning_systems import TUNING_SYSTEMS

    return TUNING_SYSTEMS[name]


if __name__ == "__main__":
    figures = system(sys.argv[1])(json.loads(sys.argv[2]))
    print(json.dumps(figures))
