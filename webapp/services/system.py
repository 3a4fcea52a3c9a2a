"""The state of the installation: versions, device, memory, folders and their problems."""

from __future__ import annotations

import platform
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from webapp import __version__
from webapp.backends import openai_server
from webapp.device import memory_info
from webapp.embedded import DEFAULT_TEXT_MODEL, is_prepared
from webapp.engine import Engine
from webapp.hub.book import InstallBook
from webapp.hub.recommended import read_recommended
from webapp.services.audit import AuditService
from webapp.settings import Settings, env_name, settings_in_effect
from webapp.text_tools import load_library
from webapp.users import User
from webapp.versions import version_checks


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    advice: str = ""
    # A failed optional check is a warning: the app works, with less.
    required: bool = True


@dataclass(frozen=True)
class DoctorReport:
    facts: dict[str, object]
    checks: list[Check] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(check.ok for check in self.checks if check.required)

    def to_dict(self) -> dict[str, object]:
        return {
            "facts": self.facts,
            "checks": [asdict(c) for c in self.checks],
            "healthy": self.healthy,
        }


CLUSTER_WAIT_SECONDS = 60  # how long the doctor waits for the image cluster to answer


class SystemService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        audit: AuditService | None = None,
        client: str = "page",
    ):
        self._settings = settings
        self._engine = engine
        self._audit = audit
        self._client = client

    def settings_in_effect(self, caller: User) -> list[tuple[str, str, str]]:
        """(environment variable, value in effect, where it came from) for every setting,
        a database password masked (admins)."""
        if self._audit is None:
            raise RuntimeError("SystemService needs the audit service to check roles")
        self._audit.require_admin(caller, "settings.view", "see the settings", self._client)
        return settings_in_effect(self._settings)

    def device_summary(self) -> dict[str, object]:
        device = self._engine.device
        memory = memory_info(device)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        return {
            "device": str(device),
            "device_name": name,
            "memory_total_bytes": memory.total_bytes,
            "memory_free_bytes": memory.free_bytes,
            "model_budget_bytes": self._engine.memory_budget_bytes(),
            "models_resident_bytes": self._engine.resident_bytes(),
        }

    def doctor(self) -> DoctorReport:
        registry = self._engine.rescan()
        ready = [e for e in registry if e.ready]
        facts: dict[str, object] = {
            "atelier": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda_available": torch.cuda.is_available(),
            **self.device_summary(),
            "models_dir": str(self._settings.models_dir.resolve()),
            "data_dir": str(self._settings.data_dir.resolve()),
            "models_found": {
                kind: sum(e.kind == kind for e in ready) for kind in ("image", "text", "embedding")
            },
        }
        checks = [
            *(Check(c.name, c.ok, c.detail, c.advice) for c in version_checks()),
            self._models_dir_check(),
            _writable_check(self._settings.data_dir),
            self._default_model_check(),
            Check(
                "embedding model",
                any(e.kind == "embedding" for e in ready),
                f"{facts['models_found']['embedding']} embedding model(s) ready",
                "Questions about documents need one: run `atelier prepare-default-model` (make "
                "run does it) to place the embedded all-MiniLM-L6-v2.",
                required=False,
            ),
            Check(
                "image model",
                any(e.kind == "image" for e in ready),
                f"{facts['models_found']['image']} image model(s) ready",
                "Install one on the Models page (Install tab), or run "
                "`atelier models install stabilityai/sd-turbo --accept-license`.",
                required=False,
            ),
            *self._model_manager_checks(registry),
        ]
        if self._settings.safety_checker:
            checkers = [e for e in ready if e.kind == "safety"]
            checks.append(
                Check(
                    "safety checker",
                    bool(checkers),
                    f"on, using {checkers[0].name}" if checkers else "on, but no weights installed",
                    "Copy the Stable Diffusion safety checker folder (config.json naming "
                    "StableDiffusionSafetyChecker, model.safetensors, preprocessor_config.json) "
                    f"into the models dir, or set {env_name('safety_checker')}=false.",
                )
            )
        for entry in registry.listing():
            if not entry.ready:
                checks.append(
                    Check(
                        f"{'LoRA' if entry.kind == 'lora' else 'model'} {entry.name}",
                        False,
                        entry.problem or entry.status,
                        "Fix or remove the files, then rescan.",
                    )
                )
        checks.extend(Check("models dir", False, problem) for problem in registry.problems)
        checks.extend(text_server_checks(self._settings))
        if self._settings.ray_address:
            checks.append(self._image_cluster_check())
        library = load_library(self._settings.library_dir)
        checks.append(
            Check(
                "text tools",
                True,
                f"{len(library.tools)} tool(s), {len(library.voices)} brand voice(s)",
            )
        )
        checks.extend(
            Check(
                "library file",
                False,
                problem,
                "Fix the file (the error names the line) "
                "or remove it; the other tools keep working.",
                required=False,
            )
            for problem in library.problems
        )
        return DoctorReport(facts=facts, checks=checks)

    def _model_manager_checks(self, registry) -> list[Check]:
        """Where installs come from (no network is used here), which recommended models are
        installed or missing, installs that need a Retry, and the import folders."""
        settings = self._settings
        installed = set(registry.entries) | set(registry.loras)
        listing = read_recommended(settings.models_dir)
        have = [m.display_name for m in listing.models if m.name in installed]
        missing = [m.display_name for m in listing.models if m.name not in installed]
        checks = [
            Check("model hub", True, f"installs come from {settings.hf_endpoint}"),
            Check(
                "recommended models",
                True,
                f"installed: {', '.join(have) or 'none'}; not installed: "
                f"{', '.join(missing) or 'none'}",
            ),
            *(Check("recommended list", False, p, required=False) for p in listing.problems),
        ]
        for install in InstallBook(settings.models_dir).all():
            if install.status in ("failed", "interrupted"):
                checks.append(
                    Check(
                        f"install {install.name}",
                        False,
                        f"{install.status}: {install.error}",
                        "Retry it on the Models page, or run `atelier models install "
                        f"{install.source}` again (it goes on where it stopped).",
                        required=False,
                    )
                )
        absent = [str(root) for root in settings.import_roots if not root.is_dir()]
        checks.append(
            Check(
                "import folders",
                not absent,
                ", ".join(map(str, settings.import_roots)) or "none set (uploads still work)",
                f"Create {', '.join(absent)} or remove it from {env_name('import_roots')}.",
                required=False,
            )
        )
        return checks

    def _image_cluster_check(self) -> Check:
        remote = self._engine.lane("image").remote
        remote.wait_settled(CLUSTER_WAIT_SECONDS)  # the doctor may run right after start
        status = remote.status()
        detail = f"{status['address']}: {status['state']}, {status['replicas']} replica(s)"
        if status["problem"]:
            detail += f" ({status['problem']})"
        return Check(
            "image cluster",
            status["state"] == "up",
            detail,
            "Start the Ray head (`ray start --head`) and its GPU workers, check "
            f"{env_name('ray_address')} (host:port of the head), and that every node has "
            "Atelier installed and the models folder at the same path (docs/deploy.md).",
            required=not self._settings.ray_fallback_local,
        )

    def _models_dir_check(self) -> Check:
        folder = self._settings.models_dir
        return Check(
            "models dir",
            folder.is_dir(),
            str(folder.resolve()),
            f"Create the folder or set {env_name('models_dir')}.",
        )

    def _default_model_check(self) -> Check:
        ok = is_prepared(self._settings.models_dir)
        return Check(
            "default text model",
            ok,
            DEFAULT_TEXT_MODEL + (" ready" if ok else " not prepared"),
            "Run `atelier prepare-default-model` (make run does it for you).",
        )


