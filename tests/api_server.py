"""The API served for tests: the routes serve.py mounts, on a real HTTP server (uvicorn, in
a thread) over services of the test's own, with people and their API keys."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from tests.conftest import CHEAP_HASHER, OPERATOR, REPO
from webapp.api import ApiConfig, api_routes
from webapp.engine.factory import build_engine
from webapp.services import Services, build_services
from webapp.services.team import build_team_services
from webapp.settings import Settings
from webapp.users import User

PASSWORD = "correct horse battery"
PORTS = range(8610, 8620)  # this project's test servers; any free port after them


@dataclass
class ServedApi:
    url: str
    services: Services
    people: dict[str, User] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # login -> API key


def free_port() -> int:
    for port in [*PORTS, 0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


@contextlib.contextmanager
def serving_app(app) -> Iterator[str]:
    """`app` on a real HTTP server in a thread; its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="test-api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test API server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def served_api(
    models_dir: Path, data_dir: Path, people=("ada", "bob"), **options
) -> Iterator[ServedApi]:
    """Accounts mode: `ada` an admin, the others members, each with a key; the engine is
    built with `options` (image_runner, decode_batch…) and these settings."""
    engine_options = {
        key: options.pop(key)
        for key in ("image_runner", "decode_batch", "preview", "batch_window_seconds")
        if key in options
    }
    settings = Settings(
        models_dir=models_dir,
        data_dir=data_dir,
        device="cpu",
        library_dir=REPO / "library",
        auth_mode="accounts",
        **options,
    )
    team = build_team_services(settings, hasher=CHEAP_HASHER)
    services = build_services(settings, build_engine(settings, **engine_options), team=team)
    served = ServedApi("", services)
    for login in people:
        role = "admin" if login == "ada" else "member"
        team.accounts.add_person(OPERATOR, login, PASSWORD, role=role)
        served.people[login] = team.accounts.sign_in(login, PASSWORD)
        served.keys[login] = team.api_keys.create(served.people[login], "tests").key
    app = Starlette(routes=api_routes(ApiConfig(lambda: services, lambda: team)))
    try:
        with serving_app(app) as url:
            served.url = url
            yield served
    finally:
        services.close()
        team.close()
