"""The frame in every sign-in mode, through AppTest from app.py: who is signed in, which
pages they are offered, and what someone who is not signed in (or is refused) sees.

AppTest cannot send cookies or headers, so the tests hand the frame what a browser would
have sent (the session cookie, the proxy's headers) through `webapp.ui.session`'s readers.
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import APP, OPERATOR, PASSWORD
from webapp.http_auth import PEER_HEADER, SESSION_COOKIE
from webapp.services.audit import AuditFilter
from webapp.ui.resources import get_team

ADMIN_PAGES = ("app_pages/models.py", "app_pages/admin.py", "app_pages/audit.py")


def run_app(app: AppTest | None = None) -> AppTest:
    if app is None:  # (an AppTest with nothing drawn yet is falsy)
        app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    assert not app.exception, app.exception
    return app


def sidebar_text(app: AppTest) -> str:
    return "\n".join(str(c.value) for c in app.sidebar.caption)


def opens(app: AppTest, page: str) -> bool:
    try:
        app.switch_page(page)
    except ValueError:
        return False
    return True


def refusals(kind: str) -> list:
    filters = AuditFilter(kind=kind, outcome="refused")
    return get_team().audit.query(OPERATOR, filters).items


def test_with_sign_in_off_a_quiet_line_says_so(team_app_env):
    team_app_env()
    app = run_app()
    assert "Sign-in is off" in sidebar_text(app)
    assert "Local user" in sidebar_text(app)
    assert not [b for b in app.sidebar.button if b.label == "Sign out"]


def test_nobody_signed_in_is_offered_no_page_only_the_sign_in(accounts_app):
    app = run_app()
    assert [t.value for t in app.title] == ["Atelier"]
    assert [b.label for b in app.button] == ["Sign in"]
    for page in ("app_pages/queue.py", "app_pages/my_work.py", *ADMIN_PAGES):
        assert not opens(app, page), page


def test_a_member_is_offered_the_studio_pages_and_never_an_admin_page(accounts_app):
    accounts_app("bob")
    app = run_app()
    assert "Signed in as **Bob**" in sidebar_text(app)
    assert "(admin)" not in sidebar_text(app)
    for page in ADMIN_PAGES:
        assert not opens(app, page), page
    assert opens(app, "app_pages/my_work.py")
    run_app(app)
    assert app.title[0].value == "My work"


def test_an_admin_is_offered_models_admin_and_audit(accounts_app):
    accounts_app("ada")
    app = run_app()
    assert "Signed in as **Ada** (admin)" in sidebar_text(app)
    for page in ADMIN_PAGES:
        assert opens(app, page), page
    app.switch_page("app_pages/admin.py")
    run_app(app)
    logins = list(app.dataframe[0].value["Sign-in name"])
    assert logins == ["ada", "bob"]


def test_a_tampered_cookie_ends_the_sign_in_and_is_recorded_once(accounts_app, browser_sends):
    token = accounts_app("bob")
    browser_sends["cookies"] = {SESSION_COOKIE: token[:-3] + "xyz"}
    app = run_app()
    assert "Your sign-in has ended" in app.warning[0].value
    run_app(app)  # a second click does not record it again
    assert len(refusals("session")) == 1
    assert not opens(app, "app_pages/queue.py")


def test_a_person_disabled_meanwhile_is_signed_out_at_their_next_click(accounts_app):
    accounts_app("bob")
    app = run_app()
    assert "Bob" in sidebar_text(app)
    get_team().accounts.set_disabled(OPERATOR, "bob", True)
    run_app(app)
    assert [b.label for b in app.button] == ["Sign in"]
    assert not opens(app, "app_pages/queue.py")


def test_a_person_made_admin_meanwhile_sees_the_admin_pages_at_their_next_click(accounts_app):
    accounts_app("bob")
    app = run_app()
    assert not opens(app, "app_pages/admin.py")
    get_team().accounts.set_role(OPERATOR, "bob", "admin")
    run_app(app)
    assert opens(app, "app_pages/admin.py")


def test_sign_out_everywhere_ends_every_session_of_that_person(accounts_app):
    token = accounts_app("bob")
    app = run_app()
    next(b for b in app.sidebar.button if b.label == "Everywhere").click()
    run_app(app)
    assert get_team().accounts.check_session(token) is None


def test_names_with_markup_are_shown_literally(accounts_app):
    accounts = get_team().accounts
    shown = "**Eve** [site](http://evil.example) <b>x</b> $1$"
    accounts.add_person(OPERATOR, "eve", PASSWORD, display_name=shown)
    accounts_app("eve")
    line = sidebar_text(run_app())
    assert "\\*\\*Eve\\*\\* \\[site\\]\\(http\\:\\/\\/evil\\.example\\)" in line
    assert "\\<b\\>x\\<\\/b\\> \\$1\\$" in line


# -- company single sign-on (OIDC), with AppTest's st.user ----------------------------------


def test_single_sign_on_offers_its_button_to_someone_not_signed_in(team_app_env):
    team_app_env(auth_mode="oidc")
    app = AppTest.from_file(APP, default_timeout=60)
    app.user = {"is_logged_in": False}
    run_app(app)
    assert [b.label for b in app.button] == ["Sign in with your company account"]
    assert not opens(app, "app_pages/queue.py")


def test_the_first_single_sign_on_makes_the_person_and_admin_emails_make_admins(team_app_env):
    team_app_env(auth_mode="oidc", admin_emails="carol@example.com")
    carol = AppTest.from_file(APP, default_timeout=60)
    carol.user = {"is_logged_in": True, "email": "Carol@Example.com", "name": "Carol C", "sub": "1"}
    run_app(carol)
    assert "Signed in as **Carol C** (admin)" in sidebar_text(carol)
    dan = AppTest.from_file(APP, default_timeout=60)
    dan.user = {"is_logged_in": True, "email": "dan@example.com", "name": "Dan", "sub": "2"}
    run_app(dan)
    assert "Signed in as **Dan**" in sidebar_text(dan) and "(admin)" not in sidebar_text(dan)
    run_app(dan)  # mapped once per browser session: one sign-in, not one per click
    people = {a.login: a.role for a in get_team().accounts.people(OPERATOR)}
    assert people == {"carol@example.com": "admin", "dan@example.com": "member"}
    signed_in = get_team().audit.query(OPERATOR, AuditFilter(actor="dan@example.com")).items
    assert [e.kind for e in signed_in].count("sign_in") == 1


def test_an_unverified_sign_on_email_never_makes_an_admin(team_app_env):
    team_app_env(auth_mode="oidc", admin_emails="boss@example.com")
    app = AppTest.from_file(APP, default_timeout=60)
    app.user = {
        "is_logged_in": True,
        "email": "boss@example.com",
        "email_verified": False,
        "sub": "x9",
    }
    run_app(app)
    assert "(admin)" not in sidebar_text(app)
    assert {a.login for a in get_team().accounts.people(OPERATOR)} == {"x9"}


def test_a_disabled_sign_on_person_is_refused_with_a_clear_message(team_app_env):
    team_app_env(auth_mode="oidc")
    claims = {"is_logged_in": True, "email": "erin@example.com", "name": "Erin", "sub": "3"}
    first = AppTest.from_file(APP, default_timeout=60)
    first.user = dict(claims)
    run_app(first)
    get_team().accounts.set_disabled(OPERATOR, "erin@example.com", True)
    again = AppTest.from_file(APP, default_timeout=60)
    again.user = dict(claims)
    run_app(again)
    assert "disabled" in again.warning[0].value
    assert not opens(again, "app_pages/queue.py")


# -- a trusted reverse proxy ---------------------------------------------------------------


def test_the_proxy_header_from_a_trusted_address_signs_the_person_in(team_app_env, browser_sends):
    team_app_env(auth_mode="proxy", trusted_proxies="10.0.0.0/8")
    browser_sends["headers"] = [("X-Forwarded-User", "Frank"), (PEER_HEADER, "10.0.0.5")]
    app = run_app()
    assert "Signed in as **frank**" in sidebar_text(app)
    assert not [b for b in app.sidebar.button if b.label == "Sign out"]  # the proxy's job


def test_a_forged_proxy_header_from_an_unlisted_address_is_refused_and_recorded(
    team_app_env, browser_sends
):
    team_app_env(auth_mode="proxy", trusted_proxies="10.0.0.0/8")
    browser_sends["headers"] = [("X-Forwarded-User", "admin"), (PEER_HEADER, "203.0.113.9")]
    app = run_app()
    assert "accepted only from the company's sign-in proxy" in app.warning[0].value
    assert not opens(app, "app_pages/queue.py")
    assert [e.actor for e in refusals("sign_in")] == ["address 203.0.113.9"]


def test_a_proxy_header_sent_twice_is_refused(team_app_env, browser_sends):
    team_app_env(auth_mode="proxy", trusted_proxies="10.0.0.0/8")
    browser_sends["headers"] = [
        ("X-Forwarded-User", "grace"),
        ("X-Forwarded-User", "admin"),
        (PEER_HEADER, "10.0.0.5"),
    ]
    app = run_app()
    assert "not one name" in app.warning[0].value
