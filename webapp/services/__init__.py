"""Services: what pages, the CLI and tests call. Built in one place, `build_services`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from webapp.device import memory_budget_bytes, resolve_device
from webapp.loader import ModelManager
from webapp.registry import LiveRegistry
from webapp.services.models import ModelService
from webapp.services.system import SystemService
from webapp.settings import Settings


@dataclass
class Services:
    settings: Settings
    device: torch.device
    registry: LiveRegistry
    manager: ModelManager
    models: ModelService
    system: SystemService


def build_services(settings: Settings) -> Services:
    device = resolve_device(settings)
    registry = LiveRegistry(settings)
    manager = ModelManager(registry, device, memory_budget_bytes(settings, device), settings)
    return Services(
        settings=settings,
        device=device,
        registry=registry,
        manager=manager,
        models=ModelService(registry, manager),
        system=SystemService(settings, device, registry, manager),
    )
