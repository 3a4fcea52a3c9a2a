"""Services: what pages, the CLI and tests call. Built in one place, `build_services`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from webapp.engine import Engine, build_engine
from webapp.loader import ModelManager
from webapp.registry import LiveRegistry
from webapp.services.images import ImageService
from webapp.services.jobs import JobService
from webapp.services.models import ModelService
from webapp.services.system import SystemService
from webapp.services.text import TextService
from webapp.settings import Settings


@dataclass
class Services:
    settings: Settings
    engine: Engine
    jobs: JobService
    images: ImageService
    models: ModelService
    system: SystemService
    text: TextService

    @property
    def manager(self) -> ModelManager:
        return self.engine.manager

    @property
    def registry(self) -> LiveRegistry:
        return self.engine.manager.registry

    @property
    def device(self) -> torch.device:
        return self.engine.manager.device

    def close(self) -> None:
        self.engine.shutdown()
        self.manager.unload_all()


def build_services(settings: Settings, engine: Engine | None = None) -> Services:
    """Every service, around one engine (the process-wide one in the app)."""
    engine = engine or build_engine(settings)
    registry, manager = engine.manager.registry, engine.manager
    return Services(
        settings=settings,
        engine=engine,
        jobs=JobService(engine),
        images=ImageService(settings, engine),
        models=ModelService(registry, manager),
        system=SystemService(settings, manager.device, registry, manager),
        text=TextService(settings, engine),
    )
