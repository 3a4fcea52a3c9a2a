"""Requests as plain data: the same request comes from a page, the CLI or a test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from webapp.errors import ValidationError

SCHEDULERS = ("euler", "euler_a", "dpmpp_2m_karras", "ddim", "lcm")
ROLES = ("system", "user", "assistant")
MAX_IMAGES_PER_REQUEST = 8
MAX_SIDE = 4096
# Dividing logits by a temperature this small overflows them to infinity (and the
# probabilities to NaN), so anything below it samples greedily, which is what it means.
GREEDY_BELOW_TEMPERATURE = 0.01


@dataclass(frozen=True)
class LoraWeight:
    name: str
    weight: float = 1.0


@dataclass(frozen=True)
class ImageRequest:
    model: str
    prompt: str
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    steps: int = 30
    guidance: float = 7.5
    seed: int = 0
    num_images: int = 1
    scheduler: str = "euler"
    # Image to image and inpainting: a PIL image, how much to change it, a mask (white = change).
    init_image: Any = field(default=None, compare=False)
    strength: float = 0.75
    mask: Any = field(default=None, compare=False)
    loras: tuple[LoraWeight, ...] = ()

    @property
    def mode(self) -> str:
        if self.init_image is None:
            return "text-to-image"
        return "inpaint" if self.mask is not None else "image-to-image"

    def check(self) -> None:
        """Basic checks every caller gets; services add presets and friendlier limits."""
        if not self.prompt.strip():
            raise ValidationError("Write a prompt describing the picture.", field="prompt")
        for name, value in (("width", self.width), ("height", self.height)):
            if value % 8 or not 64 <= value <= MAX_SIDE:
                raise ValidationError(
                    f"{name.capitalize()} {value} must be a multiple of 8 "
                    f"between 64 and {MAX_SIDE}.",
                    field=name,
                )
        if not 1 <= self.steps <= 150:
            raise ValidationError(f"Steps {self.steps} must be between 1 and 150.", field="steps")
        if not 0 <= self.guidance <= 30:
            raise ValidationError(
                f"Guidance {self.guidance} must be between 0 and 30.", field="guidance"
            )
        if not 1 <= self.num_images <= MAX_IMAGES_PER_REQUEST:
            raise ValidationError(
                f"Number of images {self.num_images} must be between 1 and "
                f"{MAX_IMAGES_PER_REQUEST}.",
                field="num_images",
            )
        if self.scheduler not in SCHEDULERS:
            raise ValidationError(
                f"Unknown scheduler {self.scheduler!r}: choose one of {', '.join(SCHEDULERS)}.",
                field="scheduler",
            )
        if not 0 < self.strength <= 1:
            raise ValidationError(
                f"Strength {self.strength} must be above 0 and at most 1.", field="strength"
            )
        if self.mask is not None and self.init_image is None:
            raise ValidationError("A mask needs a picture to paint on.", field="mask")
        if self.mask is not None and self.mask.size != self.init_image.size:
            raise ValidationError(
                f"The mask is {self.mask.size[0]}×{self.mask.size[1]} but the picture is "
                f"{self.init_image.size[0]}×{self.init_image.size[1]}: they must match.",
                field="mask",
            )
        if not 0 <= self.seed < 2**63:
            raise ValidationError("The seed must be a whole number from 0.", field="seed")


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True)
class TextRequest:
    model: str
    messages: tuple[ChatMessage, ...]
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.9
    seed: int = 0
    stop: tuple[str, ...] = ()

    @property
    def sampling_temperature(self) -> float:
        """The temperature sampling uses: 0 (greedy) for anything below the floor."""
        return 0.0 if self.temperature < GREEDY_BELOW_TEMPERATURE else self.temperature

    def check(self) -> None:
        if not self.messages or not any(m.content.strip() for m in self.messages):
            raise ValidationError("Write something for the model to answer.", field="input")
        for message in self.messages:
            if message.role not in ROLES:
                raise ValidationError(
                    f"Unknown chat role {message.role!r}: use {', '.join(ROLES)}.", field="input"
                )
        if not 1 <= self.max_new_tokens <= 32768:
            raise ValidationError(
                f"Max new tokens {self.max_new_tokens} must be between 1 and 32768.",
                field="max_new_tokens",
            )
        if not 0 <= self.temperature <= 2:
            raise ValidationError(
                f"Temperature {self.temperature} must be between 0 and 2.", field="temperature"
            )
        if not 0 < self.top_p <= 1:
            raise ValidationError(f"Top-p {self.top_p} must be above 0, at most 1.", field="top_p")
        if not 0 <= self.seed < 2**63:
            raise ValidationError("The seed must be a whole number from 0.", field="seed")
