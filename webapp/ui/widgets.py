"""Widgets shared by pages."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from webapp.errors import AtelierError, without_paths
from webapp.formatting import human_bytes
from webapp.safe_markdown import literal_markdown

RANDOM_SEED = "random"


def show_error(error: AtelierError, labels: dict[str, str] | None = None) -> None:
    """A domain error in plain words, after the label of the field it concerns as the page
    shows it (`labels`: field -> label). The message is shown as text, never as HTML."""
    label = (labels or {}).get(error.field or "") or (
        error.field.replace("_", " ").capitalize() if error.field else ""
    )
    named = f"“{label}”" in error.message  # "Fill in “Text to summarise”." says it already
    prefix = f"**{label}{'' if label.endswith('?') else ':'}** " if label and not named else ""
    st.error(prefix + without_paths(error.message), icon=":material/error:")


def show_flash() -> None:
    """The message an action left for this run, if any."""
    from webapp.ui.session import pop_flash

    message = pop_flash()
    if message:
        kind, text = message
        {"success": st.success, "warning": st.warning, "error": st.error}[kind](text)


def add_image_model_help(models_dir: Path) -> None:
    st.info(
        "**No image model is installed yet.** To add one, an admin:\n\n"
        f"1. copies a Stable Diffusion model into the models folder `{models_dir.resolve()}`: "
        "either a diffusers folder (it contains `model_index.json`) or a single "
        "`.safetensors` checkpoint;\n"
        "2. opens **Models** and presses **Rescan** (or runs `atelier models list`).\n\n"
        "Only `.safetensors` weights are accepted: pickle files (`.ckpt`, `.bin`) can run "
        "code on this server. One-click installs from a model hub come with the model manager.",
        icon=":material/image:",
    )


def memory_meter(label: str, used: int, total: int) -> None:
    share = min(used / total, 1.0) if total else 0.0
    st.progress(share, text=f"{label}: {human_bytes(used)} of {human_bytes(total)}")


STATUS_ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/progress_activity:",
    "done": ":material/check_circle:",
    "failed": ":material/error:",
    "cancelled": ":material/cancel:",
}


def seed_from_text(raw: str | None) -> int | None:
    """A seed field's value: a whole number, or None for "random" (or nothing)."""
    raw = (raw or "").strip().lower()
    if raw in ("", RANDOM_SEED):
        return None
    if not raw.isdigit():
        raise AtelierError(f"The seed must be a whole number, or “{RANDOM_SEED}”.", field="seed")
    return int(raw)


def describe_eta(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    return f"about {round(seconds / 60)} min"


def waiting_text(job) -> str:
    return f"Waiting: number {job.position or 1} in line, starts in {describe_eta(job.eta_seconds)}"


def progress_text(job) -> str:
    if job.kind not in ("image", "text"):  # documents and embeddings say what they are doing
        return f"{job.stage or 'Starting'} · done in {describe_eta(job.eta_seconds)}"
    image = job.kind == "image"
    unit = "Step" if image else "Token"
    total = job.progress.total or (job.request.steps if image else job.request.max_new_tokens)
    return f"{unit} {job.progress.step} of {total} · done in {describe_eta(job.eta_seconds)}"


def job_card(job, show_owner: bool, can_cancel: bool, on_cancel) -> None:
    """One job: what it is, its state, place in line or progress, and Cancel."""
    request = job.request
    with st.container(border=True):
        info, state, action = st.columns([5, 3, 1.2])
        with info:
            owner = f" · {literal_markdown(job.user.display_name)}" if show_owner else ""
            st.markdown(
                f"{STATUS_ICONS[job.status]} **{job.kind.capitalize()}** · `{request.model}`{owner}"
            )
            # The user's own words are shown as plain text, never as markdown or HTML.
            summary = request.summary
            st.text(summary[:160] + ("…" if len(summary) > 160 else ""))
        with state:
            if job.status == "queued":
                st.write(waiting_text(job))
            elif job.status == "running":
                st.progress(job.progress.fraction, text=progress_text(job))
            elif job.status == "failed":
                st.error(job.error or "Failed.")
            else:
                st.write(job.status.capitalize())
        with action:
            if can_cancel and not job.finished:
                st.button("Cancel", key=f"cancel-{job.id}", on_click=on_cancel, args=(job.id,))
