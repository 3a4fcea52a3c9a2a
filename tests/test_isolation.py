"""One person never reaches another's work: images, texts, chats and jobs, through every
service call and the command line; and every admin service refuses a member, on the
record. (The pages are covered in test_my_work_page and test_sign_in_pages.)"""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import REPO
from webapp.cli import main
from webapp.engine import ChatMessage, ImageRequest
from webapp.errors import Forbidden, NotFound
from webapp.services import build_services
from webapp.services.audit import AuditFilter
from webapp.services.history import WorkQuery
from webapp.services.images import ImageForm
from webapp.settings import Settings
from webapp.users import User

PASSWORD = "correct horse battery"


@pytest.fixture
def team_services(tiny_models_dir, tmp_path, operator):
    """Services in accounts mode with Ada (admin), Amy and Ben (members)."""
    settings = Settings(
        models_dir=tiny_models_dir,
        data_dir=tmp_path / "data",
        device="cpu",
        library_dir=tmp_path / "library",
        auth_mode="accounts",
    )
    shutil.copytree(REPO / "library", tmp_path / "library")
    services = build_services(settings)
    for login, role in (("ada", "admin"), ("amy", "member"), ("ben", "member")):
        services.accounts.add_person(operator, login, PASSWORD, role=role)
    yield services
    services.close()


def person(services, login: str) -> User:
    return services.accounts.sign_in(login, PASSWORD)


def refused(services, operator, actor: str) -> list:
    return services.audit.query(operator, AuditFilter(actor=actor, outcome="refused")).items


def make_image(services, user: User, prompt: str):
    form = ImageForm(prompt, model="tiny-sd", quality="Fast", steps=2, width=64, height=64)
    stored = services.images.finish(services.images.generate(form, user), user, timeout=120)
    return services.history.images(user).items[0], stored[0]


def run_tool(services, user: User, text: str):
    run = services.text.run_tool(
        "summarise", {"text": text}, user, model="tiny-llm", max_new_tokens=4, seed=1
    )
    run.jobs[0].result(120)
    services.chats.written(run.jobs[0], 60)  # kept by the keeper's writer thread
    return run.jobs[0]


def test_one_persons_images_are_never_another_persons(team_services, operator):
    amy, ben = person(team_services, "amy"), person(team_services, "ben")
    item, stored = make_image(team_services, amy, "amy's red kite")
    history = team_services.history
    assert history.images(ben).total == 0
    for attempt in (
        lambda: history.image(ben, item.id),
        lambda: history.set_favourite(ben, "image", item.id, True),
        lambda: history.set_shared(ben, "image", item.id, True),
        lambda: history.delete(ben, "image", item.id),
        lambda: history.remove_from_board(ben, "image", item.id),
    ):
        with pytest.raises(NotFound, match="does not exist or is not yours"):
            attempt()
    with pytest.raises(Forbidden):
        team_services.images.stored(stored.path, ben)
    assert stored.path.is_file() and history.image(amy, item.id).prompt == "amy's red kite"
    entries = refused(team_services, operator, "ben")
    assert {e.kind for e in entries} >= {"image.open", "image.delete", "image.share"}
    assert all(e.detail == "belongs to amy" for e in entries if e.kind.startswith("image."))


def test_asking_for_an_id_that_does_not_exist_is_the_same_answer(team_services, operator):
    ben = person(team_services, "ben")
    for item_id in (999_999, -1, "1; DROP TABLE images", True):
        with pytest.raises(NotFound, match="does not exist or is not yours"):
            team_services.history.image(ben, item_id)
    assert {e.detail for e in refused(team_services, operator, "ben")} == {"no such item"}


def test_text_results_and_chats_are_kept_for_their_owner_only(team_services, operator):
    amy, ben = person(team_services, "amy"), person(team_services, "ben")
    run_tool(team_services, amy, "Amy's quarterly notes <script>x</script>")
    texts = team_services.history.texts(amy)
    assert texts.total == 1
    kept = texts.items[0]
    assert kept.tool == "summarise" and kept.kind == "result"
    assert kept.messages[0] == {  # what she gave the tool, field by field, as written
        "role": "user",
        "content": "Text to summarise: Amy's quarterly notes <script>x</script>\n"
        "Length: a short paragraph",
    }
    assert team_services.history.texts(ben).total == 0
    with pytest.raises(NotFound):
        team_services.history.text(ben, kept.id)
    with pytest.raises(NotFound):
        team_services.history.delete(ben, "text", kept.id)
    assert team_services.history.text(amy, kept.id).id == kept.id


def test_a_chats_turns_are_kept_as_one_chat_that_can_be_reopened(team_services):
    amy = person(team_services, "amy")
    first = team_services.text.chat("Hello there", [], amy, model="tiny-llm", max_new_tokens=3)
    first.jobs[0].result(120)
    team_services.chats.written(first.jobs[0], 60)
    history = [ChatMessage("user", "Hello there"), ChatMessage("assistant", first.jobs[0].text)]
    second = team_services.text.chat("And again", history, amy, model="tiny-llm", max_new_tokens=3)
    second.jobs[0].result(120)
    team_services.chats.written(second.jobs[0], 60)
    chats = team_services.history.texts(amy).items
    assert len(chats) == 1 and chats[0].kind == "chat"
    assert [m["content"] for m in chats[0].messages if m["role"] == "user"] == [
        "Hello there",
        "And again",
    ]


