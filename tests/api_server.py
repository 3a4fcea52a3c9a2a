"""The API served for tests: the routes serve.py mounts, on a real HTTP server (uvicorn, in
a thread) over services of the test's own, with people and their API keys."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette

from tests.conftest import CHEAP_HASHER, OPERATOR, REPO
from webapp.api import ApiConfig, api_routes
from webapp.api.local_server import served_in_thread
from webapp.engine.factory import build_engine
from webapp.services import Services, build_services
from webapp.services.team import build_team_services
from webapp.settings import Settings
from webapp.users import User

PASSWORD = "correct horse battery"


@dataclass
class ServedApi:
    url: str
    services: Services
    people: dict[str, User] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # login -> API key


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
        with served_in_thread(app) as url:
            served.url = url
            yield served
    finally:
        services.close()
        team.close()
