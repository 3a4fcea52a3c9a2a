"""Widgets shared by pages."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from webapp.errors import AtelierError, without_paths
from webapp.formatting import human_bytes
from webapp.job_words import JobLine
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


def job_card(
    line: JobLine, names: dict[str, str], show_details: bool, can_cancel: bool, on_cancel
) -> None:
    """One job: what it is (the tool, or the person's prompt), its state, place in line or
    progress, and Cancel. `names`: model -> the name people know it by; `show_details`
    (admins): the owner, the model's id and the app replica running it too."""
    with st.container(border=True):
        info, state, action = st.columns([5, 3, 1.2])
        with info:
            model = names.get(line.model, line.model)
            what = JOB_KIND_NAMES.get(line.kind, line.kind.capitalize())
            owner = literal_markdown(line.owner_name)
            where = f" · on {literal_markdown(line.replica)}" if line.replica else ""
            details = f" · `{line.model}` · {owner}{where}" if show_details else ""
            st.markdown(
                f"{STATUS_ICONS[line.status]} **{what}** · {literal_markdown(model)}{details}"
            )
            # The user's own words are shown as plain text, never as markdown or HTML.
            st.text(line.summary)
        with state:
            if line.status == "running":
                st.progress(line.fraction, text=line.state)
            elif line.status == "failed":
                st.error(line.state)
            else:
                st.write(line.state)
        with action:
            if can_cancel and not line.finished:
                st.button("Cancel", key=f"cancel-{line.id}", on_click=on_cancel, args=(line.id,))


JOB_KIND_NAMES = {
    "image": "Picture",
    "text": "Text",
    "document": "Document",
    "embedding": "Indexing",
    "training": "Voice tuning",
}


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
