"""Signing in over HTTP, on the app's own server: the session cookie, the sign-in form that
sets it, the gate that sends a browser without one to that form, and the address of the
connection handed to the script.

A Streamlit script cannot set an HttpOnly cookie, so the form is a small page of its own
(`/auth/sign-in`, no script in it) that posts the name and password to itself: the password
travels only in a POST body, never in a URL or a log line. A good one sets a signed,
expiring, HttpOnly, SameSite=Lax cookie and redirects back to the page that was asked for;
the script reads the cookie on every run (`st.context.cookies`) and asks the accounts service
who it belongs to. Plain Starlette and ASGI: no Streamlit here (`serve.py` installs it).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from string import Template
from urllib.parse import parse_qs, quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from webapp.auth import is_trusted_proxy
from webapp.errors import AtelierError, SignInFailed
from webapp.settings import Settings

SESSION_COOKIE = "atelier_session"
CSRF_COOKIE = "atelier_csrf"
# The address of the connection, as the server saw it: set by the gate on every request
# (any copy the browser sent is dropped first), read by the script in proxy mode.
PEER_HEADER = "x-atelier-peer"
SIGN_IN = "/auth/sign-in"
SIGN_OUT = "/auth/logout"  # where st.logout() sends the browser
# Paths that are never a page: Streamlit's own, the sign-in routes, static files, the API
# (whose callers bring a key, not a cookie) and the health check (for monitors).
NOT_PAGES = ("_stcore", "static", "media", "component", "auth", "oauth2callback", "app", "v1",
             "sdapi", "healthz")  # fmt: skip
MAX_FORM_BYTES = 16 * 1024
MAX_NEXT_CHARS = 2048
WRONG_FORM = "This sign-in form did not come from Atelier. Open Atelier and sign in again."


@dataclass(frozen=True)
class SignInConfig:
    """What the routes and the gate need, given lazily (settings are read on first use)."""

    settings: Callable[[], Settings]
    team: Callable[[], object]  # TeamServices: .accounts and .audit
    base_url: str = ""  # Streamlit's server.baseUrlPath

    def path(self, path: str) -> str:
        base = "/" + self.base_url.strip("/") if self.base_url.strip("/") else ""
        return base + path

    @property
    def cookie_path(self) -> str:
        return self.path("") or "/"

    def active(self) -> bool:
        try:
            return self.settings().auth_mode == "accounts"
        except AtelierError:  # bad settings: the app itself says so
            return False


# -- where a sign-in may send the browser back to ------------------------------------------


def safe_next(raw: str | None, home: str = "/") -> str:
    """A path on this server to go back to after signing in; anything else (another site,
    `//host`, a backslash trick, control characters, the sign-in routes) becomes `home`."""
    text = raw or ""
    if (
        not text.startswith("/")
        or text.startswith(("//", "/\\"))
        or "\\" in text
        or len(text) > MAX_NEXT_CHARS
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in text)
        or "/auth/" in urlsplit(text).path
    ):
        return home
    return text


def same_origin(headers: dict[str, str]) -> bool:
    """Whether a form post comes from a page of this server: its Origin (or, without one,
    its Referer) names the host the request was sent to."""
    host = headers.get("host", "").lower()
    source = headers.get("origin") or headers.get("referer") or ""
    if not host or not source or source == "null":
        return False
    return urlsplit(source).netloc.lower() == host


# -- the gate: peer address, navigations without a session, sign-out -----------------------


class SignInGate:
    """ASGI middleware. Always: the connection's address in `PEER_HEADER`. In accounts mode:
    a page opened without a good session cookie goes to the sign-in form (and back after),
    and the sign-out route clears the cookie."""

    def __init__(self, app: ASGIApp, config: SignInConfig):
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("", 0)
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != PEER_HEADER.encode()]
        scope = {**scope, "headers": [*headers, (PEER_HEADER.encode(), client[0].encode())]}
        if scope["type"] == "http" and self.config.active():
            response = await self._accounts_mode(scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _accounts_mode(self, scope: Scope) -> Response | None:
        try:
            return await self._gate(scope)
        except AtelierError:  # settings or a database that cannot be opened: the app says so
            return None

    async def _gate(self, scope: Scope) -> Response | None:
        request = Request(scope)
        path = scope["path"]
        if path == self.config.path(SIGN_OUT) and request.method == "GET":
            response = RedirectResponse(self.config.path(SIGN_IN), status_code=302)
            clear_session_cookie(response, self.config)
            return response
        if not _is_page_navigation(request, self.config):
            return None
        token = request.cookies.get(SESSION_COOKIE, "")
        accounts = self.config.team().accounts
        if token and await run_in_threadpool(accounts.check_session, token) is not None:
            return None
        query = scope["query_string"].decode("latin-1")
        wanted = safe_next(path + (f"?{query}" if query else ""), self.config.path("/"))
        target = f"{self.config.path(SIGN_IN)}?next={quote(wanted)}"
        response = RedirectResponse(target, status_code=302)
        if token:  # refused (and recorded) once: the browser forgets it
            clear_session_cookie(response, self.config)
        return response


def _is_page_navigation(request: Request, config: SignInConfig) -> bool:
    if request.method not in ("GET", "HEAD"):
        return False
    inside = request.url.path[len(config.path("")) :].lstrip("/")
    first = inside.split("/", 1)[0]
    if first in NOT_PAGES or "." in inside.rsplit("/", 1)[-1]:
        return False
    destination = request.headers.get("sec-fetch-dest")
    if destination is not None:
        return destination == "document"
    return "text/html" in request.headers.get("accept", "")


# -- the cookies -----------------------------------------------------------------------------


def _secure(request: Request, settings: Settings) -> bool:
    """Whether the browser reached Atelier over HTTPS: directly, or through one of the
    trusted proxies that says so (X-Forwarded-Proto); then the cookie is Secure."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client else None
    forwarded = request.headers.get("x-forwarded-proto", "").lower() == "https"
    return forwarded and is_trusted_proxy(peer, settings)


