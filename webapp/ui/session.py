"""Who is asking, checked on every run, whatever the sign-in mode; and typed access to this
browser session's state.

The frame (app.py) calls `check_sign_in()` once per run; pages call `current_user()`. The
check costs one HMAC and one row read by key (`accounts.check_session`), so a person who
is disabled, demoted or signed out everywhere is seen at their next click:

- none: the single local user (today's single-user mode);
- accounts: the HttpOnly session cookie that `/auth/sign-in` set (webapp/http_auth.py);
- oidc: `st.user` from the company's sign-on, mapped once per browser session to a person
  (made at their first sign-in), then checked like a cookie through a session token kept
  in this session's state;
- proxy: the trusted reverse proxy's header, believed only from the addresses in
  `trusted_proxies` (the server writes the connection's address in a header of its own),
  then checked the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import streamlit as st

from webapp.auth import identity_from_claims
from webapp.errors import Forbidden, SignInFailed
from webapp.http_auth import PEER_HEADER, SESSION_COOKIE
from webapp.ui.resources import get_settings, get_team
from webapp.users import User, local_user

USER_KEY = "atelier_user"
TOKEN_KEY = "atelier_session_token"  # oidc and proxy: (who, token) issued at sign-on
REFUSED_KEY = "atelier_refused"  # a cookie or identity already refused in this session
REFUSED_WHY_KEY = "atelier_refused_why"  # and what it was told
ENDED = "Your sign-in has ended. Sign in again to go on."
NO_PROXY_NAME = (
    "Atelier is opened through the company's sign-in proxy, and this request did not name "
    "anyone. Open Atelier through its usual address."
)


@dataclass(frozen=True)
class SignInState:
    mode: str
    user: User | None
    message: str | None = None  # why nobody is signed in, when there is a reason to say


# -- what the browser sent (tests replace these: AppTest has no cookies or headers) ---------


def request_cookies() -> Mapping[str, str]:
    return st.context.cookies


def request_headers() -> Mapping[str, str]:
    return st.context.headers


def user_claims() -> dict[str, object]:
    return dict(st.user.to_dict())


# -- the check --------------------------------------------------------------------------------


def check_sign_in() -> SignInState:
    """Who this run is for; stored for `current_user()`. Call once per run (the frame)."""
    settings = get_settings()
    mode = settings.auth_mode
    if mode == "none":
        state = SignInState(mode, local_user(settings))
    elif mode == "accounts":
        state = _from_cookie()
    elif mode == "oidc":
        state = _from_sign_on()
    else:
        state = _from_proxy()
    if state.user is None:
        st.session_state.pop(USER_KEY, None)
    else:
        st.session_state[USER_KEY] = state.user
    return state


def current_user() -> User:
    """The person this run is for, as the frame checked them. A page opened without the
    frame (or by nobody) checks now, and stops if nobody is signed in."""
    user = st.session_state.get(USER_KEY)
    if user is None:
        user = check_sign_in().user
        if user is None:
            st.stop()
    return user


def forget_sign_in() -> None:
    """Before signing out: this session no longer remembers anyone."""
    for key in (USER_KEY, TOKEN_KEY, REFUSED_KEY, REFUSED_WHY_KEY):
        st.session_state.pop(key, None)


def _from_cookie() -> SignInState:
    token = request_cookies().get(SESSION_COOKIE, "")
    if not token:
        return SignInState("accounts", None)
    if st.session_state.get(REFUSED_KEY) == token:  # refused (and recorded) once already
        return SignInState("accounts", None, ENDED)
    user = get_team().accounts.check_session(token)
    if user is None:
        st.session_state[REFUSED_KEY] = token
        return SignInState("accounts", None, ENDED)
    return SignInState("accounts", user)


def _checked_token(who: object) -> User | None:
    """The person of the session token this browser session was given at sign-on, if it is
    still good and was given to the same identity."""
    kept = st.session_state.get(TOKEN_KEY)
    if kept is None or kept[0] != who:
        return None
    return get_team().accounts.check_session(kept[1])


def _remember(who: object, user: User) -> None:
    st.session_state[TOKEN_KEY] = (who, get_team().accounts.issue_session(user))


def _from_sign_on() -> SignInState:
    claims = user_claims()
    if claims.get("is_logged_in") is not True:
        return SignInState("oidc", None)
    identity = identity_from_claims(claims)
    if identity is None:
        return SignInState("oidc", None, "The company's sign-on sent no usable name or e-mail.")
    user = _checked_token(identity.login)
    if user is not None:
        return SignInState("oidc", user)
    if st.session_state.get(REFUSED_KEY) == identity.login:
        return SignInState("oidc", None, st.session_state.get(REFUSED_WHY_KEY))
    try:
        user = get_team().accounts.user_for_identity(
            identity.login, identity.display_name, identity.email
        )
    except SignInFailed as refused:
        _refuse(identity.login, refused.message)
        return SignInState("oidc", None, refused.message)
    _remember(identity.login, user)
    return SignInState("oidc", user)


class _HeaderPairs(list):
    """Every header as sent, repeated ones included (a Mapping keeps only one of each): a
    proxy header sent twice is refused rather than half-believed."""

    def items(self):
        return iter(self)


def _from_proxy() -> SignInState:
    headers = request_headers()
    peer = headers.get(PEER_HEADER)
    pairs = _HeaderPairs(
        (name, value)
        for name in headers
        if name.lower() != PEER_HEADER
        for value in headers.get_all(name)  # type: ignore[attr-defined]
    )
    who = (peer, tuple(sorted(pairs)))
    user = _checked_token(who)
    if user is not None:
        return SignInState("proxy", user)
    if st.session_state.get(REFUSED_KEY) == who:
        return SignInState("proxy", None, st.session_state.get(REFUSED_WHY_KEY))
    try:
        user = get_team().accounts.sign_in_proxy(pairs, peer)
    except (Forbidden, SignInFailed) as refused:
        _refuse(who, refused.message)
        return SignInState("proxy", None, refused.message)
    if user is None:
        return SignInState("proxy", None, NO_PROXY_NAME)
    _remember(who, user)
    return SignInState("proxy", user)


def _refuse(who: object, message: str) -> None:
    st.session_state[REFUSED_KEY] = who
    st.session_state[REFUSED_WHY_KEY] = message


# -- messages for the next run ------------------------------------------------------------------

FLASH_KEY = "atelier_flash"


def flash(kind: str, message: str) -> None:
    """A message to show on the next run (actions run in callbacks, before the page)."""
    st.session_state[FLASH_KEY] = (kind, message)


def pop_flash() -> tuple[str, str] | None:
    return st.session_state.pop(FLASH_KEY, None)
