"""The installed models: what everyone may see, and what admins may do with them. Loads and
unloads run on the engine's worker, the only thread that touches models."""

from __future__ import annotations

from dataclasses import dataclass

from webapp.engine import Engine
from webapp.loader import ModelStats
from webapp.registry import ModelEntry, check_model_name
from webapp.users import User, require_admin


@dataclass(frozen=True)
class ModelView:
    entry: ModelEntry
    stats: ModelStats | None

    @property
    def loaded(self) -> bool:
        return self.stats is not None


class ModelService:
    def __init__(self, engine: Engine):
        self._engine = engine

    def ready_models(self, user: User, kind: str | None = None) -> list[ModelEntry]:
        """Models anyone may use."""
        return [e for e in self._engine.registry() if e.ready and (kind is None or e.kind == kind)]

    def overview(self, user: User) -> list[ModelView]:
        """Every discovered model and LoRA, usable or not, with its loaded state (admins)."""
        require_admin(user, "see the model overview")
        stats = {s.name: s for s in self._engine.model_stats()}
        listing = self._engine.registry().listing()
        return [ModelView(e, None if e.kind == "lora" else stats.get(e.name)) for e in listing]

    def problems(self, user: User) -> list[str]:
        require_admin(user, "see model problems")
        return list(self._engine.registry().problems)

    def rescan(self, user: User) -> int:
        require_admin(user, "rescan the models folder")
        return len(self._engine.rescan().entries)

    def load(self, name: str, user: User) -> ModelStats:
        require_admin(user, "load models")
        return self._engine.load_model(check_model_name(name))

    def unload(self, name: str, user: User) -> bool:
        require_admin(user, "unload models")
        return self._engine.unload_model(check_model_name(name))

    def pin(self, name: str, user: User) -> None:
        require_admin(user, "pin models")
        self._engine.pin_model(check_model_name(name))

    def unpin(self, name: str, user: User) -> None:
        require_admin(user, "unpin models")
        self._engine.unpin_model(check_model_name(name))
