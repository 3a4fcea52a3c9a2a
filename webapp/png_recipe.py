"""The recipe inside every PNG: AUTOMATIC1111's `parameters` text chunk, which the tools
people already use can read, and Atelier's own JSON chunk with the complete request."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from webapp import __version__
from webapp.atomic import write_file
from webapp.engine import ImageRequest

SAMPLER_NAMES = {
    "euler": "Euler",
    "euler_a": "Euler a",
    "dpmpp_2m_karras": "DPM++ 2M Karras",
    "ddim": "DDIM",
    "lcm": "LCM",
}
PARAMETERS_KEY = "parameters"
ATELIER_KEY = "atelier"


def a1111_parameters(request: ImageRequest, seed: int) -> str:
    loras = "".join(f" <lora:{lora.name}:{lora.weight:g}>" for lora in request.loras)
    prompt = request.prompt + loras
    lines = [prompt]
    if request.negative_prompt:
        lines.append(f"Negative prompt: {request.negative_prompt}")
    settings = [
        ("Steps", request.steps),
        ("Sampler", SAMPLER_NAMES[request.scheduler]),
        ("CFG scale", f"{request.guidance:g}"),
        ("Seed", seed),
        ("Size", f"{request.width}x{request.height}"),
        ("Model", request.model),
    ]
    if request.init_image is not None:
        settings.append(("Denoising strength", f"{request.strength:g}"))
    settings.append(("Version", f"Atelier {__version__}"))
    lines.append(", ".join(f"{key}: {value}" for key, value in settings))
    return "\n".join(lines)


def parse_a1111(text: str) -> dict[str, Any]:
    """Read AUTOMATIC1111 `parameters` text back into prompt, negative prompt and settings."""
    *prompt_lines, settings_line = text.split("\n")
    negative = ""
    for index, line in enumerate(prompt_lines):
        if line.startswith("Negative prompt: "):
            negative = "\n".join(prompt_lines[index:])[len("Negative prompt: ") :]
            prompt_lines = prompt_lines[:index]
            break
    settings = dict(re.findall(r"\s*([\w ]+): ([^,]+)(?:,|$)", settings_line))
    return {"prompt": "\n".join(prompt_lines), "negative_prompt": negative, **settings}


def recipe_of(request: ImageRequest, seed: int) -> dict[str, Any]:
    fields = asdict(request)
    fields.pop("init_image")
    fields.pop("mask")
    style = fields.pop("style")
    return {
        "request": {**fields, "seed": seed, "num_images": 1},
        "style": style,
        "mode": request.mode,
        "atelier": __version__,
    }


def save_png(image: Image.Image, path: Path, parameters: str, recipe: dict[str, Any]) -> Path:
    """Write atomically: a crash never leaves half a file behind."""
    info = PngInfo()
    info.add_text(PARAMETERS_KEY, parameters)
    info.add_text(ATELIER_KEY, json.dumps(recipe))
    return write_file(path, lambda file: image.save(file, format="PNG", pnginfo=info))


def read_recipe(path: Path) -> tuple[str, dict[str, Any]]:
    with Image.open(path) as image:
        text = image.text if hasattr(image, "text") else {}
        return text.get(PARAMETERS_KEY, ""), json.loads(text.get(ATELIER_KEY, "{}"))
