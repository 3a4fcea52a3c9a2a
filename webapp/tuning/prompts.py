"""The conversation a tuned voice learns from, and is later asked in.

A pair (a plain text and its brand rewrite) is asked exactly as the shipped "Rewrite in a
brand voice" tool asks, so the tuned voice answers that tool in the voice it learned; an
approved text on its own answers a short request to write in the voice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from webapp.engine.requests import ChatMessage, TrainingExample, TrainingRequest
from webapp.tuning.dataset import Dataset, Example

REWRITE_SYSTEM = (
    "You are a skilled copywriter. You rewrite texts in a given brand voice, keeping every "
    "fact and the meaning intact. Reply with the rewritten text only."
)
REWRITE_PROMPT = "Rewrite the following text in our brand voice.\n\nText:\n{text}"
WRITE_PROMPT = "Write a text in our brand voice."
SAMPLES, SAMPLE_TOKENS = 3, 64  # held-back prompts answered side by side, and their length


def training_messages(input_text: str, output_text: str) -> tuple[ChatMessage, ...]:
    """The prompt turns and the answer to learn (the last message, the assistant's)."""
    return (*prompt_messages(input_text), ChatMessage("assistant", output_text))


def prompt_messages(input_text: str) -> tuple[ChatMessage, ...]:
    """What the model is asked for an example: a rewrite of `input_text`, or (empty) a text."""
    user = REWRITE_PROMPT.format(text=input_text) if input_text else WRITE_PROMPT
    return (ChatMessage("system", REWRITE_SYSTEM), ChatMessage("user", user))


def training_request(
    dataset: Dataset, settings: Any, base_model: str, folder: Path, title: str
) -> TrainingRequest:
    """A training job for `dataset`: its examples asked as Text tools will ask the voice."""
    return TrainingRequest(
        model=base_model,
        train=tuple(training_example(e) for e in dataset.train),
        held_back=tuple(training_example(e) for e in dataset.held_back),
        settings=settings,
        folder=str(folder),
        title=title,
        samples=SAMPLES,
        sample_tokens=SAMPLE_TOKENS,
    )


def training_example(example: Example) -> TrainingExample:
    """An example as the trainer reads it: the prompt turns and the answer to learn."""
    return TrainingExample(prompt_messages(example.input), example.output, example.source)
