"""Text tools: a gallery of task-shaped tools, each a form with a live result, and chat.

The open tool and its latest run live in the address (`?tool=…&run=…`, and `&chat=…` for
a kept chat): Back returns to the gallery, and a reload finds the run again, running or
done, with the form as it was filled in.
"""

import streamlit as st

from webapp.errors import AtelierError
from webapp.safe_markdown import literal_markdown
from webapp.ui.chat_widgets import chat_page
from webapp.ui.resources import get_services
from webapp.ui.scroll import scroll_into_view
from webapp.ui.session import current_user
from webapp.ui.text_widgets import (
    answer_view,
    field_key,
    field_widget,
    honesty_notes,
    live_answer,
    live_variants,
    model_text,
    parameters_widgets,
    result_extras,
)
from webapp.ui.widgets import seed_from_text, set_url, show_error, url_value

services = get_services()
user = current_user()
state = st.session_state


def open_tool(tool_id: str | None) -> None:
    set_url(tool=tool_id, run=None, chat=None)


def stop(jobs) -> None:
    for job in jobs:
        if not job.finished:
            job.cancel(user)


st.title("Text tools")
for problem in services.text.problems(user):
    st.warning(f"A tool file could not be loaded: {problem}", icon=":material/build:")

tools = {tool.id: tool for tool in services.text.tools(user)}
tool = tools.get(url_value("tool") or "")

if tool is None:
    if url_value("tool"):
        st.info("That tool is not here any more. Pick another.", icon=":material/info:")
    st.caption("Pick a tool. Everything runs on this company's own server.")
    columns = st.columns(3)
    for index, candidate in enumerate(tools.values()):
        with columns[index % 3].container(border=True):
            st.markdown(f"#### {candidate.icon} {literal_markdown(candidate.name)}")
            st.caption(candidate.description)
            st.button("Open", key=f"open-{candidate.id}", on_click=open_tool, args=(candidate.id,))
    st.stop()

st.button("← All tools", on_click=open_tool, args=(None,))
st.header(f"{tool.icon} {literal_markdown(tool.name)}")
st.caption(tool.description)

entries = {entry.name: entry for entry in services.text.text_models(user)}
if not entries:
    st.warning(
        "No text model is installed. "
        + (
            "Run `atelier prepare-default-model` to add the small one that comes with Atelier."
            if user.is_admin
            else "Ask your Atelier admin to install one."
        ),
        icon=":material/warning:",
    )
    st.stop()
voices = {voice.id: voice.name for voice in services.text.voices(user)}

# The run in the address: after a reload, the form is filled in as it was.
run = services.text.run(url_value("run") or "", user)
if run is not None and run.tool.id != tool.id:
    run = None
if run is not None and not state.get(f"restored-{run.id}"):
    state[f"restored-{run.id}"] = True
    for item in tool.fields:
        if item.id in run.values and field_key(tool, item) not in state:
            state[field_key(tool, item)] = run.values[item.id]
    state.setdefault(f"model-{tool.id}", run.model)
    if run.voice:
        state.setdefault(f"voice-{tool.id}", run.voice)

models = list(entries)
state.setdefault(f"model-{tool.id}", services.text.default_model(tool))
if state[f"model-{tool.id}"] not in entries:
    state[f"model-{tool.id}"] = services.text.default_model(tool)
settings_left, settings_right = st.columns(2)
model = settings_left.selectbox(
    "Model",
    models,
    key=f"model-{tool.id}",
    format_func=lambda name: entries[name].label,
    help="What each model is good for is on the Home page.",
)
if entries[model].description:
    settings_left.caption(entries[model].description)
voice = None
if tool.takes_voice and voices:
    choices = list(voices) if tool.voice_required else [None, *voices]
    if state.get(f"voice-{tool.id}") not in choices:
        state[f"voice-{tool.id}"] = choices[0]
    voice = settings_right.selectbox(
        "Brand voice",
        choices,
        format_func=lambda v: "No brand voice" if v is None else voices[v],
        key=f"voice-{tool.id}",
    )


def settings_for(preset):
    return services.text.settings_for(tool, model, preset)


if tool.mode == "chat":
    chat_page(tool, model, voice, entries, settings_for)
    st.stop()

main_field = next((item for item in tool.fields if item.type == "long_text"), None)
labels = {item.id: item.label for item in tool.fields} | {
    "input": main_field.label if main_field else "Your text",
    "model": "Model",
    "voice": "Brand voice",
    "preset": "Style of answer",
    "temperature": "Temperature (under Advanced)",
    "top_p": "Top-p (under Advanced)",
    "max_new_tokens": "Longest answer (under Advanced)",
    "repetition_penalty": "Repetition penalty (under Advanced)",
    "seed": "Seed (under Advanced)",
}

with st.form(f"form-{tool.id}"):
    values, slots = {}, {}
    for item in tool.fields:
        values[item.id] = field_widget(tool, item)
        slots[item.id] = st.empty()  # where this field's error goes
    parameters = parameters_widgets(tool, model, settings_for)
    submitted = st.form_submit_button("Run", type="primary", icon=":material/play_arrow:")
slots["other"] = st.empty()  # right under Run
if main_field is not None:
    slots["input"] = slots[main_field.id]


def show_refusal(error: AtelierError) -> None:
    with slots.get(error.field or "", slots["other"]).container():
        show_error(error, labels)


def run_tool():
    """Run the tool with the form's values: the new run, or None (the refusal is shown)."""
    try:
        started = services.text.run_tool(
            tool.id,
            values,
            user,
            model=model,
            voice=voice,
            **{**parameters, "seed": seed_from_text(parameters["seed"])},
        )
    except AtelierError as error:
        show_refusal(error)
        return None
    set_url(run=started.id)
    return started


def continue_answer(run_id: str) -> None:
    try:
        set_url(run=services.text.continue_run(run_id, user).id)
    except AtelierError as error:
        state["text-refusal"] = error


if submitted:
    run = run_tool() or run
if (refused := state.pop("text-refusal", None)) is not None:
    show_refusal(refused)

if run is not None:
    with st.container(key="text-result"):
        if not all(job.finished for job in run.jobs):
            st.button("Stop", icon=":material/stop:", on_click=stop, args=(run.jobs,))
            if len(run.jobs) == 1:
                live_answer(run, key="text-live")
            else:
                live_variants(run, key="text-live")
        elif len(run.jobs) == 1:
            if answer_view(run, entries.get(run.model)):
                again, go_on = st.columns(2)
                if again.button("Regenerate", icon=":material/refresh:", width="stretch"):
                    run_tool()
                    st.rerun()
                if run.ending is not None and run.answer().strip():
                    go_on.button(
                        "Continue",
                        icon=":material/resume:",
                        width="stretch",
                        on_click=continue_answer,
                        args=(run.id,),
                        help="Write on from where the answer ends",
                    )
                original = run.values.get(main_field.id) if main_field else None
                result_extras(run, original, "result")
        else:
            for number, (column, job) in enumerate(
                zip(st.columns(len(run.jobs)), run.jobs, strict=True), start=1
            ):
                with column.container(border=True):
                    st.caption(f"Idea {number}")
                    model_text(job.text)
            honesty_notes(None, entries.get(run.model))
            if st.button("Regenerate", icon=":material/refresh:"):
                run_tool()
                st.rerun()
    # Where the person looks after Run: the answer as it is written, then the result.
    scroll_into_view("text-result", token=run.id, block="start")
