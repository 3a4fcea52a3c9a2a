"""Models from the server's own disk or an upload (admins), and removing installed ones.

A model is copied (safe files only) into a waiting place under the models dir, judged
exactly as discovery would judge it, and moved in whole; removing one unloads it, renames it
out of sight in one step, then deletes it. Either way the engine rescans, so Image Studio and
Text tools follow at once. Every import, refusal and removal is audited.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from webapp.engine import Engine
from webapp.errors import AtelierError, ValidationError
from webapp.formatting import human_bytes
from webapp.hub.book import InstallBook
from webapp.model_entry import ModelEntry, check_model_name
from webapp.model_placing import MODEL_SUFFIXES, check_new_name, copy_candidate, judge, move_in
from webapp.paths import PathEscape
from webapp.services.audit import AuditService
from webapp.settings import Settings, env_name
from webapp.users import User


class LocalModelService:
    def __init__(self, settings: Settings, engine: Engine, audit: AuditService, client: str):
        self._settings = settings
        self._engine = engine
        self._audit = audit
        self._client = client
        # The installs' folder: inside the models dir, so moving in is one rename.
        self._staging = InstallBook(settings.models_dir).root

    def _require_admin(self, user: User, kind: str, action: str) -> None:
        self._audit.require_admin(user, kind, action, self._client)

    def import_path(self, path: str, user: User, name: str | None = None) -> ModelEntry:
        """Add a model from a folder or file inside the import roots, checked first; the
        source is copied (safe files only) and left as it was."""
        self._require_admin(user, "models.import", "import models")
        source = self._inside_import_roots(path)
        name = name or (source.name if source.is_dir() else source.stem)

        def copy(waiting: Path) -> Path:
            return copy_candidate(source, waiting, name)[0]

        return self._import(source, name, user, copy)

    def import_upload(
        self, filename: str, data: bytes, user: User, name: str | None = None
    ) -> ModelEntry:
        """Add a model from one uploaded .safetensors (checkpoint or LoRA) or .gguf file."""
        self._require_admin(user, "models.import", "import models")
        suffix = Path(filename).suffix.lower()
        if suffix not in MODEL_SUFFIXES:
            raise ValidationError(
                f"{filename!r} is not a .safetensors or .gguf file: upload the model's weights "
                "in one of those formats (never .ckpt, .pt or .bin).",
                field="upload",
            )
        limit = self._settings.upload_max_mb * 2**20
        if len(data) > limit:
            raise ValidationError(
                f"The file is {human_bytes(len(data))}; uploads may be up to "
                f"{self._settings.upload_max_mb} MB ({env_name('upload_max_mb')}). Put larger "
                "models in an import folder and import them from there.",
                field="upload",
            )
        name = name or Path(filename).stem

        def write(waiting: Path) -> Path:
            waiting.mkdir(parents=True, exist_ok=True)
            target = waiting / f"{name}{suffix}"
            target.write_bytes(data)
            return target

        return self._import(Path(filename), name, user, write)

    def _import(self, source: Path, name: str, user: User, copy) -> ModelEntry:
        models_dir = self._settings.models_dir
        check_new_name(models_dir, name)
        waiting = self._staging / f"import-{uuid.uuid4().hex[:10]}"
        try:
            candidate = copy(waiting)
            entry = judge(candidate)
            move_in(candidate, entry, models_dir)
        except AtelierError as error:
            self._audit.record(
                user,
                "models.import",
                "refused",
                model=name,
                client=self._client,
                subject=source.name,
                detail=error.message,
            )
            raise
        finally:
            shutil.rmtree(waiting, ignore_errors=True)
        self._engine.rescan()
        self._audit.record(
            user,
            "models.import",
            "ok",
            model=name,
            client=self._client,
            subject=source.name,
            parameters={"kind": entry.kind, "format": entry.format},
        )
        return entry

    def _inside_import_roots(self, text: str) -> Path:
        roots = [root.resolve() for root in self._settings.import_roots]
        if not roots:
            raise ValidationError(
                f"No import folders are set: set {env_name('import_roots')} to the folders on "
                "this server that models may be imported from, or upload the file instead.",
                field="source",
            )
        raw = Path(str(text or "").strip()).expanduser()
        try:
            resolved = raw.resolve(strict=True)
        except (OSError, RuntimeError):
            raise ValidationError(
                f"{text!r} does not exist on the server: give the full path of a model folder "
                "or file.",
                field="source",
            ) from None
        if not any(resolved.is_relative_to(root) and resolved != root for root in roots):
            raise PathEscape(
                f"{text!r} is outside the import folders ({', '.join(map(str, roots))}): copy "
                "the model into one of them first.",
                field="source",
            )
        return resolved

    # -- removing ---------------------------------------------------------------------------

    def remove(self, name: str, user: User) -> ModelEntry:
        """Delete an installed model or LoRA, unless a job uses it: unloaded, then moved out
        of sight in one rename, then deleted."""
        self._require_admin(user, "models.remove", "delete models")
        check_model_name(name)
        registry = self._engine.registry()
        entry = registry.entries.get(name) or registry.loras.get(name)
        if entry is None:
            raise ValidationError(f"No model or LoRA named {name!r} is installed.", field="model")
        if entry.format == "remote":
            raise ValidationError(
                f"{name} is served by another server: remove it from "
                f"{env_name('text_servers')} instead.",
                field="model",
            )
        busy = [
            job
            for job in self._engine.jobs(user, everyone=True)
            if not job.finished and _uses(job.request, name)
        ]
        if busy:
            raise ValidationError(
                f"{name} is used by {len(busy)} job(s) queued or running. Wait until they "
                "finish (or cancel them on the Queue page), then delete it.",
                field="model",
            )
        loaded = any(stats.name == name for stats in self._engine.model_stats())
        if entry.kind != "lora" and loaded and not self._engine.unload_model(name):
            raise ValidationError(
                f"{name} is in use right now; try again when its job has finished.",
                field="model",
            )
        hidden = self._staging / f"removing-{uuid.uuid4().hex[:10]}"
        hidden.parent.mkdir(parents=True, exist_ok=True)
        entry.path.rename(hidden)
        self._engine.rescan()
        if hidden.is_dir():
            shutil.rmtree(hidden, ignore_errors=True)
        else:
            hidden.unlink(missing_ok=True)
        self._audit.record(
            user,
            "models.remove",
            "ok",
            model=name,
            client=self._client,
            parameters={"kind": entry.kind, "format": entry.format},
        )
        return entry


def _uses(request: object, name: str) -> bool:
    if getattr(request, "model", None) == name:
        return True
    return any(getattr(lora, "name", None) == name for lora in getattr(request, "loras", ()))
