"""Shared fixtures: tiny models made once per session, settings and services around them."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text
from streamlit.runtime.context import StreamlitHeaders

from webapp.embedded import DEFAULT_TEXT_MODEL, prepare_default_model
from webapp.http_auth import SESSION_COOKIE
from webapp.offline import use_offline_environment
from webapp.services import build_services
from webapp.services.team import build_team_services
from webapp.settings import Settings, load_settings
from webapp.testmodels import make_test_models
from webapp.ui import session
from webapp.ui.resources import clear_resources, get_team
from webapp.users import User

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
CATALOG = REPO / "models" / "catalog.toml"
NO_CONFIG = Path("/nonexistent/atelier.toml")


def pytest_configure(config):
    use_offline_environment()


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> Path:
    """A models dir holding tiny-sd and tiny-llm (and the project's catalog)."""
    folder = tmp_path_factory.mktemp("models")
    make_test_models(folder)
    shutil.copy(CATALOG, folder / "catalog.toml")
    return folder


@pytest.fixture(scope="session")
def embedded_models_dir() -> Path:
    """The project's models dir, with the embedded SmolLM2 prepared (idempotent)."""
    models = REPO / "models"
    prepare_default_model(models)
    assert (models / DEFAULT_TEXT_MODEL).is_dir()
    return models


@pytest.fixture
def models_dir(tiny_models_dir, tmp_path) -> Path:
    """A private copy of the tiny models that a test may damage."""
    folder = tmp_path / "models"
    shutil.copytree(tiny_models_dir, folder)
    return folder


@pytest.fixture
def settings(tiny_models_dir, tmp_path) -> Settings:
    return Settings(models_dir=tiny_models_dir, data_dir=tmp_path / "data", device="cpu")


@pytest.fixture
def services(settings):
    built = build_services(settings)
    yield built
    built.close()


@pytest.fixture
def make_services(tmp_path):
    """Services over a models dir (and the project's library); closed after the test."""
    made = []

    def make(models_dir: Path, **settings):
        values = dict(
            models_dir=models_dir,
            data_dir=tmp_path / "data",
            device="cpu",
            library_dir=REPO / "library",
        )
        made.append(build_services(Settings(**{**values, **settings})))
        return made[-1]

    yield make
    for services in made:
        services.close()


@pytest.fixture
def admin() -> User:
    return User(id="ada", display_name="Ada", is_admin=True)


@pytest.fixture
def member() -> User:
    return User(id="bob", display_name="Bob", is_admin=False)


# -- storage: SQLite and a real PostgreSQL -------------------------------------------------

POSTGRES_URL_ENV = "ATELIER_TEST_POSTGRES_URL"
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # tests only


class FakeClock:
    """A clock the test moves: `clock()` is now; `clock.advance(minutes=5)` moves it."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime(2026, 11, 29, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The URL of the PostgreSQL server CI starts (.ci/postgres); skipped loudly without
    one, unless ATELIER_REQUIRE_POSTGRES makes that a failure."""
    raw = os.environ.get(POSTGRES_URL_ENV)
    reason = None
    if not raw:
        reason = f'{POSTGRES_URL_ENV} is not set (start one: eval "$(.ci/postgres start)")'
    else:
        url = load_settings({"ATELIER_DATABASE_URL": raw}, NO_CONFIG).database_url
        engine = create_engine(url)
        try:
            with engine.connect():
                pass
        except Exception as error:
            reason = f"cannot reach {POSTGRES_URL_ENV}: {type(error).__name__}: {error}"
        finally:
            engine.dispose()
    if reason:
        if os.environ.get("ATELIER_REQUIRE_POSTGRES"):
            pytest.fail(f"ATELIER_REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(f"POSTGRESQL TESTS SKIPPED: {reason}")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> str | None:
    """None (SQLite in the data dir), or a fresh schema of its own on the PostgreSQL server."""
    if request.param == "sqlite":
        yield None
        return
    server = request.getfixturevalue("postgres_server")
    schema = f"test_{uuid.uuid4().hex[:16]}"
    engine = create_engine(server)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{server}?options=-csearch_path%3D{schema}"
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_team(tmp_path, database_url, clock):
    """Store services on one data dir and database; each call is a fresh start (a new
    store object), as after a restart. Closed after the test."""
    made = []

    def make(**values):
        settings = Settings(
            **{
                "data_dir": tmp_path / "data",
                "database_url": database_url,
                "auth_mode": "accounts",
                **values,
            }
        )
        made.append(build_team_services(settings, clock=clock, hasher=CHEAP_HASHER))
        return made[-1]

    yield make
    for team in made:
        team.close()


@pytest.fixture
def team(make_team):
    return make_team()


@pytest.fixture
def operator() -> User:
    return User(id="cli:test", display_name="Server operator", is_admin=True)


# -- the app as people of a team use it (AppTest from app.py) --------------------------------

PASSWORD = "correct horse battery"
OPERATOR = User("cli:test", "Server operator", is_admin=True)


@pytest.fixture
def team_app_env(monkeypatch, tmp_path, tiny_models_dir):
    """The whole app (AppTest from app.py) over the tiny models, a data dir and a copy of
    the library of its own; `configure(auth_mode="accounts", …)` sets more settings."""
    library = tmp_path / "library"
    shutil.copytree(REPO / "library", library)

    def configure(**settings):
        monkeypatch.setenv("ATELIER_MODELS_DIR", str(tiny_models_dir))
        monkeypatch.setenv("ATELIER_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("ATELIER_DEVICE", "cpu")
        monkeypatch.setenv("ATELIER_LIBRARY_DIR", str(library))
        for key, value in settings.items():
            monkeypatch.setenv(f"ATELIER_{key.upper()}", value)
        clear_resources()

    yield configure
    clear_resources()


@pytest.fixture
def browser_sends(monkeypatch):
    """What the browser's request carries: cookies and headers."""
    sent = {"cookies": {}, "headers": []}
    monkeypatch.setattr(session, "request_cookies", lambda: sent["cookies"])
    monkeypatch.setattr(session, "request_headers", lambda: StreamlitHeaders(sent["headers"]))
    return sent


@pytest.fixture
def accounts_app(team_app_env, browser_sends):
    """Accounts mode with Ada (admin) and Bob (member); `sign_in(name)` gives the browser
    that person's session cookie."""
    team_app_env(auth_mode="accounts")
    accounts = get_team().accounts
    accounts.add_person(OPERATOR, "ada", PASSWORD, display_name="Ada", role="admin")
    accounts.add_person(OPERATOR, "bob", PASSWORD, display_name="Bob")

    def sign_in(login: str) -> str:
        token = accounts.issue_session(accounts.sign_in(login, PASSWORD))
        browser_sends["cookies"] = {SESSION_COOKIE: token}
        return token

    return sign_in


@pytest.fixture
def engine_settings(tiny_models_dir, tmp_path) -> Settings:
    """Settings for engine tests: the tiny models, the project's library, room in the queue."""
    return Settings(
        models_dir=tiny_models_dir,
        data_dir=tmp_path / "data",
        device="cpu",
        library_dir=REPO / "library",
        queue_max_per_user=30,
        queue_max_total=60,
    )


@pytest.fixture
def make_engine(engine_settings):
    """Engines over `engine_settings` (options as `build_engine` takes them), shut down
    after the test."""
    from webapp.engine.factory import build_engine

    built = []

    def make(**options):
        built.append(build_engine(engine_settings, **options))
        return built[-1]

    yield make
    for engine in built:
        engine.shutdown()


@pytest.fixture
def app_env(monkeypatch, tmp_path):
    """Point the app (AppTest) at a models dir; each test starts with fresh services."""
    from webapp.ui.resources import clear_resources

    def configure(models_dir, **settings):
        monkeypatch.setenv("ATELIER_MODELS_DIR", str(models_dir))
        monkeypatch.setenv("ATELIER_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("ATELIER_DEVICE", "cpu")
        monkeypatch.setenv("ATELIER_LIBRARY_DIR", str(REPO / "library"))
        for key, value in settings.items():
            monkeypatch.setenv(f"ATELIER_{key.upper()}", value)
        clear_resources()

    yield configure
    clear_resources()
