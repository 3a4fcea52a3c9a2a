"""`atelier bench history`: My work for a person with many stored images, and the session
check every page rerun pays, beside today's recent-images listing of the same folder.

Everything runs in a throwaway data dir with SQLite (the default store), or with
`--database-url` in a schema of its own on that PostgreSQL server, dropped afterwards;
nothing of the configured data dir or database is touched. Figures are medians over repeats.
The images are the single user's (single-user mode), so the My work page itself can be
opened in the app (AppTest) as well as asked of the service.
"""

from __future__ import annotations

import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import create_engine, text

from webapp import image_store
from webapp.errors import AtelierError, SignInFailed
from webapp.image_store import ImageStore
from webapp.services.history import WorkQuery
from webapp.services.team import build_team_services
from webapp.settings import PARSERS, Settings
from webapp.store import open_store
from webapp.users import User, local_user

WORDS = ("mug", "poster", "logo", "forest", "city", "portrait", "coffee", "robot")
SESSION_CHECKS = 2000
SIGN_INS = 9


def _median_ms(work: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1e3, 3)


def _fill(store: ImageStore, user: User, count: int) -> None:
    """`count` small PNGs with recipes, as Image Studio saves them."""
    picture = Image.new("RGB", (8, 8), (200, 120, 40))
    for index in range(count):
        prompt = f"a {WORDS[index % len(WORDS)]} number {index}, studio light"
        request = {"model": "tiny-sd", "prompt": prompt, "seed": index, "steps": 20}
        recipe = {"request": request, "style": None, "mode": "text to image"}
        store.save(user, f"bench{index:05d}", 0, picture, f"{prompt}\nSeed: {index}", recipe)


@contextmanager
def _scratch_database(url: str | None) -> Iterator[str | None]:
    """None (SQLite in the throwaway data dir), or a fresh schema on the PostgreSQL server."""
    if url is None:
        yield None
        return
    schema = f"atelier_bench_{secrets.token_hex(6)}"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def _thumbnails_cold_ms(count: int) -> float:
    """Thumbnails of `count` 512×512 pictures (what Image Studio saves), none made before:
    the bench's own images are tiny, so this is the work a real first page adds."""
    from webapp.image_store import _thumbnail, thumbnail_at

    with tempfile.TemporaryDirectory(prefix="atelier-thumbs-") as folder:
        paths = []
        for index in range(count):
            path = Path(folder) / f"{index}.png"
            Image.effect_noise((512, 512), 40 + index).convert("RGB").save(path)
            paths.append(path)
        _thumbnail.cache_clear()
        started = time.perf_counter()
        for path in paths:
            thumbnail_at(path)
        return round((time.perf_counter() - started) * 1e3, 3)


def bench_history(
    settings: Settings,
    images: int = 10_000,
    repeats: int = 20,
    database_url: str = "",
    app_file: Path | None = None,
) -> dict[str, Any]:
    try:
        server = PARSERS["database_url"](database_url)
    except ValueError as error:
        raise AtelierError(f"--database-url is not allowed: use {error}.") from None
    with (
        tempfile.TemporaryDirectory(prefix="atelier-bench-") as folder,
        _scratch_database(server) as scratch,
    ):
        data_dir = Path(folder) / "data"
        settings = replace(settings, data_dir=data_dir, database_url=scratch, auth_mode="none")
        person = local_user(settings)
        files = ImageStore(data_dir)
        _fill(files, person, images)

        # 1. First start: the migrations, and the import of every PNG already there.
        started = time.perf_counter()
        open_store(settings).close()
        first_start = time.perf_counter() - started

        team = build_team_services(settings)
        try:
            history, accounts = team.history, team.accounts
            token = accounts.issue_session(person)
            assert accounts.check_session(token) == person

            # 2. My work's first page: once on a fresh store (cold), then repeated.
            cold_team = build_team_services(settings)
            started = time.perf_counter()
            first_page = cold_team.history.images(person, WorkQuery())
            cold_page = time.perf_counter() - started
            cold_team.close()
            page = _median_ms(lambda: history.images(person, WorkQuery()), repeats)
            search = _median_ms(
                lambda: history.images(person, WorkQuery(words="coffee 7")), repeats
            )
            last = first_page.pages
            deep = _median_ms(lambda: history.images(person, WorkQuery(page=last)), repeats)

            # 3. The session check each rerun pays.
            check = _median_ms(lambda: accounts.check_session(token), SESSION_CHECKS)

            # 4. Today's listing: first call (folder listed, recipes read) and repeated.
            def recent_cold() -> None:
                image_store._png_names_newest_first.cache_clear()
                image_store._read_stored_version.cache_clear()
                files.recent(person, 24)

            recent_first = _median_ms(recent_cold, repeats)
            recent_again = _median_ms(lambda: files.recent(person, 24), repeats)

            # 5. Sign-in with the real password hashing: wrong password vs unknown name.
            real = build_team_services(settings, store=team.store)
            real.accounts.reset_password(
                User("bench", "bench", is_admin=True), "local", "the right password"
            )
            wrong, unknown = [], []  # alternating, so a busy moment hits both alike
            for _ in range(SIGN_INS):
                wrong.append(_median_ms(lambda: _refused(real.accounts, "local"), 1))
                unknown.append(_median_ms(lambda: _refused(real.accounts, "nobody-here"), 1))
        finally:
            team.close()

        # 6. The page itself, in the app, and the thumbnails real pictures would add.
        page_first = page_again = None
        if app_file is not None:
            from webapp.ui.page_bench import my_work_through_page

            environ = {
                "ATELIER_DATA_DIR": str(data_dir),
                "ATELIER_AUTH_MODE": "none",
                "ATELIER_LOCAL_USER_IS_ADMIN": "true",
                "ATELIER_DATABASE_URL": scratch or "",
            }
            page_first, page_again = my_work_through_page(
                app_file, environ, repeats, expect=min(images, 24)
            )
        thumbnails = _thumbnails_cold_ms(min(images, 24))
    return {
        "bench": "history",
        "images": images,
        "repeats": repeats,
        "database": "postgresql, a scratch schema" if server else "sqlite (WAL)",
        "first_start_import_s": round(first_start, 3),
        "my_work_first_page_cold_ms": round(cold_page * 1e3, 3),
        "my_work_first_page_ms": page,
        "my_work_search_ms": search,
        "my_work_last_page_ms": deep,
        "page_items": len(first_page.items),
        "my_work_page_in_app_first_ms": None if page_first is None else round(page_first * 1e3, 1),
        "my_work_page_in_app_rerun_ms": None if page_again is None else round(page_again * 1e3, 1),
        "thumbnails_of_a_page_of_512px_pictures_cold_ms": thumbnails,
        "session_check_ms": check,
        "session_checks": SESSION_CHECKS,
        "baseline_recent_first_call_ms": recent_first,
        "baseline_recent_repeated_ms": recent_again,
        "sign_in_wrong_password_ms": statistics.median(wrong),
        "sign_in_unknown_name_ms": statistics.median(unknown),
        "targets": {
            "my_work_first_page_ms": 1000,
            "my_work_page_in_app_first_ms": 1000,
            "session_check_ms": 5,
        },
    }


def _refused(accounts, login: str) -> None:
    try:
        accounts.sign_in(login, "not the password")
    except SignInFailed:
        return
    raise AssertionError("a wrong password was accepted")
