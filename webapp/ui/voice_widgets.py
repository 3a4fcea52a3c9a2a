"""Widgets of the Brand voices page: a dataset's counts, a run's live progress with its
loss chart, and a finished voice's evaluation (perplexity before and after, base and tuned
answers side by side). People's texts and model answers are shown as plain text."""

from __future__ import annotations

import math

import streamlit as st

from webapp.job_words import describe_eta
from webapp.services.voice_records import DatasetInfo, VoiceVersion

REDRAW_SECONDS = 2.0
STATUS = {
    "queued": "⏳ Waiting",
    "running": "⚙️ Training",
    "done": "✅ Done",
    "failed": "❌ Failed",
    "cancelled": "⏹️ Stopped",
}


def dataset_summary(info: DatasetInfo) -> None:
    words = info.stats.get("words", {})
    cols = st.columns(4)
    cols[0].metric("Examples", f"{info.examples:,}")
    cols[1].metric("Held back", f"{info.held_back:,}", help="kept aside to evaluate the voice")
    cols[2].metric("Rewrite pairs", f"{info.pairs:,}")
    cols[3].metric("Words (median)", f"{words.get('median', 0):,}")
    st.caption(f"Lengths: {words.get('shortest', 0):,} to {words.get('longest', 0):,} words.")
    duplicates = info.stats.get("duplicates", [])
    if duplicates:
        shown = "; ".join(f"{d['source']} repeats {d['first']}" for d in duplicates[:5])
        more = f" (and {len(duplicates) - 5} more)" if len(duplicates) > 5 else ""
        st.text(f"{len(duplicates)} repeated example(s) set aside: {shown}{more}.")
    for note in info.stats.get("notes", []):
        st.info(note, icon=":material/lightbulb:")


def run_title(run: VoiceVersion) -> str:
    live = " · live" if run.live else (" · approved" if run.approved else "")
    return f"{STATUS[run.status]} · {run.voice} v{run.version} · {run.base_model}{live}"


def training_progress(job) -> None:
    """A running run: its step, the time left and the loss so far."""
    if job.status == "queued":
        st.caption(f"Waiting: number {job.position or 1} in line")
        return
    left = describe_eta(job.eta_seconds)
    st.progress(
        job.progress.fraction, (job.stage or "Starting…") + (f" · {left} left" if left else "")
    )
    details = job.details
    if details is not None and details.losses:
        st.line_chart({"training loss": list(details.losses)}, height=180, x_label="step")


def evaluation(run: VoiceVersion) -> None:
    figures = run.evaluation
    before, after = figures.get("perplexity_before"), figures.get("perplexity_after")
    if before is None or after is None:
        return
    cols = st.columns(3)
    cols[0].metric("Held-back perplexity before", _number(before))
    cols[1].metric("After", _number(after), delta=_number(after - before), delta_color="inverse")
    cols[2].metric("Training steps", f"{figures.get('steps', 0):,}")
    st.caption(
        "Perplexity: how surprised the model is by the held-back approved texts (lower is "
        "closer to your voice)."
    )
    st.bar_chart({"perplexity": {"before": before, "after": after}}, height=180)
    for number, sample in enumerate(figures.get("samples", []), start=1):
        with st.container(border=True):
            st.caption(f"Held-back example {number}: asked")
            st.text(sample["prompt"])
            base, tuned = st.columns(2)
            base.caption("Base model")
            base.text(sample["base"] or "(no answer)")
            tuned.caption("Tuned voice")
            tuned.text(sample["tuned"] or "(no answer)")


def _number(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:,.2f}"
