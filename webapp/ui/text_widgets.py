"""Widgets of the Text tools page: a tool's form fields and settings, live answers, results
with their downloads, and the notes that keep answers honest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from webapp.documents import to_docx, word_changes
from webapp.job_words import progress_text
from webapp.registry import ModelEntry
from webapp.safe_markdown import literal_markdown, safe_markdown
from webapp.text_tools import PRESETS, Tool, ToolField
from webapp.ui.session import current_user
from webapp.ui.widgets import RANDOM_SEED

REDRAW_SECONDS = 0.25  # a live answer is drawn again this often
ENDINGS = {
    "stopped": "Stopped. This is what was written before you pressed Stop.",
    "cut": "Cut short: the answer reached its length limit. Continue writes the rest.",
}


def field_key(tool: Tool, item: ToolField) -> str:
    return f"field-{tool.id}-{item.id}"


def field_widget(tool: Tool, item: ToolField) -> Any:
    """A tool's field. Its first value is put in the session state, not passed as a default,
    so a value restored after a reload never clashes with it."""
    key = field_key(tool, item)
    if item.type == "choice":
        default = item.default if item.default in item.choices else item.choices[0]
        st.session_state.setdefault(key, default)
        return st.selectbox(item.label, item.choices, key=key, help=item.help or None)
    if item.type == "number":
        default = item.default if item.default is not None else item.min or 0
        st.session_state.setdefault(key, default)
        return st.number_input(
            item.label,
            min_value=item.min,
            max_value=item.max,
            step=1,
            key=key,
            help=item.help or None,
        )
    if item.type == "long_text":
        return st.text_area(
            item.label,
            key=key,
            help=item.help or None,
            placeholder=item.placeholder or None,
            height=180,
        )
    return st.text_input(
        item.label, key=key, help=item.help or None, placeholder=item.placeholder or None
    )


def parameters_widgets(
    tool: Tool, model: str, settings_for: Callable[[str | None], dict[str, Any]]
) -> dict[str, Any]:
    """The style of answer, and in Advanced: temperature, top-p, length, repetition penalty
    and seed. Returns what the person chose: a style other than the tool's own, and only
    the Advanced values they changed (the rest come from the tool and the model)."""
    preset = (
        st.segmented_control(
            "Style of answer", list(PRESETS), default=tool.preset, key=f"preset-{tool.id}"
        )
        or tool.preset
    )
    picked = preset if preset != tool.preset else None
    defaults = settings_for(picked)
    with st.expander("Advanced"):
        chosen = {
            "temperature": st.slider(
                "Temperature (higher: more varied)",
                0.0,
                2.0,
                float(defaults["temperature"]),
                0.05,
                key=advanced_key("temperature", tool.id, model, preset),
            ),
            "top_p": st.slider(
                "Top-p",
                0.05,
                1.0,
                float(defaults["top_p"]),
                0.05,
                key=advanced_key("top-p", tool.id, model, preset),
            ),
            "max_new_tokens": int(
                st.number_input(
                    "Longest answer (in tokens, about ¾ of a word each)",
                    1,
                    8192,
                    int(defaults["max_new_tokens"]),
                    key=advanced_key("max-tokens", tool.id, model, preset),
                )
            ),
            "repetition_penalty": st.slider(
                "Repetition penalty (higher: repeats itself less)",
                1.0,
                2.0,
                float(defaults["repetition_penalty"]),
                0.05,
                key=advanced_key("repetition", tool.id, model, preset),
            ),
        }
        seed = st.text_input(
            "Seed (a number for reproducible output)", RANDOM_SEED, key=f"seed-{tool.id}"
        )
    changed = {
        name: value
        for name, value in chosen.items()
        if abs(float(value) - float(defaults[name])) > 1e-9
    }
    return {"preset": picked, **changed, "seed": seed}


def advanced_key(name: str, tool_id: str, model: str, preset: str) -> str:
    """An Advanced widget's key. It follows the model and the style of answer, so that
    their own defaults show when either changes."""
    return f"{name}-{tool_id}-{model}-{preset}"


def model_text(text: str) -> None:
    """A model's words as markdown, with nothing in them that reaches outside the app."""
    st.markdown(safe_markdown(text))


def live_answer(run, key: str) -> None:
    """A single answer as it is written, redrawn a few times a second; the page runs again
    when it ends. Drawn at once: the first sign that something happens."""
    with st.container(key=key):
        _live_answer(run)


@st.fragment(run_every=REDRAW_SECONDS)
def _live_answer(run) -> None:
    job = run.jobs[0]
    if job.finished:
        st.rerun()
    st.caption(f":material/edit: {progress_text(job)}" if job.status == "running" else "Waiting…")
    model_text(run.answer() or "…")


def live_variants(run, key: str) -> None:
    """Several answers at once, side by side, until all are done."""
    with st.container(key=key):
        _live_variants(run)


@st.fragment(run_every=REDRAW_SECONDS)
def _live_variants(run) -> None:
    if all(job.finished for job in run.jobs):
        st.rerun()
    for number, (column, job) in enumerate(zip(st.columns(len(run.jobs)), run.jobs, strict=True)):
        with column.container(border=True):
            st.caption(f"Idea {number + 1}")
            model_text(job.text or "…")


def honesty_notes(ending: str | None, entry: ModelEntry | None) -> None:
    """Under an answer: whether it was stopped or cut short, and a quiet word when a small
    demo model wrote it."""
    if ending in ENDINGS:
        st.warning(ENDINGS[ending], icon=":material/content_cut:")
    if entry is not None and entry.demo:
        st.caption(
            f":material/info: Written by {literal_markdown(entry.label)}, a small demo model: its "
            "answers may be wrong. Your Atelier admin can install a larger model."
        )


def downloads(text: str, name: str, title: str, key: str) -> None:
    txt, md, docx = st.columns(3)
    txt.download_button("Download .txt", text, f"{name}.txt", "text/plain", key=f"{key}-txt")
    md.download_button("Download .md", text, f"{name}.md", "text/markdown", key=f"{key}-md")
    docx.download_button(
        "Download .docx",
        to_docx(text, title=title, author=current_user().display_name),
        f"{name}.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        key=f"{key}-docx",
    )


def answer_view(run, entry: ModelEntry | None) -> bool:
    """A finished single answer and its notes; False when it failed (the reason shown)."""
    job = run.jobs[0]
    if job.status == "failed":
        st.error(job.error or "The tool failed.", icon=":material/error:")
        return False
    model_text(run.answer())
    honesty_notes(run.ending, entry)
    return True


def result_extras(run, original: str | None, key: str) -> None:
    """Under a finished answer: a copy box, downloads, the proofreader's changes, the seed."""
    text, tool = run.answer(), run.tool
    with st.expander("Copy as plain text"):
        st.code(text, language=None, wrap_lines=True)
    if tool.mode == "diff" and original is not None:
        changes = word_changes(original, text)
        st.caption(f"{len(changes)} change(s)")
        if changes:
            st.dataframe([{"Before": c.before, "After": c.after} for c in changes], hide_index=True)
    downloads(text, tool.id, tool.name, key)
    if not run.prefix:  # a continued answer was written in two goes
        seed = run.generation.seed
        st.caption(f"Seed {seed}: the same seed under Advanced writes this answer again.")
