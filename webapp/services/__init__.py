"""Services: what pages, the CLI and tests call. Built in one place, `build_services`."""

from __future__ import annotations

from dataclasses import dataclass

from webapp.engine import Engine
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

    def close(self) -> None:
        """Stop the engine (cancelling what runs) and unload its models."""
        self.engine.shutdown()


def build_services(settings: Settings, engine: Engine | None = None) -> Services:
    """Every service, around one engine: the one given, or a new one these services own."""
    if engine is None:
        from webapp.engine.factory import build_engine

        engine = build_engine(settings)
    return Services(
        settings=settings,
        engine=engine,
        jobs=JobService(engine),
        images=ImageService(settings, engine),
        models=ModelService(engine),
        system=SystemService(settings, engine),
        text=TextService(settings, engine),
    )
