"""The installed models: what everyone may see, and what admins may do with them. Loads and
unloads run on the engine's worker, the only thread that touches models. A member asking
for an admin's view or action is refused, and the refusal is recorded."""

from __future__ import annotations

from dataclasses import dataclass

from webapp.engine import Engine
from webapp.loader import ModelStats
from webapp.registry import ModelEntry, check_model_name
from webapp.services.audit import AuditService
from webapp.users import User


@dataclass(frozen=True)
class ModelView:
    entry: ModelEntry
    stats: ModelStats | None

    @property
    def loaded(self) -> bool:
        return self.stats is not None


class ModelService:
    def __init__(self, engine: Engine, audit: AuditService, client: str = "page"):
        self._engine = engine
        self._audit = audit
        self._client = client

    def _require_admin(self, user: User, kind: str, action: str) -> None:
        self._audit.require_admin(user, kind, action, self._client)

    def ready_models(self, user: User, kind: str | None = None) -> list[ModelEntry]:
        """Models anyone may use."""
        return [e for e in self._engine.registry() if e.ready and (kind is None or e.kind == kind)]

    def overview(self, user: User) -> list[ModelView]:
        """Every discovered model and LoRA, usable or not, with its loaded state (admins)."""
        self._require_admin(user, "models.overview", "see the model overview")
        stats = {s.name: s for s in self._engine.model_stats()}
        listing = self._engine.registry().listing()
        return [ModelView(e, None if e.kind == "lora" else stats.get(e.name)) for e in listing]

    def problems(self, user: User) -> list[str]:
        self._require_admin(user, "models.problems", "see model problems")
        return list(self._engine.registry().problems)

    def rescan(self, user: User) -> int:
        self._require_admin(user, "models.rescan", "rescan the models folder")
        return len(self._engine.rescan().entries)

    def load(self, name: str, user: User) -> ModelStats:
        self._require_admin(user, "models.load", "load models")
        return self._engine.load_model(check_model_name(name))

    def unload(self, name: str, user: User) -> bool:
        self._require_admin(user, "models.unload", "unload models")
        return self._engine.unload_model(check_model_name(name))

    def pin(self, name: str, user: User) -> None:
        self._require_admin(user, "models.pin", "pin models")
        self._engine.pin_model(check_model_name(name))

    def unpin(self, name: str, user: User) -> None:
        self._require_admin(user, "models.unpin", "unpin models")
        self._engine.unpin_model(check_model_name(name))
