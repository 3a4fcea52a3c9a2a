"""Widgets of Image Studio: live job progress, the results grid, recent images."""

from __future__ import annotations

import streamlit as st

from webapp.engine import LoraWeight
from webapp.image_store import StoredImage, thumbnail_of
from webapp.job_words import progress_text, waiting_text
from webapp.services.images import ImageForm
from webapp.ui.resources import get_services
from webapp.ui.widgets import RANDOM_SEED

REDRAW_SECONDS = 0.5
LORA_ROWS_KEY, LORA_TABLE_VERSION_KEY = "img-lora-rows", "img-lora-table-version"
RECENT_IMAGES = 8  # one page of recent images; "Show more" adds as many again
FORM_KEYS = {  # form field -> widget key
    "prompt": "img-prompt",
    "style": "img-style",
    "num_images": "img-n",
    "negative_prompt": "img-negative",
    "scheduler": "img-scheduler",
    "steps": "img-steps",
    "guidance": "img-guidance",
    "width": "img-width",
    "height": "img-height",
    "model": "img-model",
}
FORM_DEFAULTS = {"img-seed": RANDOM_SEED, "img-n": 1}  # widgets drawn without a value


def use_settings(stored: StoredImage) -> None:
    """Fill the form with an image's recipe (a callback, so before the form is drawn)."""
    fill_form(get_services().images.form_of(stored.recipe))


def fill_form(form: ImageForm) -> None:
    """Put a form's values in the widgets. Each widget gets its value only from here (or
    FORM_DEFAULTS), never also as a default: Streamlit warns about a value set both ways."""
    state = st.session_state
    for name, key in FORM_KEYS.items():
        value = getattr(form, name)
        state[key] = "" if name in ("prompt", "negative_prompt") and value is None else value
    state["img-seed"] = RANDOM_SEED if form.seed is None else str(form.seed)
    set_lora_rows(list(form.loras))


def form_defaults() -> None:
    """The first value of widgets that are drawn without one (see `fill_form`)."""
    for key, value in FORM_DEFAULTS.items():
        st.session_state.setdefault(key, value)


def set_lora_rows(loras: list[LoraWeight]) -> None:
    """Fill the LoRA table. A table's edits cannot be set, so it starts again under a new key."""
    st.session_state[LORA_ROWS_KEY] = [{"LoRA": x.name, "Weight": x.weight} for x in loras]
    st.session_state[LORA_TABLE_VERSION_KEY] = st.session_state.get(LORA_TABLE_VERSION_KEY, 0) + 1


def lora_table(installed: list[str]) -> list[LoraWeight]:
    """LoRAs and their weights as a small table, a row per LoRA; rows left blank are skipped."""
    import pandas as pd

    rows = st.session_state.get(LORA_ROWS_KEY, [])
    table = pd.DataFrame(rows, columns=["LoRA", "Weight"]).astype({"Weight": "float"})
    edited = st.data_editor(
        table,
        column_config={
            "LoRA": st.column_config.SelectboxColumn("LoRA", options=installed, width="small"),
            "Weight": st.column_config.NumberColumn(
                "Weight",
                min_value=-2.0,
                max_value=2.0,
                step=0.05,
                default=1.0,
                format="%.2f",
                width="small",
            ),
        },
        num_rows="dynamic",
        hide_index=True,
        key=f"img-loras-{st.session_state.get(LORA_TABLE_VERSION_KEY, 0)}",
    )
    return [
        LoraWeight(row.LoRA, 1.0 if pd.isna(row.Weight) else float(row.Weight))
        for row in edited.itertuples()
        if isinstance(row.LoRA, str) and row.LoRA
    ]


def send_to_image_to_image(stored: StoredImage) -> None:
    st.session_state["image_sent"] = stored.path.read_bytes()


def job_panel(job, on_cancel) -> None:
    """Under Generate, where the person is looking: the place in line, then step i of N
    with a preview, redrawn a few times a second; when the job ends, the page runs again
    to show the pictures. Drawn at once: the first sign that something happens."""
    with st.container(key="img-progress"):
        live_progress(job)
        st.button(
            "Cancel",
            icon=":material/cancel:",
            key=f"cancel-{job.id}",
            on_click=on_cancel,
            args=(job,),
        )


@st.fragment(run_every=REDRAW_SECONDS)
def live_progress(job) -> None:
    if job.finished:
        st.rerun()  # the whole page: the pictures, and the recent images
    progress_panel(job)


def progress_panel(job) -> None:
    if job.status == "queued":
        st.info(waiting_text(job) + ".", icon=":material/schedule:")
    else:
        st.progress(job.progress.fraction, text=progress_text(job))
        if job.preview is not None:
            st.image(job.preview, caption="Preview", width=256)


def results_grid(stored: list[StoredImage], key: str) -> None:
    columns = st.columns(min(len(stored), 2) or 1)
    for index, item in enumerate(stored):
        with columns[index % len(columns)].container(border=True):
            st.image(str(item.path), output_format="PNG")  # the very file, not a JPEG of it
            seed = item.recipe.get("request", {}).get("seed")
            st.caption(f"Seed {seed}")
            # One button a row: side by side, their words would be cut in narrow columns.
            st.download_button(
                "Download",
                item.path.read_bytes(),
                item.path.name,
                "image/png",
                key=f"{key}-download-{index}",
                icon=":material/download:",
                width="stretch",
            )
            st.button(
                "Use these settings",
                key=f"{key}-reuse-{index}",
                on_click=use_settings,
                args=(item,),
                icon=":material/tune:",
                width="stretch",
            )
            st.button(
                "Change this picture",
                key=f"{key}-send-{index}",
                on_click=send_to_image_to_image,
                args=(item,),
                icon=":material/add_photo_alternate:",
                width="stretch",
                help="Send it to “Start from a picture” (image to image, inpainting)",
            )
            with st.expander("Recipe"):
                st.code(item.parameters, language=None, wrap_lines=True)


def recent_grid(stored: list[StoredImage]) -> None:
    columns = st.columns(4)
    for index, item in enumerate(stored):
        with columns[index % 4]:
            st.image(thumbnail_of(item), output_format="JPEG")
            # The prompt is the person's text: shown as plain text, never markdown.
            st.text(item.recipe.get("request", {}).get("prompt", "")[:80])
            st.button(
                "Use these settings",
                key=f"recent-reuse-{index}",
                on_click=use_settings,
                args=(item,),
                width="stretch",
            )
