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


def add_image_model_help(models_dir: Path, for_admin: bool) -> None:
    """What to do when no image model is installed: the steps for an admin, a plain
    sentence for everyone else."""
    if not for_admin:
        st.info(
            "**No image model is installed yet.** Ask your Atelier admin to add one.",
            icon=":material/image:",
        )
        return
    st.info(
        "**No image model is installed yet.** To add one:\n\n"
        f"1. copy a Stable Diffusion model into the models folder `{models_dir.resolve()}`: "
        "either a diffusers folder (it contains `model_index.json`) or a single "
        "`.safetensors` checkpoint;\n"
        "2. open **Models** and press **Rescan** (or run `atelier models list`).\n\n"
        "Only `.safetensors` weights are accepted: pickle files (`.ckpt`, `.bin`) can run "
        "code on this server.",
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
        return ""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    return f"about {round(seconds / 60)} min"


def waiting_text(job) -> str:
    when = describe_eta(job.eta_seconds)
    starts = f", starts in {when}" if when else ""
    return f"Waiting: number {job.position or 1} in line{starts}"


def progress_text(job) -> str:
    """A running job in words: steps and the time left for pictures, words so far for text."""
    if job.kind not in ("image", "text"):  # documents and indexing say what they are doing
        left = describe_eta(job.eta_seconds)
        return (job.stage or "Starting…") + (f" · {left} left" if left else "")
    if job.kind == "text":
        words = len(job.text.split())
        return f"Writing: {words} word{'' if words == 1 else 's'} so far" if words else "Starting…"
    if job.progress.step == 0:
        return "Starting…"
    total = job.progress.total or job.request.steps
    left = describe_eta(job.eta_seconds)
    return f"Step {job.progress.step} of {total}" + (f" · {left} left" if left else "")


def job_card(job, names: dict[str, str], show_details: bool, can_cancel: bool, on_cancel) -> None:
    """One job: what it is (the tool, or the person's prompt), its state, place in line or
    progress, and Cancel. `names`: model -> the name people know it by; `show_details`
    (admins): the owner and the model's id too."""
    request = job.request
    with st.container(border=True):
        info, state, action = st.columns([5, 3, 1.2])
        with info:
            model = names.get(request.model, request.model)
            what = JOB_KIND_NAMES.get(job.kind, job.kind.capitalize())
            owner = literal_markdown(job.user.display_name)
            details = f" · `{request.model}` · {owner}" if show_details else ""
            st.markdown(
                f"{STATUS_ICONS[job.status]} **{what}** · {literal_markdown(model)}{details}"
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
                st.write(STATUS_WORDS.get(job.status, job.status.capitalize()))
        with action:
            if can_cancel and not job.finished:
                st.button("Cancel", key=f"cancel-{job.id}", on_click=on_cancel, args=(job.id,))


JOB_KIND_NAMES = {
    "image": "Picture",
    "text": "Text",
    "document": "Document",
    "embedding": "Indexing",
    "training": "Voice tuning",
}
STATUS_WORDS = {"done": "Done", "cancelled": "Cancelled"}


def set_url(**changes: str | int | None) -> None:
    """Change the page's address in one step (None removes a key): one entry in the
    browser's history, so Back returns to the state before, and Reload or a shared link
    opens this one."""
    current = st.query_params.to_dict()
    wanted = {**current, **{key: str(value) for key, value in changes.items() if value is not None}}
    for key, value in changes.items():
        if value is None:
            wanted.pop(key, None)
    if wanted != current:
        st.query_params.from_dict(wanted)


def url_value(key: str) -> str | None:
    return st.query_params.get(key) or None
