"""`atelier bench text`: a text tool's speed through the engine and through the page, beside
plain `model.generate` on the same prompt, in one run (baseline and the two paths alternate)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from webapp.services import build_services
from webapp.settings import Settings
from webapp.ui.page_bench import text_tool_through_page
from webapp.users import local_user

TOOL = "summarise"
TEXT = (
    "The quarterly meeting moved to Tuesday at 10. Anna will book the large room and order "
    "lunch for twelve people. Ben sends the agenda by Monday noon; it covers the spring "
    "campaign, the new supplier contract and the hiring plan for the support team."
)


def _plain_generate(text_model, messages, new_tokens: int) -> tuple[int, float]:
    tokenizer = text_model.tokenizer
    inputs = tokenizer.apply_chat_template(
        [vars(m) for m in messages],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    ).to(text_model.model.device)
    started = time.perf_counter()
    with torch.inference_mode():
        output = text_model.model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False)
    seconds = time.perf_counter() - started
    return output.shape[1] - inputs["input_ids"].shape[1], seconds


def _through_engine(services, user, model: str, new_tokens: int) -> tuple[int, float, float]:
    started = time.perf_counter()
    run = services.text.run_tool(
        TOOL, {"text": TEXT}, user, model=model, seed=0, temperature=0.0, max_new_tokens=new_tokens
    )
    stream = run.jobs[0].stream()
    next(stream, None)
    first = time.perf_counter() - started
    for _ in stream:
        pass
    result = run.jobs[0].result()
    return result.tokens, time.perf_counter() - started, first


def bench_text(
    settings: Settings, model: str, new_tokens: int, repeats: int, app_file: Path
) -> dict[str, Any]:
    services = build_services(settings)
    user = local_user(settings)
    plain, engine, page, first_token = [], [], [], []
    try:
        run = services.text.run_tool(
            TOOL,
            {"text": TEXT},
            user,
            model=model,
            seed=0,
            temperature=0.0,
            max_new_tokens=new_tokens,
        )
        messages = run.messages
        run.jobs[0].result(600)  # warm-up
        text_tool_through_page(app_file, TOOL, TEXT, model, 4)  # warm-up: the page's engine
        for _ in range(repeats):
            with services.manager.use(model) as text_model:
                tokens, seconds = _plain_generate(text_model, messages, new_tokens)
            plain.append(tokens / seconds)
            tokens, seconds, first = _through_engine(services, user, model, new_tokens)
            engine.append(tokens / seconds)
            first_token.append(first)
            tokens, seconds = text_tool_through_page(app_file, TOOL, TEXT, model, new_tokens)
            page.append(tokens / seconds)
    finally:
        services.close()
    median = statistics.median
    return {
        "bench": "text",
        "model": model,
        "tool": TOOL,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "device": str(services.device),
        "baseline_generate_tok_s": round(median(plain), 2),
        "engine_tok_s": round(median(engine), 2),
        "page_tok_s": round(median(page), 2),
        "engine_first_token_s": round(median(first_token), 3),
        "engine_ratio_to_generate": round(median(engine) / median(plain), 3),
        "page_ratio_to_generate": round(median(page) / median(plain), 3),
    }
