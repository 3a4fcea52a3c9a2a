"""My work, Admin and Audit as people use them, through AppTest from app.py in accounts
mode: Bob and Cleo are members, Ada is the admin."""

from __future__ import annotations

from datetime import timedelta

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.conftest import APP, OPERATOR, PASSWORD
from webapp.engine import ChatMessage
from webapp.errors import SignInFailed
from webapp.services.audit import AuditFilter
from webapp.ui.resources import get_services, get_team
from webapp.users import User


@pytest.fixture
def team(accounts_app):
    get_team().accounts.add_person(OPERATOR, "cleo", PASSWORD, display_name="Cleo")
    return accounts_app


def user(login: str) -> User:
    return get_team().accounts.sign_in(login, PASSWORD)


def saved_image(owner: User, prompt: str, seed: int = 1):
    """A stored PNG with its recipe, in the owner's work (as Image Studio leaves it)."""
    services = get_services()
    recipe = {"request": {"prompt": prompt, "model": "tiny-sd", "seed": seed, "steps": 2}}
    stored = services.images.store.save(
        owner, f"job{seed}", 0, Image.new("RGB", (64, 64), (seed % 255, 90, 40)), prompt, recipe
    )
    return services.history.record_image(owner, stored.path, recipe)


def open_page(page: str) -> AppTest:
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page(page).run()
    assert not app.exception, app.exception
    return app


def shown_texts(app: AppTest) -> list[str]:
    return [t.value for t in app.text]


def press(app: AppTest, label: str, index: int = 0) -> AppTest:
    buttons = [b for b in app.button if b.label == label]
    buttons[index].click().run()
    assert not app.exception, app.exception
    return app


def test_my_work_shows_my_images_and_never_another_persons(team):
    bob, cleo = user("bob"), user("cleo")
    saved_image(bob, "bob's <b>lighthouse</b>", 1)
    saved_image(bob, "bob's harbour", 2)
    saved_image(cleo, "cleo's secret plan", 3)
    team("bob")
    app = open_page("app_pages/my_work.py")
    assert shown_texts(app) == ["bob's harbour", "bob's <b>lighthouse</b>"]  # newest first
    assert "cleo's secret plan" not in shown_texts(app)
    app.text_input(key="work-words").input("lighthouse").run()
    assert shown_texts(app) == ["bob's <b>lighthouse</b>"]


def test_dates_narrow_my_work_to_the_days_asked(team):
    bob = user("bob")
    made = saved_image(bob, "a mug", 1).created
    team("bob")
    app = open_page("app_pages/my_work.py")
    app.date_input(key="work-since").set_value(made.date() + timedelta(days=1)).run()
    assert shown_texts(app) == []
    app.date_input(key="work-since").set_value(made.date() - timedelta(days=1)).run()
    assert shown_texts(app) == ["a mug"]


def test_favourites_and_delete_asked_twice_which_removes_the_file(team):
    bob = user("bob")
    kept = saved_image(bob, "keep me", 1)
    gone = saved_image(bob, "delete me", 2)
    team("bob")
    app = open_page("app_pages/my_work.py")
    press(app, "Favourite", index=1)  # "keep me" is the older, second card
    app.toggle(key="work-favourites").set_value(True).run()
    assert shown_texts(app) == ["keep me"]
    app.toggle(key="work-favourites").set_value(False).run()
    press(app, "Delete", index=0)
    assert gone.path.is_file()  # asked, not yet done
    press(app, "Delete for good")
    assert not gone.path.exists() and kept.path.is_file()
    assert shown_texts(app) == ["keep me"]
    assert "Deleted." in [s.value for s in app.success]


def test_shared_work_is_on_the_board_and_only_owner_or_admin_take_it_down(team):
    bob = user("bob")
    saved_image(bob, "our poster", 1)
    team("bob")
    app = open_page("app_pages/my_work.py")
    press(app, "Share with the team")
    team("cleo")
    cleo = open_page("app_pages/my_work.py")
    assert shown_texts(cleo) == []
    cleo.segmented_control(key="work-view").set_value("board").run()
    assert shown_texts(cleo) == ["our poster"]
    assert any("Bob" in c.value for c in cleo.caption)
    assert not [b for b in cleo.button if b.label == "Take off the board"]
    team("ada")
    ada = open_page("app_pages/my_work.py")
    ada.segmented_control(key="work-view").set_value("board").run()
    press(ada, "Take off the board")
    assert shown_texts(ada) == []


def test_use_these_settings_opens_image_studio_with_the_recipe(team):
    bob = user("bob")
    saved_image(bob, "a ceramic mug, morning light", 7)
    team("bob")
    app = open_page("app_pages/my_work.py")
    press(app, "Use these settings")
    assert app.title[0].value == "Image Studio"
    assert app.text_area(key="img-prompt").value == "a ceramic mug, morning light"
    assert app.text_input(key="img-seed").value == "7"


