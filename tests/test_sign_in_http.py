"""Signing in over HTTP: the form, the cookie it sets, the gate in front of the pages, and
the attacks on them, called as the ASGI server would call them."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute

from tests.conftest import CHEAP_HASHER
from webapp.http_auth import (
    CSRF_COOKIE,
    PEER_HEADER,
    SESSION_COOKIE,
    SignInConfig,
    SignInGate,
    safe_next,
    sign_in_routes,
)
from webapp.services.accounts import WRONG
from webapp.services.audit import AuditFilter
from webapp.services.team import build_team_services
from webapp.settings import Settings

HOST = "atelier.example"
PASSWORD = "correct horse battery"


class Response:
    def __init__(self, messages):
        start = messages[0]
        self.status = start["status"]
        self.headers = [(k.decode().lower(), v.decode()) for k, v in start["headers"]]
        self.body = b"".join(m.get("body", b"") for m in messages[1:]).decode()

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def cookies(self) -> dict[str, str]:
        """name -> the whole Set-Cookie line."""
        lines = [v for k, v in self.headers if k == "set-cookie"]
        return {line.split("=", 1)[0]: line for line in lines}


def call(app, method: str, path: str, headers=(), body: bytes = b"", client="10.1.2.3"):
    path, _, query = path.partition("?")
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", HOST.encode())]
        + [(k.lower().encode(), v.encode()) for k, v in headers],
        "client": (client, 50000),
        "server": (HOST, 80),
    }
    # On a thread of its own: Playwright's sync API may hold this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    return Response(sent)


@pytest.fixture
def team(tmp_path, clock):
    settings = Settings(data_dir=tmp_path / "data", auth_mode="accounts", lockout_attempts=3)
    built = build_team_services(settings, hasher=CHEAP_HASHER, clock=clock)
    yield built
    built.close()


@pytest.fixture
def people(team, operator):
    team.accounts.add_person(operator, "ada", PASSWORD, display_name="Ada", role="admin")
    team.accounts.add_person(operator, "bob", PASSWORD, display_name="Bob")


def app_for(team, mode: str = "accounts", seen=None, **values) -> Starlette:
    settings = Settings(data_dir=team.store.data_dir, auth_mode=mode, session_hours=12, **values)
    config = SignInConfig(settings=lambda: settings, team=lambda: team)

    async def page(request):
        if seen is not None:
            seen.append(dict(request.headers))
        return PlainTextResponse("the page")

    routes = [*sign_in_routes(config), Route("/{path:path}", page)]
    return Starlette(routes=routes, middleware=[Middleware(SignInGate, config=config)])


NAVIGATION = [("accept", "text/html"), ("sec-fetch-dest", "document")]


def form_page(app) -> tuple[str, str]:
    """Open the form; the CSRF cookie it sets and the same value in the form."""
    shown = call(app, "GET", "/auth/sign-in?next=/queue", NAVIGATION)
    assert shown.status == 200
    line = shown.cookies()[CSRF_COOKIE]
    token = line.split(";")[0].split("=", 1)[1]
    assert f'name="csrf" value="{token}"' in shown.body
    return token, line


def post_form(
    app,
    fields: dict,
    csrf_cookie: str | None,
    origin: str | None = f"http://{HOST}",
    headers=(),
    client="10.1.2.3",
):
    headers = [("content-type", "application/x-www-form-urlencoded"), *headers]
    if origin is not None:
        headers.append(("origin", origin))
    if csrf_cookie is not None:
        headers.append(("cookie", f"{CSRF_COOKIE}={csrf_cookie}"))
    return call(app, "POST", "/auth/sign-in", headers, urlencode(fields).encode(), client)


def sign_in(app, login="bob", password=PASSWORD, next_path="/queue"):
    csrf, _ = form_page(app)
    fields = {"login": login, "password": password, "csrf": csrf, "next": next_path}
    return post_form(app, fields, csrf)


def refusals(team, operator, kind="sign_in"):
    return team.audit.query(operator, AuditFilter(kind=kind, outcome="refused")).items


def test_the_form_is_its_own_page_with_a_strict_csrf_cookie(team, people):
    _, line = form_page(app_for(team))
    assert "HttpOnly" in line and "SameSite=strict" in line and "Path=/auth" in line


def test_a_right_password_sets_an_httponly_lax_expiring_cookie_and_goes_back(team, people):
    answer = sign_in(app_for(team))
    assert answer.status == 303 and answer.header("location") == "/queue"
    cookie = answer.cookies()[SESSION_COOKIE]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert f"Max-Age={12 * 3600}" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert team.accounts.check_session(token).id == "bob"


@pytest.mark.parametrize(("client", "secure"), [("10.0.0.5", True), ("203.0.113.9", False)])
def test_the_cookie_is_secure_when_a_trusted_proxy_says_the_browser_used_https(
    team, people, client, secure
):
    app = app_for(team, trusted_proxies=("10.0.0.0/8",))
    csrf, _ = form_page(app)
    fields = {"login": "bob", "password": PASSWORD, "csrf": csrf, "next": "/"}
    https = [("x-forwarded-proto", "https")]
    answer = post_form(app, fields, csrf, headers=https, client=client)
    assert ("Secure" in answer.cookies()[SESSION_COOKIE]) is secure


def test_the_signed_in_cookie_opens_pages_through_the_gate(team, people):
    app = app_for(team)
    token = sign_in(app).cookies()[SESSION_COOKIE].split(";")[0].split("=", 1)[1]
    opened = call(app, "GET", "/queue", [*NAVIGATION, ("cookie", f"{SESSION_COOKIE}={token}")])
    assert opened.status == 200 and opened.body == "the page"


def test_wrong_password_and_unknown_name_get_the_same_answer_and_no_cookie(
    team, people, operator, caplog
):
    caplog.set_level(logging.DEBUG)
    app = app_for(team)
    wrong = sign_in(app, "bob", "not the password")
    unknown = sign_in(app, "nobody", "not the password")
    for answer in (wrong, unknown):
        assert answer.status == 401
        assert WRONG in answer.body
        assert SESSION_COOKIE not in answer.cookies()
    assert "not the password" not in caplog.text  # never in a log line
    assert {e.actor for e in team.audit.query(operator, AuditFilter(kind="sign_in")).items} >= {
        "bob",
        "nobody",
    }


def test_repeated_wrong_passwords_lock_the_account_with_its_own_message(team, people):
    app = app_for(team)
    for _ in range(2):
        assert WRONG in sign_in(app, "bob", "wrong one here").body
    locked = sign_in(app, "bob", "wrong one here")
    assert "locked for 15 more minutes" in locked.body
    still = sign_in(app, "bob", PASSWORD)  # even the right password, until it is lifted
    assert still.status == 401 and "locked" in still.body


def test_a_name_typed_with_markup_is_shown_back_as_text(team, people):
    answer = sign_in(app_for(team), '<script>alert("x")</script>', "whatever it is")
    assert "<script>alert" not in answer.body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in answer.body


@pytest.mark.parametrize(
    ("origin", "with_token"),
    [
        ("http://evil.example", True),  # another site posts the form
        (None, True),  # no Origin and no Referer
        (f"http://{HOST}", False),  # the form's token missing
    ],
)
def test_a_forged_sign_in_post_is_refused_and_recorded(team, people, operator, origin, with_token):
    app = app_for(team)
    csrf, _ = form_page(app)
    fields = {"login": "bob", "password": PASSWORD, "csrf": csrf if with_token else ""}
    answer = post_form(app, fields, csrf, origin=origin)
    assert answer.status == 403
    assert "did not come from Atelier" in answer.body
    assert SESSION_COOKIE not in answer.cookies()
    assert any("another site" in (e.detail or "") for e in refusals(team, operator))


def test_a_token_that_does_not_match_its_cookie_is_refused(team, people):
    app = app_for(team)
    csrf, _ = form_page(app)
    fields = {"login": "bob", "password": PASSWORD, "csrf": csrf}
    assert post_form(app, fields, "someone-elses-token").status == 403


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/", "//evil.example/x", "/\\evil.example", "/ok\r\nSet-Cookie: x=1", ""],
)
def test_sign_in_never_sends_the_browser_to_another_site(target):
    assert safe_next(target) == "/"


def test_a_page_opened_without_a_session_goes_to_the_form_and_remembers_where(team, people):
    answer = call(app_for(team), "GET", "/text_tools?tool=summarise", NAVIGATION)
    assert answer.status == 302
    assert answer.header("location") == "/auth/sign-in?next=/text_tools%3Ftool%3Dsummarise"


@pytest.mark.parametrize(
    "path", ["/_stcore/health", "/static/js/main.js", "/media/abc.png", "/favicon.png"]
)
def test_streamlits_own_files_pass_the_gate(team, path):
    assert call(app_for(team), "GET", path, NAVIGATION).status == 200


def test_a_tampered_cookie_is_refused_recorded_and_forgotten(team, people, operator):
    app = app_for(team)
    token = sign_in(app).cookies()[SESSION_COOKIE].split(";")[0].split("=", 1)[1]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    answer = call(app, "GET", "/queue", [*NAVIGATION, ("cookie", f"{SESSION_COOKIE}={forged}")])
    assert answer.status == 302 and answer.header("location").startswith("/auth/sign-in")
    assert "Max-Age=0" in answer.cookies()[SESSION_COOKIE]
    assert any(e.actor == "unknown" for e in refusals(team, operator, kind="session"))


def test_an_expired_cookie_is_refused_and_recorded(team, people, operator, clock):
    app = app_for(team)
    token = sign_in(app).cookies()[SESSION_COOKIE].split(";")[0].split("=", 1)[1]
    cookie = [*NAVIGATION, ("cookie", f"{SESSION_COOKIE}={token}")]
    clock.advance(hours=11)
    assert call(app, "GET", "/queue", cookie).status == 200
    clock.advance(hours=2)  # past the 12 hours a sign-in lasts
    assert call(app, "GET", "/queue", cookie).status == 302
    assert any(e.actor == "bob" for e in refusals(team, operator, kind="session"))


def test_sign_out_clears_the_cookie_and_shows_the_form(team, people):
    answer = call(app_for(team), "GET", "/auth/logout", NAVIGATION)
    assert answer.status == 302 and answer.header("location") == "/auth/sign-in"
    assert SESSION_COOKIE in answer.cookies()


def test_the_server_writes_the_connections_own_address_and_drops_a_forged_one(team):
    seen = []
    app = app_for(team, mode="none", seen=seen)
    call(app, "GET", "/queue", [(PEER_HEADER, "10.0.0.5")], client="203.0.113.7")
    assert seen[0][PEER_HEADER] == "203.0.113.7"


def test_websocket_handshakes_carry_the_connections_address(team):
    seen = []

    async def socket(websocket):
        seen.append(websocket.headers.getlist(PEER_HEADER))
        await websocket.close()

    settings = Settings(data_dir=team.store.data_dir)
    config = SignInConfig(settings=lambda: settings, team=lambda: team)
    app = Starlette(
        routes=[WebSocketRoute("/_stcore/stream", socket)],
        middleware=[Middleware(SignInGate, config=config)],
    )
    messages = [{"type": "websocket.connect"}]

    async def receive():
        return messages.pop(0) if messages else {"type": "websocket.disconnect", "code": 1000}

    async def send(message):
        pass

    scope = {
        "type": "websocket",
        "path": "/_stcore/stream",
        "raw_path": b"/_stcore/stream",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", HOST.encode()), (PEER_HEADER.encode(), b"10.0.0.5")],
        "client": ("198.51.100.4", 40000),
        "server": (HOST, 80),
        "subprotocols": [],
    }
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    assert seen == [["198.51.100.4"]]


def test_without_accounts_mode_the_gate_lets_pages_through_and_the_form_is_closed(team):
    app = app_for(team, mode="none")
    assert call(app, "GET", "/queue", NAVIGATION).status == 200
    answer = call(app, "GET", "/auth/sign-in", NAVIGATION)
    assert answer.status == 302 and answer.header("location") == "/"


def test_under_a_base_url_the_form_the_cookie_and_the_way_back_follow_it():
    config = SignInConfig(settings=Settings, team=lambda: None, base_url="/atelier/")
    assert config.path("/auth/sign-in") == "/atelier/auth/sign-in"
    assert config.cookie_path == "/atelier"
    assert SignInConfig(settings=Settings, team=lambda: None).cookie_path == "/"
