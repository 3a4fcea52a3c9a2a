"""Training presets instead of raw LoRA settings; Advanced may change any of them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from webapp.errors import ValidationError


@dataclass(frozen=True)
class TuningSettings:
    rank: int = 8
    alpha: int = 16
    learning_rate: float = 2e-4
    epochs: int = 3
    batch_size: int = 4
    seed: int = 0
    max_steps: int = 0  # 0: as many as the epochs take (tests and benches set a few)

    def check(self) -> None:
        limits = {
            "rank": (self.rank, 1, 256),
            "alpha": (self.alpha, 1, 512),
            "epochs": (self.epochs, 1, 50),
            "batch_size": (self.batch_size, 1, 64),
            "max_steps": (self.max_steps, 0, 100_000),
        }
        for name, (value, low, high) in limits.items():
            if not low <= value <= high:
                label = name.replace("_", " ").capitalize()
                raise ValidationError(
                    f"{label} {value} must be between {low} and {high}.", field=name
                )
        if not 1e-6 <= self.learning_rate <= 1e-2:
            raise ValidationError(
                f"Learning rate {self.learning_rate:g} must be between 1e-6 and 1e-2.",
                field="learning_rate",
            )


PRESETS: dict[str, TuningSettings] = {
    # A quick first voice: small adapter, one pass over the examples.
    "Light": TuningSettings(rank=4, alpha=8, learning_rate=3e-4, epochs=1),
    "Standard": TuningSettings(rank=8, alpha=16, learning_rate=2e-4, epochs=3),
    # More capacity and passes, for a few hundred examples or more.
    "Thorough": TuningSettings(rank=16, alpha=32, learning_rate=1e-4, epochs=6),
}
ADVANCED = ("rank", "alpha", "learning_rate", "epochs")


def settings_for(preset: str, **advanced: Any) -> TuningSettings:
    """A preset's settings with what Advanced changed (None: left as the preset has it)."""
    if preset not in PRESETS:
        raise ValidationError(
            f"Unknown preset {preset!r}: choose {', '.join(PRESETS)}.", field="preset"
        )
    chosen = {name: value for name, value in advanced.items() if value is not None}
    unknown = set(chosen) - {*ADVANCED, "max_steps", "batch_size", "seed"}
    if unknown:
        raise ValidationError(f"Unknown setting(s) {', '.join(sorted(unknown))}.", field="preset")
    settings = replace(PRESETS[preset], **chosen)
    settings.check()
    return settings