def test_a_kept_chat_goes_on_in_text_tools(team):
    bob = user("bob")
    turns = [ChatMessage("user", "Plan the launch"), ChatMessage("assistant", "Step one: …")]
    get_services().history.record_chat_turn(bob, [], turns, model="tiny-llm")
    team("bob")
    app = open_page("app_pages/my_work.py")
    app.segmented_control(key="work-view").set_value("texts").run()
    assert any("Plan the launch" in m.value for m in app.markdown)
    press(app, "Go on in Text tools")
    assert [m.name for m in app.chat_message] == ["user", "assistant"]
    assert "Plan the launch" in shown_texts(app)


def test_my_work_is_paged(team):
    bob = user("bob")
    for number in range(30):
        saved_image(bob, f"picture {number:02d}", number)
    team("bob")
    app = open_page("app_pages/my_work.py")
    assert len(shown_texts(app)) == 24
    assert "Page 1 of 2 · 30 images" in [c.value for c in app.caption]
    press(app, "Next")
    assert sorted(shown_texts(app)) == [f"picture {n:02d}" for n in range(6)]


# -- Admin ----------------------------------------------------------------------------------


def test_an_admin_adds_a_person_who_can_then_sign_in(team):
    team("ada")
    app = open_page("app_pages/admin.py")
    inputs = {t.label: t for t in app.text_input}
    inputs["Sign-in name"].input("dana")
    inputs["Display name"].input("Dana <i>D</i>")
    app.text_input(key="add-password").input("a good long password")
    app.text_input(key="add-again").input("a good long password")
    app.button(key="FormSubmitter:add-person-Add person").click().run()
    assert "Added dana (member)." in [s.value for s in app.success]
    assert "Dana <i>D</i>" in list(app.dataframe[0].value["Display name"])
    assert get_team().accounts.sign_in("dana", "a good long password").id == "dana"


def test_a_bad_sign_in_name_is_refused_next_to_the_form(team):
    team("ada")
    app = open_page("app_pages/admin.py")
    {t.label: t for t in app.text_input}["Sign-in name"].input("Robert'); DROP TABLE people;--")
    app.text_input(key="add-password").input("a good long password")
    app.text_input(key="add-again").input("a good long password")
    app.button(key="FormSubmitter:add-person-Add person").click().run()
    assert any("A sign-in name is 2 to 32 characters" in e.value for e in app.error)
    assert len(get_team().accounts.people(OPERATOR)) == 3  # ada, bob, cleo


def test_an_admin_disables_and_unlocks_people_from_the_page(team):
    team("ada")
    app = open_page("app_pages/admin.py")
    app.selectbox(key="admin-person").select("bob").run()
    press(app, "Disable")
    assert "disabled" in list(app.dataframe[0].value["Status"])
    press(app, "Enable")
    assert "Enabled bob." in [s.value for s in app.success]


def test_a_style_saved_on_the_admin_page_locks_its_shape_for_members(team, tmp_path):
    team("ada")
    app = open_page("app_pages/admin.py")
    app.text_input(key="style-new-id").input("launch-poster")
    app.text_input(key="style-new-name").input("Launch poster")
    app.text_area(key="style-new-prompt").input("{prompt}, bold launch poster")
    app.selectbox(key="style-new-aspect").select("wide")
    app.multiselect(key="style-new-locked").select("aspect")
    press(app, "Save style")
    assert "Saved the style Launch poster." in [s.value for s in app.success]
    written = (tmp_path / "library" / "styles" / "launch-poster.toml").read_text()
    assert 'locked = ["aspect"]' in written
    styles = {s.id: s for s in get_services().images.styles(user("bob"))}
    assert styles["launch-poster"].locked == ("aspect",)


def test_the_settings_in_effect_are_shown_to_admins(team):
    team("ada")
    app = open_page("app_pages/admin.py")
    table = app.dataframe[1].value
    assert dict(zip(table["Setting"], table["Value"], strict=True))["ATELIER_AUTH_MODE"] == (
        "accounts"
    )


# -- Audit ----------------------------------------------------------------------------------


def test_the_audit_page_filters_the_log_and_offers_it_as_csv(team):
    for name in ("bob", "nobody-here"):
        with pytest.raises(SignInFailed):
            get_team().accounts.sign_in(name, "not the password")
    team("ada")
    app = open_page("app_pages/audit.py")
    app.selectbox(key="audit-outcome").select("failed").run()
    table = app.dataframe[0].value
    assert set(table["Who"]) == {"bob", "nobody-here"}
    assert set(table["What"]) == {"sign_in"}
    assert [b.label for b in app.get("download_button")] == ["Download the filtered log (CSV)"]
    entries = get_team().audit.query(OPERATOR, AuditFilter(kind="audit.query")).items
    assert entries == []  # reading the log is not itself an entry; refusals are