def text_server_checks(settings: Settings) -> list[Check]:
    """Each replica of each text server answers and serves the model it is named for."""
    checks = []
    for server in settings.text_servers:
        for url in server.urls:
            name = f"text server {server.model} at {url}"
            try:
                served = openai_server.served_models(url, server.api_key)
            except (openai_server.ServerDown, openai_server.ServerRefused) as error:
                checks.append(
                    Check(
                        name,
                        False,
                        f"does not answer as an OpenAI-compatible server: {error}",
                        "Start the server (`vllm serve MODEL`), or fix its URL in "
                        f"{env_name('text_servers')} (it ends in /v1).",
                    )
                )
                continue
            serves = server.name_on_server in served
            checks.append(
                Check(
                    name,
                    serves,
                    f"serves {', '.join(served) or 'no model'}",
                    f"Start it with the model {server.name_on_server!r} (vLLM: "
                    "--served-model-name), or set served_model to one it serves.",
                )
            )
    return checks


def _writable_check(folder: Path) -> Check:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
        return Check("data dir", True, f"{folder.resolve()} is writable")
    except OSError as error:
        return Check(
            "data dir",
            False,
            f"{folder} is not writable ({error.strerror})",
            f"Give the Atelier user write access or set {env_name('data_dir')}.",
        )
