"""The API keys page's parts: where the API is, a form that makes a key (shown once), and
the list of keys with a Revoke button each. Names are shown as text, never as markdown."""

from __future__ import annotations

from urllib.parse import urlsplit

import streamlit as st

from webapp.errors import AtelierError
from webapp.services.api_keys import ApiKeyInfo, ApiKeyService, NewApiKey
from webapp.ui.session import flash
from webapp.ui.widgets import show_error
from webapp.users import User


def server_address() -> str:
    """This server's address as the browser reached it (scheme, host and base path)."""
    url = st.context.url or "http://localhost:8501/"
    parts = urlsplit(url)
    base = parts.path.rsplit("/", 1)[0]  # drop the page's own name
    return f"{parts.scheme}://{parts.netloc}{base}"


def where_the_api_is(address: str) -> None:
    st.markdown("Point your tools at Atelier with a key of your own:")
    st.code(
        f"OpenAI clients (base URL):        {address}/v1\n"
        f"AUTOMATIC1111 clients (address):  {address}   (the key as the password)",
        language=None,
    )


def new_key_form(keys: ApiKeyService, user: User) -> NewApiKey | None:
    """The form to make a key; the key made in this run, if any."""
    with st.form("new-api-key", clear_on_submit=True):
        name = st.text_input(
            "Name", max_chars=60, placeholder="e.g. Open WebUI, Krita, my notebook",
            help="Name it after the tool that will use it, to know which key to revoke.",
        )  # fmt: skip
        if not st.form_submit_button("Make a key", icon=":material/key:"):
            return None
    try:
        return keys.create(user, name)
    except AtelierError as error:
        show_error(error, {"name": "Name"})
        return None


def show_new_key(made: NewApiKey) -> None:
    st.success(
        f"Your new key “{made.info.name}”. Copy it now: Atelier keeps only a fingerprint "
        "of it and cannot show it again.",
        icon=":material/key:",
    )
    st.code(made.key, language=None)


def keys_table(keys: ApiKeyService, user: User, listed: list[ApiKeyInfo], owners: bool) -> None:
    """Each key: its name (and owner, in everyone's list), first characters, when it was
    made, and Revoke while active."""
    if not listed:
        st.info("No keys yet.")
        return
    for info in listed:
        row = st.container(border=True)
        left, middle, right = row.columns([3, 3, 1], vertical_alignment="center")
        left.text(info.name + (f" · {info.owner_id}" if owners else ""))
        state = "active" if info.active else f"revoked {info.revoked:%Y-%m-%d %H:%M}"
        middle.text(f"{info.prefix}…  ·  made {info.created:%Y-%m-%d %H:%M}  ·  {state}")
        scope = "all" if owners else "mine"  # an admin's own keys are in both lists
        if info.active and right.button("Revoke", key=f"revoke-{scope}-{info.id}"):
            _revoke(keys, user, info)


def _revoke(keys: ApiKeyService, user: User, info: ApiKeyInfo) -> None:
    try:
        keys.revoke(user, info.id)
    except AtelierError as error:
        flash("error", error.message)
    else:
        flash("success", f"Key “{info.name}” ({info.prefix}…) is revoked: it stops working now.")
    st.rerun()
