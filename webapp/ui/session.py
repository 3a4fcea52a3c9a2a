"""Typed access to this browser session's state."""

from __future__ import annotations

import streamlit as st

from webapp.ui.resources import get_settings
from webapp.users import User, local_user

USER_KEY = "atelier_user"


def current_user() -> User:
    """Who is asking. Single-user mode until accounts exist: the local user."""
    if USER_KEY not in st.session_state:
        st.session_state[USER_KEY] = local_user(get_settings())
    return st.session_state[USER_KEY]


FLASH_KEY = "atelier_flash"


def flash(kind: str, message: str) -> None:
    """A message to show on the next run (actions run in callbacks, before the page)."""
    st.session_state[FLASH_KEY] = (kind, message)


def pop_flash() -> tuple[str, str] | None:
    return st.session_state.pop(FLASH_KEY, None)
