"""Two app replicas on one database and one data folder (SQLite here, PostgreSQL in CI), as
behind a load balancer: what one records the other sees, and a sign-in made on one holds,
and ends, on both."""

from __future__ import annotations

from tests.test_history import a_chat, an_image
from webapp.users import User

ANNA = User("anna", "Anna")


def test_two_replicas_see_the_same_history_and_sign_ins(make_team, operator):
    first, second = make_team(), make_team()
    first.accounts.add_person(operator, ANNA.id, "long enough", display_name="Anna")
    image = an_image(first, ANNA, "a red mug")
    chat = a_chat(second, ANNA, "hello from the other replica")
    assert [item.id for item in second.history.images(ANNA).items] == [image.id]
    assert chat.id in [item.id for item in first.history.texts(ANNA).items]

    signed_in = first.accounts.sign_in(ANNA.id, "long enough")
    token = first.accounts.issue_session(signed_in)
    assert second.accounts.check_session(token).id == ANNA.id
    second.accounts.sign_out_everywhere(signed_in)
    assert first.accounts.check_session(token) is None
