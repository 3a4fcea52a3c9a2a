"""What the API's routes need from the app, given lazily: the services are the app's own
(one engine for the pages and the API), made on first use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from webapp.services import Services
    from webapp.services.team import TeamServices


@dataclass(frozen=True)
class ApiConfig:
    services: Callable[[], Services]  # slow the first time: the engine starts
    team: Callable[[], TeamServices]  # quick: API keys are checked before the engine starts
    base_url: str = ""  # Streamlit's server.baseUrlPath

    def path(self, path: str) -> str:
        base = "/" + self.base_url.strip("/") if self.base_url.strip("/") else ""
        return base + path
