"""What a non-expert picks instead of numbers: style presets (data files), and per model
family the native sizes for each aspect and the steps and guidance for each quality."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from webapp.datafiles import load_toml_folder, require
from webapp.errors import ValidationError
from webapp.registry import ModelEntry

ASPECTS = ("square", "portrait", "landscape", "wide")
QUALITIES = ("Fast", "Balanced", "Best")
LOCKABLE = ("negative_prompt", "aspect", "lora")
DEFAULT_NEGATIVE = "blurry, low quality, distorted, deformed, extra fingers, watermark, text"


@dataclass(frozen=True)
class Family:
    sizes: dict[str, tuple[int, int]]
    quality: dict[str, tuple[int, float]]  # steps, guidance
    scheduler: str
    schedulers: tuple[str, ...]
    negative_prompt: str = DEFAULT_NEGATIVE


_SD15_SIZES = {
    "square": (512, 512),
    "portrait": (512, 768),
    "landscape": (768, 512),
    "wide": (896, 512),
}
_ALL_SCHEDULERS = ("dpmpp_2m_karras", "euler_a", "euler", "ddim", "lcm")
_TURBO = Family(
    _SD15_SIZES,
    {"Fast": (1, 0.0), "Balanced": (2, 0.0), "Best": (4, 0.0)},
    "euler_a",
    ("euler_a", "euler"),
    negative_prompt="",
)
FAMILIES = {
    "sd15": Family(
        _SD15_SIZES,
        {"Fast": (20, 7.0), "Balanced": (30, 7.5), "Best": (50, 7.5)},
        "dpmpp_2m_karras",
        _ALL_SCHEDULERS,
    ),
    "sd2": Family(
        {
            "square": (768, 768),
            "portrait": (640, 960),
            "landscape": (960, 640),
            "wide": (1024, 576),
        },
        {"Fast": (20, 7.0), "Balanced": (30, 7.5), "Best": (50, 7.5)},
        "dpmpp_2m_karras",
        _ALL_SCHEDULERS,
    ),
    "sdxl": Family(
        {
            "square": (1024, 1024),
            "portrait": (832, 1216),
            "landscape": (1216, 832),
            "wide": (1344, 768),
        },
        {"Fast": (20, 6.0), "Balanced": (30, 6.5), "Best": (40, 7.0)},
        "dpmpp_2m_karras",
        _ALL_SCHEDULERS,
    ),
    "sd-turbo": _TURBO,
    "sdxl-turbo": _TURBO,
}
# With an LCM-LoRA, a few steps at low guidance with the LCM scheduler.
LCM_QUALITY = {"Fast": (4, 1.0), "Balanced": (6, 1.5), "Best": (8, 1.5)}


def family_of(entry: ModelEntry) -> Family:
    """The family's defaults, scaled when the catalog gives the model another base size."""
    family = FAMILIES.get(entry.family, FAMILIES["sd15"])
    base = entry.defaults.get("base_size")
    if base:
        scale = int(base) / family.sizes["square"][0]
        sizes = {
            aspect: (_multiple_of_8(w * scale), _multiple_of_8(h * scale))
            for aspect, (w, h) in family.sizes.items()
        }
        family = replace(family, sizes=sizes)
    return family


def uses_lcm(lora_names: list[str]) -> bool:
    return any("lcm" in name.lower() for name in lora_names)


def _multiple_of_8(value: float) -> int:
    return max(64, int(round(value / 8)) * 8)


# -- style presets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    id: str
    name: str
    prompt: str  # contains {prompt}
    negative_prompt: str = ""
    aspect: str = "square"
    lora: str = ""
    lora_weight: float = 1.0
    locked: tuple[str, ...] = field(default=())

    def apply(self, prompt: str) -> str:
        # A plain substitution: the person's prompt is data, never a template.
        return self.prompt.replace("{prompt}", prompt)

    def words_of(self, prompt: str) -> str | None:
        """The person's own words in a prompt this style made; None if it did not make it."""
        if self.prompt.count("{prompt}") != 1:
            return None
        before, _, after = self.prompt.partition("{prompt}")
        if len(prompt) < len(before) + len(after):
            return None
        if not (prompt.startswith(before) and prompt.endswith(after)):
            return None
        return prompt[len(before) : len(prompt) - len(after)]


def _parse_style(style_id: str, data: dict[str, Any]) -> Style:
    template = require(data, "prompt", str)
    if "{prompt}" not in template:
        raise ValueError("'prompt' must contain {prompt}, where the person's words go")
    aspect = data.get("aspect", "square")
    if aspect not in ASPECTS:
        raise ValueError(f"aspect {aspect!r} is not one of {ASPECTS}")
    locked = tuple(data.get("locked", ()))
    if set(locked) - set(LOCKABLE):
        raise ValueError(f"'locked' may hold only {LOCKABLE}")
    return Style(
        id=style_id,
        name=require(data, "name", str),
        prompt=template,
        negative_prompt=data.get("negative_prompt", ""),
        aspect=aspect,
        lora=data.get("lora", ""),
        lora_weight=float(data.get("lora_weight", 1.0)),
        locked=locked,
    )


def load_styles(library_dir: Path) -> tuple[dict[str, Style], list[str]]:
    problems: list[str] = []
    return load_toml_folder(library_dir / "styles", _parse_style, problems), problems


# -- the admin's prompt blocklist -------------------------------------------------------------


def load_blocklist(library_dir: Path) -> list[str]:
    path = library_dir / "blocklist.txt"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip().lower() for line in lines if line.strip() and not line.startswith("#")]


def check_blocklist(prompt: str, blocked: list[str]) -> None:
    for term in blocked:
        if re.search(rf"(?<!\w){re.escape(term)}(?!\w)", prompt, flags=re.IGNORECASE):
            raise ValidationError(
                f"This prompt uses “{term}”, which your Atelier admin has blocked. "
                "Please describe the picture another way.",
                field="prompt",
            )
