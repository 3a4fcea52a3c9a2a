"""What the voices service hands out, as plain values: datasets, tuned versions and the
team's live voices; and the model card that goes with an exported adapter."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from webapp.engine.requests import VoiceAdapter
from webapp.errors import ValidationError
from webapp.store.tables import VoiceDataset

NAME_CHARS = 60
SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class DatasetInfo:
    id: int
    name: str
    examples: int
    held_back: int
    pairs: int
    stats: dict[str, Any]
    created: datetime


@dataclass(frozen=True)
class VoiceVersion:
    id: int
    voice: str
    version: int
    owner_id: str
    base_model: str
    dataset_id: int
    preset: str
    settings: dict[str, Any]
    status: str  # queued | running | done | failed | cancelled
    job_id: str | None
    evaluation: dict[str, Any]
    error: str | None
    approved_by: str | None
    approved_at: datetime | None
    live: bool
    created: datetime
    finished: datetime | None
    can_resume: bool = False

    @property
    def approved(self) -> bool:
        return self.approved_at is not None


@dataclass(frozen=True)
class TunedVoice:
    """An approved, live voice version as Text tools uses it."""

    id: str  # "tuned-<voice>"
    voice: str
    version: int
    base_model: str
    adapter: VoiceAdapter


def voice_name(name: str) -> str:
    """A voice's name as its id: lower-case words joined by '-'."""
    slug = SLUG.sub("-", str(name).casefold()).strip("-")[:NAME_CHARS].strip("-")
    if not slug:
        raise ValidationError("Give the voice a name (letters or digits).", field="name")
    return slug


def dataset_info(row: VoiceDataset) -> DatasetInfo:
    return DatasetInfo(
        row.id, row.name, row.examples, row.held_back, row.pairs, dict(row.stats), row.created
    )


def model_card(run: VoiceVersion, examples: int, held_back: int) -> str:
    """What the adapter is, for whoever receives it (Markdown)."""
    evaluation = run.evaluation
    settings = ", ".join(f"{key} {value}" for key, value in run.settings.items())
    lines = [
        f"# Brand voice “{run.voice}”, version {run.version}",
        "",
        "A LoRA adapter (PEFT, safetensors) tuned by Atelier on a team's approved texts.",
        "",
        f"- Base model: {run.base_model}",
        f"- Data: {examples} examples, {held_back} of them held back for evaluation",
        f"- Preset: {run.preset} ({settings})",
        f"- Training steps: {evaluation.get('steps', 0)}",
        f"- Held-back perplexity: {evaluation.get('perplexity_before', float('nan')):.2f} "
        f"before, {evaluation.get('perplexity_after', float('nan')):.2f} after",
        f"- Approved: {'yes' if run.approved else 'no'}",
        "",
        "Load it with `PeftModel.from_pretrained(base, folder)`.",
    ]
    return "\n".join(lines) + "\n"


def evaluation_of(result: Any) -> dict[str, Any]:
    """A training result as kept with its run (JSON)."""
    return {
        "steps": result.steps,
        "losses": [round(loss, 4) for loss in result.losses],
        "perplexity_before": result.perplexity_before,
        "perplexity_after": result.perplexity_after,
        "samples": [asdict(sample) for sample in result.samples],
        "tokens": result.tokens,
        "seconds": round(result.seconds, 2),
        "tokens_per_second": round(result.tokens_per_second, 1),
        "resumed_from": result.resumed_from,
    }
