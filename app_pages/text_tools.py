"""Text tools: a gallery of task-shaped tools, each a form with a streamed result, and chat."""

import streamlit as st

from webapp.engine import ChatMessage
from webapp.errors import AtelierError
from webapp.ui.resources import get_services
from webapp.ui.session import current_user
from webapp.ui.text_widgets import (
    field_widget,
    model_text,
    parameters_widgets,
    result_view,
    stream_job,
    stream_side_by_side,
)
from webapp.ui.widgets import seed_from_text, show_error

services = get_services()
user = current_user()
state = st.session_state
state.setdefault("text_tool", None)
state.setdefault("text_runs", {})  # tool id -> {"jobs": [...], "original": str | None}
state.setdefault("chat_history", [])


def open_tool(tool_id: str | None) -> None:
    state["text_tool"] = tool_id


def stop(jobs) -> None:
    for job in jobs:
        if not job.finished:
            job.cancel(user)


st.title("Text tools")
for problem in services.text.problems(user):
    st.warning(f"A tool file could not be loaded: {problem}", icon=":material/build:")

tools = {tool.id: tool for tool in services.text.tools(user)}
tool = tools.get(state["text_tool"])

if tool is None:
    st.caption("Pick a tool. Everything runs on this company's own server.")
    columns = st.columns(3)
    for index, candidate in enumerate(tools.values()):
        with columns[index % 3].container(border=True):
            st.markdown(f"#### {candidate.icon} {candidate.name}")
            st.caption(candidate.description)
            st.button("Open", key=f"open-{candidate.id}", on_click=open_tool, args=(candidate.id,))
    st.stop()

st.button("← All tools", on_click=open_tool, args=(None,))
st.header(f"{tool.icon} {tool.name}")
st.caption(tool.description)

models = [entry.name for entry in services.text.text_models(user)]
if not models:
    st.warning("No text model is installed. An admin can run `atelier prepare-default-model`.")
    st.stop()
voices = {voice.id: voice.name for voice in services.text.voices(user)}

settings_left, settings_right = st.columns(2)
default_model = services.text.default_model(tool)
model = settings_left.selectbox(
    "Model", models, index=models.index(default_model), key=f"model-{tool.id}"
)
voice = None
if tool.takes_voice and voices:
    voice = settings_right.selectbox(
        "Brand voice",
        [None, *voices],
        format_func=lambda v: "No brand voice" if v is None else voices[v],
        key=f"voice-{tool.id}",
    )

if tool.mode == "chat":
    with st.expander("Instructions for the assistant (system prompt)"):
        system = st.text_area("Instructions", tool.system, key="chat-system")
    parameters = parameters_widgets(tool)
    if st.button("New chat", icon=":material/add_comment:"):
        state["chat_history"] = []
    for turn in state["chat_history"]:
        with st.chat_message(turn.role):
            # The person's words as plain text; the model's answer as safe markdown.
            (st.text if turn.role == "user" else model_text)(turn.content)
    message = st.chat_input("Write a message")
    if message:
        with st.chat_message("user"):
            st.text(message)
        try:
            run = services.text.chat(
                message,
                state["chat_history"],
                user,
                model=model,
                voice=voice,
                system=system,
                **{**parameters, "seed": seed_from_text(parameters["seed"])},
            )
        except AtelierError as error:
            show_error(error)
            st.stop()
        job = run.jobs[0]
        with st.chat_message("assistant"):
            st.button("Stop", key="chat-stop", on_click=stop, args=([job],))
            stream_job(job)
        if job.status == "failed":
            show_error(AtelierError(job.error or "The answer failed."))
        else:
            state["chat_history"] += [
                ChatMessage("user", message),
                ChatMessage("assistant", job.text),
            ]
    st.stop()

with st.form(f"form-{tool.id}"):
    values, slots = {}, {}
    for item in tool.fields:
        values[item.id] = field_widget(tool, item)
        slots[item.id] = st.empty()  # where this field's error goes
    parameters = parameters_widgets(tool)
    slots["other"] = st.empty()
    submitted = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:")


def run_tool() -> None:
    main_field = next((f.id for f in tool.fields if f.type == "long_text"), None)
    try:
        run = services.text.run_tool(
            tool.id,
            values,
            user,
            model=model,
            voice=voice,
            **{**parameters, "seed": seed_from_text(parameters["seed"])},
        )
    except AtelierError as error:
        with slots.get(error.field, slots["other"]).container():
            show_error(error, {item.id: item.label for item in tool.fields})
        return
    state["text_runs"][tool.id] = {
        "jobs": run.jobs,
        "original": values.get(main_field),
        "seed": run.generation.seed,
    }


if submitted:
    run_tool()

current = state["text_runs"].get(tool.id)
if current:
    jobs = current["jobs"]
    if not all(job.finished for job in jobs):
        st.button("Stop", icon=":material/stop:", on_click=stop, args=(jobs,))
        if len(jobs) == 1:
            stream_job(jobs[0])
        else:
            stream_side_by_side(jobs)
        st.rerun()
    st.caption(f"Seed {current['seed']} · {jobs[0].request.model}")
    if st.button("Regenerate", icon=":material/refresh:"):
        run_tool()
        st.rerun()
    if len(jobs) == 1:
        result_view(tool, jobs[0], current["original"], key=f"result-{tool.id}")
    else:
        for column, job, number in zip(
            st.columns(len(jobs)), jobs, range(1, len(jobs) + 1), strict=True
        ):
            with column.container(border=True):
                st.caption(f"Idea {number}")
                model_text(job.text)
