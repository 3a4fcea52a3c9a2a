"""The free chat: kept turn by turn in the person's work, so a reload, Stop or Back loses
nothing. The address holds the chat (`chat=…`) and its latest answer (`run=…`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from webapp.errors import AtelierError
from webapp.registry import ModelEntry
from webapp.text_tools import Tool
from webapp.ui.resources import get_services
from webapp.ui.scroll import scroll_into_view
from webapp.ui.session import current_user
from webapp.ui.text_widgets import honesty_notes, live_answer, model_text, parameters_widgets
from webapp.ui.widgets import seed_from_text, set_url, show_error, url_value

LABELS = {
    "message": "Message",
    "input": "Message",
    "system": "Instructions",
    "model": "Model",
    "voice": "Brand voice",
    "temperature": "Temperature (under Advanced)",
    "top_p": "Top-p (under Advanced)",
    "max_new_tokens": "Longest answer (under Advanced)",
    "repetition_penalty": "Repetition penalty (under Advanced)",
    "seed": "Seed (under Advanced)",
}
REFUSAL_KEY = "chat-refusal"


def chat_page(
    tool: Tool,
    model: str,
    voice: str | None,
    entries: dict[str, ModelEntry],
    settings_for: Callable[[str | None], dict[str, Any]],
) -> None:
    services, user, state = get_services(), current_user(), st.session_state
    with st.expander("Instructions for the assistant (system prompt)"):
        state.setdefault("chat-system", tool.system)
        system = st.text_area("Instructions", key="chat-system")
    parameters = parameters_widgets(tool, model, settings_for)

    def options() -> dict[str, Any]:
        seed = seed_from_text(parameters["seed"])
        return {"model": model, "voice": voice, "system": system, **parameters, "seed": seed}

    view = services.text.chat_view(user, chat_id=_chat_id(), run_id=url_value("run"))
    if view.problem:
        st.info(view.problem, icon=":material/info:")
    if view.chat_id != _chat_id():
        set_url(chat=view.chat_id)  # a chat kept just now, or one that could not be opened

    def send() -> None:
        message = state.get("chat-message") or ""
        _act(lambda: services.text.chat(message, [], user, chat_id=view.chat_id, **options()))

    def again(go_on: bool) -> None:
        _act(lambda: services.text.chat_again(view.chat_id, user, go_on=go_on, **options()))

    st.button("New chat", icon=":material/add_comment:", on_click=set_url, kwargs=NEW_CHAT)
    live = view.live
    shown_model = entries.get(live.model if live else model)
    for index, turn in enumerate(view.turns):
        with st.chat_message(turn.role):
            # The person's words as plain text; the model's answer as safe markdown.
            (st.text if turn.role == "user" else model_text)(turn.content)
            if live is None and index == len(view.turns) - 1 and turn.role == "assistant":
                honesty_notes(view.ending, shown_model)
                again_column, go_on_column = st.columns(2)
                again_column.button(
                    "Regenerate",
                    icon=":material/refresh:",
                    key="chat-regenerate",
                    on_click=again,
                    args=(False,),
                    width="stretch",
                )
                if view.ending is not None and turn.content.strip():
                    go_on_column.button(
                        "Continue",
                        icon=":material/resume:",
                        key="chat-continue",
                        on_click=again,
                        args=(True,),
                        width="stretch",
                        help="Write on from where the answer ends",
                    )
    writing = live is not None and not live.jobs[0].finished
    if live is not None:
        job = live.jobs[0]
        with st.chat_message("user"):
            st.text(view.question)
        with st.chat_message("assistant"):
            if writing:
                st.button(
                    "Stop",
                    icon=":material/stop:",
                    key="chat-stop",
                    on_click=job.cancel,
                    args=(user,),
                )
                live_answer(live, key="chat-live")
            elif job.status == "failed":
                st.error(job.error or "The answer failed.", icon=":material/error:")
            else:  # ended, but could not be kept: shown from the job while the server has it
                model_text(live.answer())
                honesty_notes(live.ending, shown_model)
        if writing:  # the answer's start in view; the chat box stays at the bottom
            scroll_into_view("chat-live", token=live.id)
    if (refused := state.pop(REFUSAL_KEY, None)) is not None:
        show_error(refused, LABELS)
    st.chat_input("Write a message", key="chat-message", on_submit=send, disabled=writing)


NEW_CHAT = {"chat": None, "run": None}


def _act(start: Callable[[], Any]) -> None:
    """Start an answer (a callback, before the page is drawn): its run goes in the
    address; a refusal is shown under the chat."""
    try:
        set_url(run=start().id)
    except AtelierError as error:
        st.session_state[REFUSAL_KEY] = error


def _chat_id() -> int | None:
    raw = url_value("chat") or ""
    return int(raw) if raw.isdigit() and len(raw) < 19 else None
