"""Widgets of the Text tools page: a tool's form fields, streamed results, downloads."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from webapp.documents import to_docx, word_changes
from webapp.engine import Job
from webapp.safe_markdown import safe_markdown
from webapp.text_tools import PRESETS, Tool, ToolField
from webapp.ui.widgets import RANDOM_SEED

REDRAW_SECONDS = 0.08  # streamed text is drawn again at most this often


def field_widget(tool: Tool, item: ToolField) -> Any:
    key = f"field-{tool.id}-{item.id}"
    if item.type == "long_text":
        return st.text_area(
            item.label,
            key=key,
            help=item.help or None,
            placeholder=item.placeholder or None,
            height=180,
        )
    if item.type == "text":
        return st.text_input(
            item.label, key=key, help=item.help or None, placeholder=item.placeholder or None
        )
    if item.type == "choice":
        index = item.choices.index(item.default) if item.default in item.choices else 0
        return st.selectbox(item.label, item.choices, index=index, key=key, help=item.help or None)
    return st.number_input(
        item.label,
        min_value=item.min,
        max_value=item.max,
        value=item.default if item.default is not None else item.min or 0,
        step=1,
        key=key,
        help=item.help or None,
    )


def parameters_widgets(tool: Tool) -> dict[str, Any]:
    """Preset, and in Advanced: temperature, top-p, max new tokens, seed."""
    preset = (
        st.segmented_control(
            "Style of answer", list(PRESETS), default=tool.preset, key=f"preset-{tool.id}"
        )
        or tool.preset
    )
    chosen = PRESETS[preset]
    with st.expander("Advanced"):
        temperature = st.slider(
            "Temperature",
            0.0,
            2.0,
            chosen["temperature"],
            0.05,
            key=f"temperature-{tool.id}-{preset}",
        )
        top_p = st.slider(
            "Top-p", 0.05, 1.0, chosen["top_p"], 0.05, key=f"top-p-{tool.id}-{preset}"
        )
        max_new_tokens = st.number_input(
            "Max new tokens", 1, 8192, tool.max_new_tokens, key=f"max-tokens-{tool.id}"
        )
        seed = st.text_input(
            "Seed (a number for reproducible output)", RANDOM_SEED, key=f"seed-{tool.id}"
        )
    return {
        "preset": preset,
        "temperature": temperature,
        "top_p": top_p,
        "max_new_tokens": int(max_new_tokens),
        "seed": seed,
    }


def model_text(text: str) -> None:
    """A model's words as markdown, with nothing in them that reaches outside the app."""
    st.markdown(safe_markdown(text))


def stream_job(job: Job) -> str:
    """Show the text as it arrives, a few times a second; returns what was shown."""
    slot, shown = st.empty(), None
    while True:
        finished, text = job.finished, job.text
        if text != shown:
            with slot.container():
                model_text(text)
            shown = text
        if finished:
            return text
        time.sleep(REDRAW_SECONDS)
        job.wait_for_update(REDRAW_SECONDS)


def stream_side_by_side(jobs: list[Job]) -> None:
    """Several jobs at once, each in its own column, until all are done."""
    columns = st.columns(len(jobs))
    slots = [column.empty() for column in columns]
    while True:
        for slot, job in zip(slots, jobs, strict=True):
            with slot.container(border=True):
                model_text(job.text or "…")
        if all(job.finished for job in jobs):
            return
        time.sleep(REDRAW_SECONDS)


def downloads(text: str, name: str, key: str) -> None:
    txt, md, docx = st.columns(3)
    txt.download_button("Download .txt", text, f"{name}.txt", "text/plain", key=f"{key}-txt")
    md.download_button("Download .md", text, f"{name}.md", "text/markdown", key=f"{key}-md")
    docx.download_button(
        "Download .docx",
        to_docx(text),
        f"{name}.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        key=f"{key}-docx",
    )


def result_view(tool: Tool, job: Job, original: str | None, key: str) -> None:
    """A finished answer: the text, a copy box, downloads, and for the proofreader the changes."""
    text = job.text
    if job.status == "cancelled":
        st.warning("Stopped. This is what was written before you pressed Stop.")
    elif job.status == "failed":
        st.error(job.error or "The tool failed.")
        return
    model_text(text)
    with st.expander("Copy as plain text"):
        st.code(text, language=None, wrap_lines=True)
    if tool.mode == "diff" and original is not None:
        changes = word_changes(original, text)
        st.caption(f"{len(changes)} change(s)")
        if changes:
            st.dataframe([{"Before": c.before, "After": c.after} for c in changes], hide_index=True)
    downloads(text, tool.id, key)
