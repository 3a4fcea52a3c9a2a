"""The API keys page as people use it (AppTest from app.py in accounts mode): a key is made,
shown once and works; revoked, it stops; admins see and revoke everyone's."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import APP, PASSWORD
from webapp.errors import Unauthenticated
from webapp.ui.resources import get_team

PAGE = "app_pages/api_keys.py"


def open_keys_page() -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page(PAGE).run()
    assert not app.exception, app.exception
    return app


def make_key(app: AppTest, name: str) -> str:
    app.text_input[0].input(name)
    app.button[0].click().run()  # the form's "Make a key"
    assert not app.exception, app.exception
    [shown] = [block.value for block in app.code if block.value.startswith("atl_")]
    return shown


def test_a_key_made_on_the_page_is_shown_once_and_works(accounts_app):
    accounts_app("bob")
    app = open_keys_page()
    key = make_key(app, "Open WebUI")
    assert get_team().api_keys.person_for(key).id == "bob"
    assert "Copy it now" in app.success[0].value
    app.run()  # any later run: the key is gone from the page, its prefix stays
    assert not [block for block in app.code if block.value.startswith("atl_")]
    assert any(key[:12] in text.value for text in app.text)


def test_a_key_revoked_on_the_page_stops_working(accounts_app):
    accounts_app("bob")
    app = open_keys_page()
    key = make_key(app, "notebook")
    [revoke] = [b for b in app.button if b.label == "Revoke"]
    revoke.click().run()
    assert "stops working now" in app.success[0].value
    with pytest.raises(Unauthenticated, match="revoked"):
        get_team().api_keys.person_for(key)


def test_a_member_sees_only_their_keys_and_an_admin_everyones(accounts_app):
    team = get_team()
    ada = team.accounts.sign_in("ada", PASSWORD)
    team.api_keys.create(ada, "ada's own tool")
    accounts_app("bob")
    app = open_keys_page()
    make_key(app, "bob's script")
    texts = [text.value for text in app.text]
    assert any("bob's script" in t for t in texts)
    assert not any("ada's own tool" in t for t in texts)
    assert "Everyone's keys" not in [h.value for h in app.subheader]

    accounts_app("ada")
    app = open_keys_page()
    texts = [text.value for text in app.text]
    assert any("bob's script · bob" in t for t in texts)
    bobs = [b for b in app.button if b.key and b.key.startswith("revoke-all-")][0]  # newest
    bobs.click().run()
    assert [k.active for k in team.api_keys.keys(ada, everyone=True) if k.owner_id == "bob"] == [
        False
    ]


def test_without_sign_in_the_page_says_whether_the_api_is_on(team_app_env):
    team_app_env()
    app = open_keys_page()
    assert "the API is off" in app.info[0].value
    team_app_env(api_key="k" * 32)
    app = open_keys_page()
    assert "accepts the one key" in app.info[0].value