def set_session_cookie(
    response: Response, token: str, config: SignInConfig, request: Request
) -> None:
    settings = config.settings()
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_hours * 3600,
        path=config.cookie_path,
        httponly=True,
        samesite="lax",
        secure=_secure(request, settings),
    )


def clear_session_cookie(response: Response, config: SignInConfig) -> None:
    response.delete_cookie(SESSION_COOKIE, path=config.cookie_path, httponly=True, samesite="lax")


# -- the form ------------------------------------------------------------------------------


PAGE = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Atelier</title>
<style>
body{margin:0;font-family:sans-serif;background:#fbfaf8;color:#2b2b2b}
main{max-width:22rem;margin:12vh auto;padding:2rem;background:#fff;border:1px solid #e4e1da;
border-radius:.75rem}
h1{font-size:1.5rem;margin:0 0 .25rem}p{margin:.25rem 0 1rem;color:#555}
label{display:block;margin:.75rem 0 .25rem;font-weight:600}
input{box-sizing:border-box;width:100%;padding:.55rem;border:1px solid #bbb;border-radius:.4rem;
font-size:1rem}
button{margin-top:1.25rem;width:100%;padding:.6rem;border:0;border-radius:.4rem;
background:#3d6b8c;color:#fff;font-size:1rem;cursor:pointer}
.error{background:#fdecea;color:#8a1c12;padding:.6rem;border-radius:.4rem;margin:0 0 1rem}
</style></head>
<body><main>
<h1>🎨 Atelier</h1><p>Sign in with the name and password your Atelier admin gave you.</p>
$message
<form method="post" action="$action">
<input type="hidden" name="csrf" value="$csrf"><input type="hidden" name="next" value="$next">
<label for="login">Name</label>
<input id="login" name="login" autocomplete="username" required value="$login" autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form></main></body></html>
""")


def _form(
    config: SignInConfig,
    next_path: str,
    csrf: str,
    message: str = "",
    login: str = "",
    status: int = 200,
) -> HTMLResponse:
    """The sign-in page; every value in it is escaped (a name is shown as typed, as text)."""
    shown = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    body = PAGE.substitute(
        message=shown,
        action=escape(config.path(SIGN_IN)),
        csrf=escape(csrf),
        next=escape(next_path),
        login=escape(login[:255]),
    )
    response = HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
    response.set_cookie(
        CSRF_COOKIE,
        csrf,
        max_age=3600,
        path=config.path("/auth"),
        httponly=True,
        samesite="strict",
    )
    return response


async def _read_form(request: Request) -> dict[str, str] | None:
    """The posted fields (first value of each), or None if it is not a small form post."""
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        return None
    return {key: values[0] for key, values in fields.items()}


def sign_in_routes(config: SignInConfig) -> list[Route]:
    """`GET /auth/sign-in`: the form; `POST`: check the name and password, set the cookie."""

    async def sign_in(request: Request) -> Response:
        if not config.active():
            return RedirectResponse(config.path("/"), status_code=302)
        home = config.path("/")
        team = config.team()
        if request.method == "GET":
            next_path = safe_next(request.query_params.get("next"), home)
            token = request.cookies.get(SESSION_COOKIE, "")
            if token and await run_in_threadpool(team.accounts.check_session, token):
                return RedirectResponse(next_path, status_code=302)
            return _form(config, next_path, request.cookies.get(CSRF_COOKIE) or _new_csrf())

        fields = await _read_form(request) or {}
        next_path = safe_next(fields.get("next"), home)
        expected = request.cookies.get(CSRF_COOKIE, "")
        posted = fields.get("csrf", "")
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not (same_origin(headers) and expected and hmac.compare_digest(expected, posted)):
            peer = request.client.host if request.client else "unknown"
            await run_in_threadpool(
                team.audit.record,
                f"address {peer}",
                "sign_in",
                "refused",
                detail="a sign-in form posted from another site, or without its token",
            )
            return _form(config, next_path, _new_csrf(), WRONG_FORM, status=403)
        login = fields.get("login", "")
        try:
            user = await run_in_threadpool(team.accounts.sign_in, login, fields.get("password", ""))
            token = await run_in_threadpool(team.accounts.issue_session, user)
        except SignInFailed as refused:
            return _form(config, next_path, _new_csrf(), refused.message, login, status=401)
        response = RedirectResponse(next_path, status_code=303)
        set_session_cookie(response, token, config, request)
        return response

    return [Route(config.path(SIGN_IN), sign_in, methods=["GET", "POST"])]


def _new_csrf() -> str:
    return secrets.token_urlsafe(32)
