"""The text systems: plain `generate`, transformers' continuous batching, the engine (local
or on OpenAI-compatible servers), a server driven directly, and a text tool's page."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from system_kit import TEXT, bench_engine, bench_settings, chat_prompt, people, together


def generate_text(arguments: dict[str, Any]) -> dict[str, Any]:
    """Plain transformers `generate` on this process's only thread: one stream, then the
    people's prompts as one left-padded static batch."""
    import torch

    from webapp.backends.llm import load_text_model
    from webapp.device import dtype_for, resolve_device
    from webapp.registry import discover

    settings = bench_settings(arguments)
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

    settings = bench_settings(arguments)
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

    settings = bench_settings(arguments)
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
    return _engine_text(bench_engine(bench_settings(arguments)), arguments)


def remote_engine_text(arguments: dict[str, Any]) -> dict[str, Any]:
    """`engine_text` for a model served by OpenAI-compatible servers (vLLM)."""
    from dataclasses import replace

    from webapp.text_servers import parse_text_servers

    servers = parse_text_servers(arguments["text_servers"])
    settings = replace(bench_settings(arguments), text_servers=servers)
    return _engine_text(bench_engine(settings), arguments)


def _engine_text(engine, arguments: dict[str, Any]) -> dict[str, Any]:
    from webapp.engine import ChatMessage, TextRequest

    users = people(arguments["users"])
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
        single = together(1, lambda i: done.update({i: serve(i)}))
        single_tokens, single_first = done[0]
        done.clear()
        makespan = together(len(users), lambda i: done.update({i: serve(i)}))
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
    single = together(1, lambda i: done.update({i: serve(i)}))
    single_tokens, single_first = done[0]
    done.clear()
    makespan = together(arguments["users"], lambda i: done.update({i: serve(i)}))
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
