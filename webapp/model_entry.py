"""A model as Atelier knows it (found on disk or served elsewhere), and what a model's name
may be."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webapp.errors import ValidationError
from webapp.text_servers import TextServer

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
LORA_DIR = "loras"
READY, REFUSED, BROKEN = "ready", "refused", "broken"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str  # image | text | embedding
    # diffusers | single-file | transformers | gguf | sentence-transformers | remote
    format: str
    family: str
    path: Path
    size_bytes: int
    status: str = READY
    problem: str | None = None
    display_name: str = ""
    description: str = ""
    license: str = ""
    source: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    # A text model served elsewhere (format "remote"): its servers.
    server: TextServer | None = None
    demo: bool = False  # a small model for trying Atelier: its answers carry a note
    default: bool = False  # the model of its kind that pages offer first (an admin's choice)
    pin: bool = False  # loaded when Atelier starts and kept loaded

    @property
    def label(self) -> str:
        """What people call the model: its display name, or its name."""
        return self.display_name or self.name

    @property
    def ready(self) -> bool:
        return self.status == READY


def check_model_name(name: str) -> str:
    """A model name is a plain name, never a path."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ValidationError(
            f"{name!r} is not a model name: use only letters, digits, '.', '_' and '-' "
            "(no slashes, no leading dot). Pick a model from the list.",
            field="model",
        )
    return name
