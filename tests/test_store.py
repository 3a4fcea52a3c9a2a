"""The store on SQLite and on PostgreSQL: migrations, restarts, the import of earlier PNGs,
and text stored as it was typed."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from PIL import Image
from sqlalchemy import inspect, select, text

from webapp.errors import SettingsError, SignInFailed
from webapp.image_store import ImageStore
from webapp.services.history import WorkQuery
from webapp.settings import Settings
from webapp.store import Base, ImageRecord, Person, Store, migrate, open_store
from webapp.users import User

LOCAL = User("local", "Local user", is_admin=True)
TABLES = {
    "people",
    "images",
    "texts",
    "audit_events",
    "api_keys",
    "documents",
    "document_chunks",
    "document_embeddings",
    "alembic_version",
}


@pytest.fixture
def settings_for(tmp_path, database_url):
    def make(**values) -> Settings:
        return Settings(data_dir=tmp_path / "data", database_url=database_url, **values)

    return make


def save_png(files: ImageStore, user: User, prompt: str, seed: int) -> Path:
    recipe = {"request": {"prompt": prompt, "model": "tiny-sd", "seed": seed}, "style": "poster"}
    picture = Image.new("RGB", (8, 8), (seed % 256, 0, 0))
    return files.save(user, f"job{seed}", 0, picture, f"{prompt}\nSeed: {seed}", recipe).path


def test_a_new_database_gets_every_table_at_the_newest_revision(settings_for):
    store = open_store(settings_for())
    try:
        assert set(inspect(store.engine).get_table_names()) >= TABLES
        assert migrate.current_revision(store.engine) == migrate.head_revision()
    finally:
        store.close()


def test_the_migrations_build_exactly_the_tables_the_code_declares(settings_for):
    store = open_store(settings_for())
    try:
        with store.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
    finally:
        store.close()


def test_upgrading_from_the_first_revision_keeps_the_rows_and_adds_what_came_later(
    settings_for,
):
    settings = settings_for()
    early = Store(settings.database, settings.data_dir)
    migrate.upgrade(early.engine, "0001")
    assert migrate.current_revision(early.engine) == "0001"
    assert "api_keys" not in inspect(early.engine).get_table_names()
    with early.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO people (id, login, display_name, role, disabled, failed_attempts,"
                " session_version, created) VALUES ('ada', 'ada', 'Ada', 'admin', false, 0, 1,"
                " '2026-01-02 03:04:05')"
            )
        )
    early.close()

    store = open_store(settings)  # a start applies the rest
    try:
        assert migrate.current_revision(store.engine) == migrate.head_revision() != "0001"
        assert "api_keys" in inspect(store.engine).get_table_names()
        with store.session() as session:
            assert session.get(Person, "ada").display_name == "Ada"
    finally:
        store.close()


def test_people_and_work_survive_a_restart(make_team, operator, tmp_path):
    first = make_team()
    first.accounts.add_person(operator, "ada", "long enough", role="admin")
    ada = first.accounts.sign_in("ada", "long enough")
    chat = first.history.start_chat(ada, [{"role": "user", "content": "hello"}])
    first.close()

    again = make_team()  # a new store object on the same database and data dir
    assert [a.login for a in again.accounts.people(operator)] == ["ada"]
    assert again.accounts.sign_in("ada", "long enough") == ada
    assert again.history.text(ada, chat.id).messages == [{"role": "user", "content": "hello"}]


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    store = open_store(Settings(data_dir=tmp_path / "data"))
    try:
        assert (tmp_path / "data" / "atelier.db").is_file()
        with store.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        store.close()


def test_an_unreachable_database_stops_start_up_with_one_message(tmp_path):
    settings = Settings(
        data_dir=tmp_path, database_url="postgresql+psycopg://nobody:secret@127.0.0.1:1/none"
    )
    with pytest.raises(SettingsError) as caught:
        open_store(settings)
    assert caught.value.field == "database_url"
    assert "secret" not in caught.value.message


def test_earlier_pngs_are_imported_for_their_owner_once(settings_for, tmp_path):
    files = ImageStore(tmp_path / "data")
    local, ada = User("local", "Local user"), User("ada", "Ada")
    mine = [save_png(files, local, f"a red mug {i}", i) for i in range(3)]
    save_png(files, ada, "a poster for Ada", 7)
    unknown = files.root / "x_y-00000000"  # a folder whose owner cannot be told
    unknown.mkdir()
    Image.new("RGB", (4, 4)).save(unknown / "lost.png")

    store = open_store(settings_for())
    try:
        with store.session() as session:
            rows = session.scalars(select(ImageRecord).order_by(ImageRecord.created)).all()
            owners = {row.owner_id for row in rows}
            ada_person = session.get(Person, "ada")
        assert len(rows) == 4 and owners == {"local", "ada"}
        assert ada_person.password_hash is None  # Ada's work waits for her
        by_seed = {row.seed: row for row in rows}
        assert by_seed[1].prompt == "a red mug 1"
        assert by_seed[1].model == "tiny-sd" and by_seed[1].style == "poster"
        assert store.file(by_seed[1].path) == mine[1]
        assert by_seed[1].created.timestamp() == pytest.approx(mine[1].stat().st_mtime, abs=2)
        assert unknown.joinpath("lost.png").is_file()  # left where it is
    finally:
        store.close()

    save_png(files, local, "one more", 9)
    store = open_store(settings_for())  # the next start adds only the new one
    try:
        with store.session() as session:
            assert len(session.scalars(select(ImageRecord.path)).all()) == 5
    finally:
        store.close()


def test_imported_images_are_in_my_work_for_the_local_user(make_team, tmp_path):
    files = ImageStore(tmp_path / "data")
    local = User("local", "Local user", is_admin=True)
    for seed in range(3):
        save_png(files, local, f"lighthouse {seed}", seed)
    team = make_team(auth_mode="none")
    page = team.history.images(local, WorkQuery())
    assert [item.seed for item in page.items] == [2, 1, 0]  # newest first
    assert team.history.images(local, WorkQuery(words="LIGHTHOUSE 1")).total == 1


@pytest.mark.parametrize(
    "typed",
    [
        "<script>alert('x')</script>",
        "Robert'); DROP TABLE people;--",
        "100% _real_ \\ {{ 7*7 }} ${HOME}",
    ],
)
def test_script_and_sql_like_text_is_stored_and_returned_literally(team, operator, typed):
    team.accounts.add_person(operator, "mallory", "long enough", display_name=typed)
    mallory = team.accounts.sign_in("mallory", "long enough")
    assert mallory.display_name == typed
    result = team.history.record_text(mallory, "rewrite", [{"role": "user", "content": typed}])
    assert team.history.text(mallory, result.id).messages[0]["content"] == typed
    assert team.history.texts(mallory, WorkQuery(words=typed)).total == 1
    assert team.history.texts(mallory, WorkQuery(words="%")).total == ("%" in typed)
    assert len(team.accounts.people(operator)) == 1  # every table still there


def test_many_sessions_write_at_once(team, operator):
    """The app's sessions are threads sharing one store."""
    team.accounts.add_person(operator, "ada", "long enough")
    ada = User("ada", "ada")

    def write(index: int) -> None:
        for turn in range(5):
            team.history.record_text(ada, "t", [{"role": "user", "content": f"{index}-{turn}"}])
            team.audit.record(ada, "text", "ok")

    threads = [threading.Thread(target=write, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert team.history.texts(ada, WorkQuery(per_page=100)).total == 40


def test_the_single_user_is_disabled_once_sign_in_is_on_until_given_a_password(make_team, operator):
    single = make_team(auth_mode="none")
    assert single.accounts.check_session(single.accounts.issue_session(LOCAL)) == LOCAL
    proxied = make_team(auth_mode="proxy", trusted_proxies=("10.0.0.5/32",))
    with pytest.raises(SignInFailed, match="disabled"):  # nobody signs on as "local"
        proxied.accounts.sign_in_proxy({"X-Forwarded-User": "local"}, "10.0.0.5")
    proxied.accounts.reset_password(operator, "local", "claim the old work")
    proxied.accounts.set_disabled(operator, "local", False)
    again = make_team(auth_mode="accounts")  # a restart keeps them enabled now
    assert again.accounts.sign_in("local", "claim the old work").id == "local"
    assert make_team(auth_mode="none").accounts.people(operator)[0].disabled is False
