"""The settings a text answer is generated with, layered in one place: the built-in
values, the tool's style of answer and length, the model's own catalog defaults, a style
the person picks, and what they set in Advanced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webapp.engine.requests import random_seed
from webapp.errors import ValidationError
from webapp.text_tools import PRESETS, Tool

# Generation settings a text model's catalog `defaults` may give, and their types.
MODEL_SETTINGS = {
    "temperature": float,
    "top_p": float,
    "max_new_tokens": int,
    "repetition_penalty": float,
}
BUILT_IN_SETTINGS = {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.0}


@dataclass(frozen=True)
class Generation:
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    repetition_penalty: float = 1.0


def layered_settings(
    tool: Tool, model_defaults: dict[str, Any], preset: str | None = None
) -> dict[str, Any]:
    """The settings a run starts from, each from the last place that gives it: the tool's
    style of answer and length, then the model's own defaults (the catalog), then a style
    of answer the person picked. What they set in Advanced goes on top."""
    values: dict[str, Any] = {**BUILT_IN_SETTINGS, "max_new_tokens": tool.max_new_tokens}
    values.update(PRESETS[tool.preset])
    values.update(model_settings(model_defaults))
    if preset is not None:
        if preset not in PRESETS:
            raise ValidationError(
                f"Unknown preset {preset!r}: use {', '.join(PRESETS)}.", field="preset"
            )
        values.update(PRESETS[preset])
    return values


def model_settings(defaults: dict[str, Any]) -> dict[str, Any]:
    """The generation settings a model's catalog defaults give (numbers only)."""
    settings = {}
    for name, kind in MODEL_SETTINGS.items():
        value = defaults.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            settings[name] = kind(value)
    return settings


def check_chosen(chosen: dict[str, Any]) -> None:
    unknown = set(chosen) - set(MODEL_SETTINGS)
    if unknown:
        raise TypeError(f"unknown generation settings {sorted(unknown)}")


def generation_of(values: dict[str, Any], seed: int | None, chosen: dict[str, Any]) -> Generation:
    """`values` with what the person set on top (None: not set), and the seed."""
    values = {**values, **{name: value for name, value in chosen.items() if value is not None}}
    return Generation(
        temperature=float(values["temperature"]),
        top_p=float(values["top_p"]),
        max_new_tokens=int(values["max_new_tokens"]),
        seed=random_seed() if seed is None else seed,
        repetition_penalty=float(values["repetition_penalty"]),
    )
