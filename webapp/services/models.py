"""The installed models: what everyone may see, and what admins may do with them. Loads and
unloads run on the engine's worker, the only thread that touches models. A member asking
for an admin's view or action is refused, and the refusal is recorded."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from webapp.catalog_file import update_entries
from webapp.engine import Engine
from webapp.errors import AtelierError, ValidationError
from webapp.loader import ModelStats
from webapp.model_entry import ModelEntry, check_model_name
from webapp.services.audit import AuditService
from webapp.users import User

log = logging.getLogger(__name__)
DESCRIPTION_LIMITS = {"display_name": 80, "description": 500, "license": 120}


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
        """Load the model and keep it loaded until Atelier stops (or it is unpinned)."""
        self._require_admin(user, "models.pin", "pin models")
        self._engine.pin_model(check_model_name(name))

    def unpin(self, name: str, user: User) -> None:
        self._require_admin(user, "models.unpin", "unpin models")
        self._engine.unpin_model(check_model_name(name))

    def load_at_start(self, name: str, user: User, on: bool) -> None:
        """Pin the model from every start (written in the catalog), and now; or stop."""
        self._require_admin(user, "models.pin", "pin models")
        entry = self._engine.registry().get(name)
        if entry.kind == "lora":
            raise ValidationError("A LoRA is loaded with its model; pin the model.")
        if on:
            self._engine.pin_model(name)
        else:
            self._engine.unpin_model(name)
        self._write(user, {name: {"pin": True if on else None}})

    def set_default(self, name: str, user: User) -> ModelEntry:
        """Make the model the one its kind's pages offer first."""
        self._require_admin(user, "models.edit", "choose the default models")
        entry = self._engine.registry().get(name)
        others = [e.name for e in self._engine.registry() if e.kind == entry.kind and e.default]
        changes = {other: {"default": None} for other in others if other != name}
        self._write(user, {**changes, name: {"default": True}})
        return self._engine.registry().get(name)

    def describe(
        self, name: str, user: User, display_name: str, description: str, license: str
    ) -> ModelEntry:
        """Change what people see of a model: its name, what it is for, its licence."""
        self._require_admin(user, "models.edit", "describe models")
        self._engine.registry().get(name)
        values = {"display_name": display_name, "description": description, "license": license}
        for key, value in values.items():
            if len(value.strip()) > DESCRIPTION_LIMITS[key] or "\x00" in value:
                label = key.replace("_", " ").capitalize()
                raise ValidationError(
                    f"{label} may be up to {DESCRIPTION_LIMITS[key]} characters.", field=key
                )
        self._write(user, {name: {k: v.strip() or None for k, v in values.items()}})
        return self._engine.registry().get(name)

    def pin_at_start(self) -> threading.Thread:
        """Load the models the catalog pins, one after another, in the background: pages
        work meanwhile; a model that cannot be loaded is logged and left unloaded."""

        def load() -> None:
            for entry in self._engine.registry():
                if entry.pin and entry.ready and entry.kind != "lora":
                    try:
                        self._engine.pin_model(entry.name)
                    except (AtelierError, TimeoutError) as error:
                        log.warning("pinned model %s was not loaded: %s", entry.name, error)

        thread = threading.Thread(target=load, name="pin-at-start", daemon=True)
        thread.start()
        return thread

    def _write(self, user: User, changes: dict[str, dict]) -> None:
        update_entries(self._engine.registry().models_dir, changes)
        self._engine.rescan()
        self._audit.record(
            user, "models.edit", "ok", client=self._client, parameters={"changes": changes}
        )