def test_one_persons_jobs_are_never_another_persons(team_services, operator):
    amy, ben = person(team_services, "amy"), person(team_services, "ben")
    job = team_services.engine.submit(
        ImageRequest("tiny-sd", "amy's job", width=64, height=64, steps=2), amy
    )
    assert job.id not in [j.id for j in team_services.jobs.my_queue(ben).jobs]
    with pytest.raises(Forbidden, match="does not exist or is not yours"):
        team_services.jobs.job(job.id, ben)
    with pytest.raises(Forbidden):
        team_services.jobs.cancel(job.id, ben)
    assert [e.kind for e in refused(team_services, operator, "ben")] == ["job.open", "job.open"]
    assert team_services.jobs.job(job.id, amy) is job
    job.result(120)


def test_the_shared_board_is_seen_by_all_and_taken_down_by_owner_or_admin(team_services, operator):
    amy, ben, ada = (person(team_services, n) for n in ("amy", "ben", "ada"))
    item, _ = make_image(team_services, amy, "a poster for the team")
    history = team_services.history
    history.set_shared(amy, "image", item.id, True)
    board = history.images(ben, WorkQuery(scope="shared"))
    assert [i.id for i in board.items] == [item.id] and board.items[0].owner_name == "amy"
    assert history.image(ben, item.id).id == item.id  # shared: ben may look
    with pytest.raises(NotFound):
        history.remove_from_board(ben, "image", item.id)
    with pytest.raises(NotFound):
        history.delete(ben, "image", item.id)
    history.remove_from_board(ada, "image", item.id)
    assert history.images(ben, WorkQuery(scope="shared")).total == 0
    removed = team_services.audit.query(operator, AuditFilter(kind="board.remove")).items
    assert [(e.actor, e.subject) for e in removed] == [("ada", f"image {item.id} of amy")]


def test_every_admin_service_refuses_a_member_and_records_it(team_services, operator):
    ben = person(team_services, "ben")
    s = team_services
    calls = {
        "person.add": lambda: s.accounts.add_person(ben, "mallory", PASSWORD, role="admin"),
        "person.list": lambda: s.accounts.people(ben),
        "person.disable": lambda: s.accounts.set_disabled(ben, "ada", True),
        "person.password": lambda: s.accounts.reset_password(ben, "ada", "a new password!"),
        "person.role": lambda: s.accounts.set_role(ben, "ben", "admin"),
        "person.unlock": lambda: s.accounts.unlock(ben, "ada"),
        "audit.query": lambda: s.audit.query(ben),
        "audit.export": lambda: s.audit.export_csv(ben),
        "audit.usage": lambda: s.audit.usage(ben),
        "models.overview": lambda: s.models.overview(ben),
        "models.problems": lambda: s.models.problems(ben),
        "models.rescan": lambda: s.models.rescan(ben),
        "models.load": lambda: s.models.load("tiny-llm", ben),
        "models.unload": lambda: s.models.unload("tiny-llm", ben),
        "models.pin": lambda: s.models.pin("tiny-llm", ben),
        "models.unpin": lambda: s.models.unpin("tiny-llm", ben),
        "models.edit": lambda: s.models.set_default("tiny-llm", ben),
        "models.install": lambda: s.installs.look_up("test-org/little-sd", ben),
        "models.import": lambda: s.local_models.import_path("/srv/models/x", ben),
        "models.remove": lambda: s.local_models.remove("tiny-llm", ben),
        "models.loaded": lambda: s.jobs.loaded_models(ben),
        "jobs.everyone": lambda: s.jobs.everyones_queue(ben),
        "kits.list": lambda: s.kits.kits(ben),
        "style.save": lambda: s.kits.save_style(ben, "x", name="X", prompt="{prompt}"),
        "style.delete": lambda: s.kits.delete_style(ben, "x"),
        "voice.save": lambda: s.kits.save_voice(ben, "x", name="X", description="d"),
        "voice.delete": lambda: s.kits.delete_voice(ben, "x"),
        "settings.view": lambda: s.system.settings_in_effect(ben),
    }
    library = sorted(s.settings.library_dir.rglob("*.toml"))
    for call in calls.values():
        with pytest.raises(Forbidden, match="Only an admin can"):
            call()
    recorded = [e.kind for e in refused(s, operator, "ben")]
    assert sorted(recorded) == sorted(calls)
    assert s.accounts.people(operator)[0].role == "admin"  # nothing changed
    assert sorted(s.settings.library_dir.rglob("*.toml")) == library


def test_the_command_line_owns_its_work_as_the_operator(
    team_services, monkeypatch, capsys, tmp_path, tiny_models_dir
):
    settings = team_services.settings
    team_services.close()
    for key, value in {
        "MODELS_DIR": tiny_models_dir,
        "DATA_DIR": settings.data_dir,
        "DEVICE": "cpu",
        "LIBRARY_DIR": REPO / "library",
        "AUTH_MODE": "accounts",
        "CONFIG": tmp_path / "none.toml",
    }.items():
        monkeypatch.setenv(f"ATELIER_{key}", str(value))
    (tmp_path / "none.toml").write_text("")
    monkeypatch.setattr("getpass.getuser", lambda: "root")
    assert main(["image", "a lighthouse", "--model", "tiny-sd", "--steps", "2"]) == 0
    capsys.readouterr()
    again = build_services(Settings(**{**settings.__dict__, "library_dir": REPO / "library"}))
    try:
        operator = User("cli:root", "Server operator (root)", is_admin=True)
        assert [i.prompt for i in again.history.images(operator).items] == ["a lighthouse"]
        assert again.history.images(person(again, "amy")).total == 0
        jobs = again.audit.query(operator, AuditFilter(kind="image")).items
        assert [(e.actor, e.client) for e in jobs] == [("cli:root", "cli")]
        with pytest.raises(Exception, match="disabled|Wrong"):
            again.accounts.sign_in("cli:root", "")
    finally:
        again.close()
