"""My work: each person's images, results and chats are theirs alone; the shared board;
search, favourites, paging and delete (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from webapp.errors import NotFound, ValidationError
from webapp.image_store import ImageStore
from webapp.services.audit import AuditFilter
from webapp.services.history import NOT_FOUND, WorkQuery
from webapp.users import User

ANNA = User("anna", "Anna")
BEN = User("ben", "Ben")
ADMIN = User("ada", "Ada", is_admin=True)


@pytest.fixture
def team(make_team, operator):
    made = make_team()
    for user in (ANNA, BEN, ADMIN):
        role = "admin" if user.is_admin else "member"
        made.accounts.add_person(
            operator, user.id, "long enough", display_name=user.display_name, role=role
        )
    return made


def saved_png(team, user: User, prompt: str, seed: int = 1) -> Path:
    files = ImageStore(team.store.data_dir)
    recipe = {"request": {"prompt": prompt, "model": "tiny-sd", "seed": seed}, "style": None}
    return files.save(user, f"job{seed}", 0, Image.new("RGB", (8, 8)), prompt, recipe).path


def an_image(team, user: User, prompt: str = "a red mug", seed: int = 1):
    path = saved_png(team, user, prompt, seed)
    return team.history.record_image(user, path, {"request": {"prompt": prompt, "seed": seed}})


def a_chat(team, user: User, text: str = "hello"):
    return team.history.start_chat(user, [{"role": "user", "content": text}], model="tiny-llm")


def a_result(team, user: User, text: str = "summarise this"):
    messages = [{"role": "user", "content": text}, {"role": "assistant", "content": "done"}]
    return team.history.record_text(user, "summarise", messages)


def test_a_recorded_image_is_in_my_work_with_its_recipe(team):
    item = an_image(team, ANNA, "a lighthouse at dusk", seed=42)
    page = team.history.images(ANNA)
    assert [i.id for i in page.items] == [item.id] and page.total == 1
    assert (item.prompt, item.seed, item.owner_name) == ("a lighthouse at dusk", 42, "Anna")
    assert item.path.is_file()
    again = team.history.record_image(ANNA, item.path, {})
    assert again.id == item.id  # recording twice keeps one item


def test_an_image_outside_the_data_dir_or_someone_elses_is_not_recorded(team, tmp_path):
    outside = tmp_path / "outside.png"
    Image.new("RGB", (4, 4)).save(outside)
    with pytest.raises(ValidationError, match="under the data dir"):
        team.history.record_image(ANNA, outside, {})
    annas = an_image(team, ANNA)
    with pytest.raises(ValidationError, match="someone else's"):
        team.history.record_image(BEN, annas.path, {})


def test_a_person_never_reaches_anothers_images_texts_or_chats(team):
    image, chat, result = an_image(team, ANNA), a_chat(team, ANNA), a_result(team, ANNA)
    history = team.history
    assert history.images(BEN).total == history.texts(BEN).total == 0
    attempts = [
        ("image", lambda: history.image(BEN, image.id)),
        ("image", lambda: history.set_favourite(BEN, "image", image.id, True)),
        ("image", lambda: history.set_shared(BEN, "image", image.id, True)),
        ("image", lambda: history.remove_from_board(BEN, "image", image.id)),
        ("image", lambda: history.delete(BEN, "image", image.id)),
        ("text", lambda: history.text(BEN, chat.id)),
        ("text", lambda: history.text(BEN, result.id)),
        ("text", lambda: history.append_to_chat(BEN, chat.id, [{"role": "user", "content": "x"}])),
        ("text", lambda: history.set_favourite(BEN, "text", result.id, True)),
        ("text", lambda: history.set_shared(BEN, "text", chat.id, True)),
        ("text", lambda: history.delete(BEN, "text", chat.id)),
    ]
    for kind, attempt in attempts:
        with pytest.raises(NotFound) as caught:
            attempt()
        assert caught.value.message == NOT_FOUND[kind]
    # The same words as for an id that does not exist at all.
    with pytest.raises(NotFound, match=NOT_FOUND["image"]):
        history.image(BEN, 999_999)
    assert image.path.is_file()
    assert history.text(ANNA, chat.id).messages == [{"role": "user", "content": "hello"}]
    assert not history.image(ANNA, image.id).favourite


def test_an_admin_does_not_see_anothers_private_work_either(team):
    image = an_image(team, ANNA)
    with pytest.raises(NotFound):
        team.history.image(ADMIN, image.id)
    assert team.history.images(ADMIN, WorkQuery(scope="shared")).total == 0


@pytest.mark.parametrize("bad_id", [0, -1, True, "1", 1.0, 2**70])
def test_an_id_that_is_not_an_id_is_simply_not_found(team, bad_id):
    an_image(team, ANNA)
    with pytest.raises(NotFound):
        team.history.image(ANNA, bad_id)


def test_shared_work_is_seen_by_the_team_and_removed_only_by_its_owner_or_an_admin(team):
    image, chat = an_image(team, ANNA), a_chat(team, ANNA)
    team.history.set_shared(ANNA, "image", image.id, True)
    team.history.set_shared(ANNA, "text", chat.id, True)

    board = team.history.images(BEN, WorkQuery(scope="shared"))
    assert [(i.id, i.owner_name) for i in board.items] == [(image.id, "Anna")]
    assert team.history.text(BEN, chat.id).title == "hello"
    with pytest.raises(NotFound):
        team.history.remove_from_board(BEN, "image", image.id)
    with pytest.raises(NotFound):
        team.history.delete(BEN, "image", image.id)

    team.history.remove_from_board(ADMIN, "image", image.id)
    assert team.history.images(BEN, WorkQuery(scope="shared")).total == 0
    assert image.path.is_file()  # off the board, still Anna's
    removed = team.audit.query(ADMIN, AuditFilter(kind="board.remove")).items
    assert removed[0].subject == f"image {image.id} of anna"
    team.history.remove_from_board(ANNA, "text", chat.id)
    with pytest.raises(NotFound):
        team.history.text(BEN, chat.id)


def test_deleting_an_image_removes_its_file(team):
    image = an_image(team, ANNA)
    team.history.delete(ANNA, "image", image.id)
    assert not image.path.exists()
    with pytest.raises(NotFound):
        team.history.image(ANNA, image.id)
    assert team.history.images(ANNA).total == 0


def test_a_deleted_image_does_not_come_back_at_the_next_start(make_team, team):
    image = an_image(team, ANNA)
    team.history.delete(ANNA, "image", image.id)
    assert make_team().history.images(ANNA).total == 0


def test_search_by_words_dates_and_favourites(team, clock):
    mug = an_image(team, ANNA, "A red MUG on a table", 1)
    clock.advance(days=2)
    poster = an_image(team, ANNA, "a poster with a red circle", 2)
    team.history.set_favourite(ANNA, "image", poster.id, True)

    def found(**query):
        return [i.id for i in team.history.images(ANNA, WorkQuery(**query)).items]

    assert found(words="red") == [poster.id, mug.id]
    assert found(words="mug red") == [mug.id]  # every word must appear
    assert found(words="blue") == []
    assert found(favourites=True) == [poster.id]
    day_two = clock.now - timedelta(hours=1)
    assert found(since=day_two) == [poster.id]
    assert found(until=day_two) == [mug.id]


def test_search_finds_words_in_chats_and_results(team):
    chat = a_chat(team, ANNA, "Plan the Zürich offsite")
    a_result(team, ANNA, "quarterly numbers")
    assert [t.id for t in team.history.texts(ANNA, WorkQuery(words="zürich")).items] == [chat.id]
    assert team.history.texts(ANNA, WorkQuery(kind="result")).total == 1


def test_my_work_comes_in_pages(team, clock):
    for seed in range(5):
        an_image(team, ANNA, f"tile {seed}", seed)
        clock.advance(seconds=1)
    first = team.history.images(ANNA, WorkQuery(per_page=2))
    last = team.history.images(ANNA, WorkQuery(per_page=2, page=3))
    assert [i.seed for i in first.items] == [4, 3] and first.has_more
    assert [i.seed for i in last.items] == [0] and not last.has_more
    assert (first.total, first.pages) == (5, 3)
    with pytest.raises(ValidationError, match="from 1"):
        team.history.images(ANNA, WorkQuery(page=0))


def test_a_chat_is_continued_and_reopened_after_a_restart(make_team, team, clock):
    chat = a_chat(team, ANNA, "What is a good name for a coffee brand?")
    clock.advance(minutes=1)
    team.history.append_to_chat(
        ANNA,
        chat.id,
        [{"role": "assistant", "content": "Morning Ritual"}, {"role": "user", "content": "More"}],
    )
    reopened = make_team().history.text(ANNA, chat.id)
    assert [m["role"] for m in reopened.messages] == ["user", "assistant", "user"]
    assert reopened.title == "What is a good name for a coffee brand?"
    assert reopened.updated > reopened.created


def test_a_result_cannot_be_continued_as_a_chat(team):
    result = a_result(team, ANNA)
    with pytest.raises(ValidationError, match="Only a chat"):
        team.history.append_to_chat(ANNA, result.id, [{"role": "user", "content": "more"}])


def test_work_is_kept_only_for_someone_with_an_account(team):
    stranger = User("stranger", "Stranger")
    with pytest.raises(ValidationError, match="no account 'stranger'"):
        a_result(team, stranger)
    with pytest.raises(ValidationError, match="no account"):
        an_image(team, stranger)


@pytest.mark.parametrize(
    "messages", [[], [{"role": "hacker", "content": "x"}], [{"role": "user", "content": 3}]]
)
def test_messages_must_have_a_role_and_text(team, messages):
    with pytest.raises(ValidationError):
        team.history.record_text(ANNA, "summarise", messages)


def test_a_long_first_message_makes_a_short_title(team):
    chat = a_chat(team, ANNA, "word " * 100)
    assert len(chat.title) == 80 and chat.title.endswith("…")
