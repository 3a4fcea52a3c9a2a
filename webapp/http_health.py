"""`GET /healthz`: whether Atelier can serve work, for a load balancer or a monitor.

200 and `"status": "ok"` while the engine's worker is alive and the engine is not stopping;
503 and `"status": "failing"` otherwise (the body says why). Counts only: no model names,
people or prompts. The first call starts the app's services if no page has yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

HEALTH_PATH = "/healthz"
log = logging.getLogger(__name__)


def health_report(engine_health: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The HTTP status and body for the engine's state (`Engine.health()`)."""
    problems = []
    if not engine_health["worker_alive"]:
        problems.append("the engine's worker has stopped; restart Atelier")
    if engine_health["stopping"]:
        problems.append("Atelier is shutting down")
    body = {
        "status": "failing" if problems else "ok",
        "problems": problems,
        "worker_restarts": engine_health["worker_restarts"],
        "queued": engine_health["queued"],
        "running": engine_health["running"],
        "models_loaded": len(engine_health["models_loaded"]),
    }
    return (503 if problems else 200), body


def health_routes(services: Callable[[], Any], base_url: str = "") -> list[Route]:
    """`services`: the app's services (started on first use)."""

    async def health(request: Request) -> JSONResponse:
        try:
            state = await run_in_threadpool(lambda: services().engine.health())
        except Exception:  # the services could not start: say so (the log says why)
            log.exception("the health check could not start Atelier's services")
            body = {"status": "failing", "problems": ["Atelier could not start; see its log"]}
            return JSONResponse(body, status_code=503)
        status, body = health_report(state)
        return JSONResponse(body, status_code=status)

    base = "/" + base_url.strip("/") if base_url.strip("/") else ""
    return [Route(base + HEALTH_PATH, health, methods=["GET"])]
