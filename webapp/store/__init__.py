"""Storage: SQLAlchemy 2 over SQLite (WAL mode, in the data dir) or PostgreSQL (by URL),
with the tables brought up to date on start, and files under the data dir.

`open_store(settings)` is the one way in: it migrates, makes sure the single-user person
exists in single-user mode, and imports the PNGs saved before there was a database.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from hashlib import sha256
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from webapp.errors import SettingsError
from webapp.settings import Settings
from webapp.store import migrate
from webapp.store.tables import (
    ApiKey,
    AuditEvent,
    Base,
    DocumentChunk,
    DocumentEmbedding,
    DocumentRecord,
    ImageRecord,
    Person,
    TextRecord,
    utc_now,
)

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Base",
    "DocumentChunk",
    "DocumentEmbedding",
    "DocumentRecord",
    "ImageRecord",
    "Person",
    "Store",
    "TextRecord",
    "open_store",
    "utc_now",
]

log = logging.getLogger(__name__)
LOCAL_ID = "local"  # the person at the browser in single-user mode


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # searchable as written, not as \u escapes


def make_engine(url: str) -> Engine:
    """An engine for `url`: SQLite gets WAL mode, foreign keys and a busy timeout on every
    connection; PostgreSQL gets connections checked before use."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, json_serializer=_json)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, json_serializer=_json, pool_pre_ping=True)


def _sqlite_pragmas(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; much faster commits
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")  # the CLI and the app may write at once
    cursor.close()


class Store:
    """The database and the data dir. Thread-safe: one per process, shared by sessions."""

    def __init__(self, url: str, data_dir: Path):
        self.data_dir = data_dir
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back if it raises."""
        with self._sessions.begin() as session:
            yield session

    def file(self, relative: str) -> Path:
        """The file a row refers to: its path under the data dir."""
        return self.data_dir / PurePosixPath(relative)

    def relative(self, path: Path) -> str:
        """How a row refers to a file under the data dir; anything outside is refused."""
        try:
            inside = path.resolve().relative_to(self.data_dir.resolve())
        except ValueError:
            raise ValueError(f"{path.name} is not under the data dir") from None
        return inside.as_posix()

    def close(self) -> None:
        self.engine.dispose()


def open_store(settings: Settings, *, import_images: bool = True) -> Store:
    """The store for these settings, its tables up to date, earlier PNGs imported."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        store = Store(settings.database, settings.data_dir)
        migrate.upgrade(store.engine)
    except ImportError as error:
        raise SettingsError(
            f"The database driver is missing ({error.name}): pip install 'psycopg[binary]'.",
            field="database_url",
        ) from error
    except (DBAPIError, OSError) as error:  # a wrong address, password or file permission
        cause = str(getattr(error, "orig", None) or error).strip().splitlines()[0][:300]
        raise SettingsError(
            f"Cannot open the database: {cause}. Check ATELIER_DATABASE_URL (unset: SQLite in "
            "the data dir) and that the server is running and reachable.",
            field="database_url",
        ) from error
    with store.session() as session:
        _single_user(session, settings)
    if import_images:
        from webapp.store.images import import_images as run_import

        report = run_import(store)
        if report.imported or report.problems:
            log.info("imported %d earlier images; %s", report.imported, report.problems)
    return store


def _single_user(session: Session, settings: Settings) -> None:
    """In single-user mode the local user exists, enabled, with the role the settings give.
    In the other modes nobody may act as them: until an admin gives them a password (to
    reach the work made in single-user mode), they stay disabled."""
    if settings.auth_mode == "none":
        local = ensure_person(session, LOCAL_ID, "Local user", "member")
        local.role = "admin" if settings.local_user_is_admin else "member"
        local.disabled = False
        return
    local = session.get(Person, LOCAL_ID)
    if local is not None and local.password_hash is None:
        local.disabled = True


def ensure_person(session: Session, person_id: str, display_name: str, role: str) -> Person:
    """The person with this id, made with `role` and no password if missing. Their login is
    the id, unless someone else already signs in with that name."""
    person = session.get(Person, person_id)
    if person is None:
        taken = session.scalar(select(Person.id).where(Person.login == person_id))
        suffix = sha256(person_id.encode()).hexdigest()[:6]
        login = person_id if taken is None else f"{person_id}-{suffix}"
        person = Person(id=person_id, login=login, display_name=display_name, role=role)
        session.add(person)
        session.flush()
    return person
