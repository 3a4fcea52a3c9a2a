"""The frame's widgets: the sign-in prompt, the sign-in line in the sidebar, signing out,
and what a member sees at an admin page's address."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import streamlit as st

from webapp.errors import Forbidden
from webapp.safe_markdown import literal_markdown
from webapp.ui.resources import get_team
from webapp.ui.session import SignInState, current_user, forget_sign_in
from webapp.users import User

NO_SIGN_ON = (
    "Single sign-on is not set up on this server yet. An admin adds the company's sign-on "
    "to `.streamlit/secrets.toml` (see the README, “Sign-in modes”)."
)


def sign_in_prompt(state: SignInState) -> None:
    """What someone who is not signed in sees, whatever address they opened."""
    st.title("Atelier")
    if state.message:
        st.warning(state.message, icon=":material/lock:")
    if state.mode == "accounts":
        st.write("Sign in with the name and password your Atelier admin gave you.")
        # st.logout() sends the browser to /auth/logout: the server clears the old cookie
        # there and shows the sign-in form (webapp/http_auth.py).
        if st.button("Sign in", type="primary", icon=":material/login:"):
            forget_sign_in()
            st.logout()
    elif state.mode == "oidc":
        st.write("Sign in with your company account.")
        for provider, label in sign_on_providers().items():
            if st.button(label, type="primary", icon=":material/login:", key=f"login-{provider}"):
                try:
                    st.login(provider or None)
                except Exception:  # Streamlit's own error names the missing secrets
                    st.error(NO_SIGN_ON, icon=":material/settings:")


def sign_on_providers() -> dict[str, str]:
    """The providers named in `[auth.<name>]` sections of the secrets, or the one `[auth]`."""
    try:
        section = st.secrets.get("auth", {})
    except Exception:  # no secrets file at all
        section = {}
    named = [name for name, value in section.items() if isinstance(value, Mapping)]
    if not named:
        return {"": "Sign in with your company account"}
    return {name: f"Sign in with {name.replace('_', ' ').title()}" for name in named}


def sign_in_line(state: SignInState) -> None:
    """The sidebar's quiet line saying who is signed in (or that sign-in is off)."""
    user = state.user
    assert user is not None
    role = " (admin)" if user.is_admin else ""
    if state.mode == "none":
        st.caption(
            "Sign-in is off: everyone who opens Atelier here is "
            f"{literal_markdown(user.display_name)}{role}."
        )
        return
    st.caption(f"Signed in as **{literal_markdown(user.display_name)}**{role}")
    if state.mode == "proxy":
        return  # the company's sign-in proxy signs people out
    left, right = st.columns(2)
    if left.button("Sign out", icon=":material/logout:", key="sign-out"):
        sign_out(user, everywhere=False)
    if right.button(
        "Everywhere",
        icon=":material/devices:",
        key="sign-out-everywhere",
        help="Sign out in every browser where you are signed in",
    ):
        sign_out(user, everywhere=True)


def sign_out(user: User, everywhere: bool) -> None:
    if everywhere:
        get_team().accounts.sign_out_everywhere(user)
    forget_sign_in()
    st.logout()


def admin_only(kind: str, title: str) -> Callable[[], None]:
    """A page for a member who opens an admin page's address: refused, recorded, said."""

    def refused() -> None:
        st.title(title)
        try:
            get_team().audit.require_admin(current_user(), kind, f"open the {title} page")
        except Forbidden as error:
            st.error(error.message, icon=":material/block:")

    refused.__name__ = f"refused_{kind.replace('.', '_')}"
    return refused
