"""The API for the team's other tools, on the app's own server (one process, one engine,
one port): OpenAI-compatible under /v1, AUTOMATIC1111-compatible under /sdapi/v1. Every
call is made by the person an API key names, through the same services, fair queue,
quotas and audit log as the pages (its jobs marked `client="api"`)."""

from __future__ import annotations

from starlette.routing import Route

from webapp.api.a1111_routes import a1111_routes
from webapp.api.config import ApiConfig
from webapp.api.openai_routes import openai_routes

__all__ = ["ApiConfig", "api_routes"]


def api_routes(config: ApiConfig) -> list[Route]:
    return [*openai_routes(config), *a1111_routes(config)]
