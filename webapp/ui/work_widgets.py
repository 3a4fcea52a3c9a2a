"""Widgets of My work: the filters, a page of images or texts with their actions, paging,
and the hand-over of an image's recipe to Image Studio and of a chat to Text tools."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from webapp.errors import AtelierError
from webapp.image_store import StoredImage, thumbnail_at
from webapp.safe_markdown import literal_markdown
from webapp.services.history import ImageItem, TextItem, WorkQuery
from webapp.ui.image_widgets import use_settings
from webapp.ui.list_widgets import date_range, when
from webapp.ui.session import flash
from webapp.ui.text_widgets import model_text

PER_PAGE = 24
PAGE_KEY = "work-page"
CONFIRM_KEY = "work-confirm-delete"
IMAGE_STUDIO = "app_pages/image_studio.py"
TEXT_TOOLS = "app_pages/text_tools.py"


def first_page() -> None:
    st.session_state[PAGE_KEY] = 1


def work_filters(scope: str) -> WorkQuery:
    """Words, dates (the browser's days) and favourites; a change goes back to page 1."""
    words, since, until, favourites = st.columns([3, 2, 2, 1.4], vertical_alignment="bottom")
    text = words.text_input(
        "Search", key="work-words", placeholder="words in the prompt or text", on_change=first_page
    )
    start = since.date_input("From", value=None, key="work-since", on_change=first_page)
    end = until.date_input("To", value=None, key="work-until", on_change=first_page)
    only = favourites.toggle(
        "Favourites", key="work-favourites", on_change=first_page, disabled=scope == "shared"
    )
    since, until = date_range(start, end)
    return WorkQuery(
        scope=scope,
        words=text,
        since=since,
        until=until,
        favourites=only and scope == "mine",
        page=st.session_state.setdefault(PAGE_KEY, 1),
        per_page=PER_PAGE,
    )


def act(action: Callable[[], object], done: str) -> None:
    """Run one service call from a button; say what happened on the next run."""
    try:
        action()
    except AtelierError as error:
        flash("error", error.message)
    else:
        flash("success", done)


def image_card(item: ImageItem, actions: dict[str, Callable[[], None]], on_board: bool) -> bool:
    """One image: its thumbnail, prompt (as plain text), when, model, and its actions (each
    a callback). True when "Use these settings" was pressed (the page then opens Image
    Studio: a callback cannot change pages)."""
    with st.container(border=True):
        thumbnail = thumbnail_at(item.path)
        if thumbnail is None:
            st.caption("The picture file is missing.")
        else:
            st.image(thumbnail, output_format="JPEG")
        st.text(item.prompt[:120] + ("…" if len(item.prompt) > 120 else ""))
        owner = f" · {literal_markdown(item.owner_name)}" if on_board else ""
        st.caption(f"{when(item.created)} · {literal_markdown(item.model)}{owner}")
        reuse = st.button("Use these settings", key=f"reuse-image-{item.id}", width="stretch")
        for label, action in actions.items():
            st.button(label, key=f"{label}-image-{item.id}", on_click=action, width="stretch")
        with st.expander("Recipe"):
            request = item.recipe.get("request", {})
            shown = {k: v for k, v in request.items() if k not in ("prompt",)}
            st.json(shown, expanded=False)
    return reuse


def text_card(item: TextItem, actions: dict[str, Callable[[], None]], on_board: bool) -> bool:
    """One result or chat: its title (literally), tool, when, the messages on demand, and
    its actions. True when a chat's "Go on in Text tools" was pressed."""
    with st.container(border=True):
        icon = ":material/forum:" if item.kind == "chat" else ":material/article:"
        st.markdown(f"{icon} **{literal_markdown(item.title)}**")
        owner = f" · {literal_markdown(item.owner_name)}" if on_board else ""
        kind = "chat" if item.kind == "chat" else "result"
        st.caption(f"{literal_markdown(item.tool)} {kind} · {when(item.updated)}{owner}")
        with st.expander("Open"):
            for message in item.messages:
                if message["role"] == "system":
                    continue
                with st.chat_message(message["role"]):
                    # The person's words as plain text; the model's as safe markdown.
                    (st.text if message["role"] == "user" else model_text)(message["content"])
        columns = st.columns(len(actions) + 1)
        reopen = item.kind == "chat" and columns[0].button(
            "Go on in Text tools", key=f"reopen-text-{item.id}", icon=":material/forum:"
        )
        for column, (label, action) in zip(columns[1:], actions.items(), strict=True):
            column.button(label, key=f"{label}-text-{item.id}", on_click=action)
    return reopen


def use_image_settings(item: ImageItem) -> None:
    """Image Studio's form filled with this image's recipe (the same as its own button)."""
    use_settings(StoredImage(item.path, "", item.recipe, item.created.timestamp()))
    st.switch_page(IMAGE_STUDIO)


def reopen_chat(item: TextItem) -> None:
    """The chat back in Text tools, to go on with it: its address names the tool and the chat."""
    st.switch_page(TEXT_TOOLS, query_params={"tool": item.tool, "chat": str(item.id)})
