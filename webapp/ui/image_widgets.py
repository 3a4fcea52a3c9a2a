"""Widgets of Image Studio: live job progress, the results grid, recent images."""

from __future__ import annotations

import streamlit as st

from webapp.engine import LoraWeight
from webapp.image_store import StoredImage, thumbnail_of
from webapp.ui.widgets import RANDOM_SEED, progress_text, waiting_text

REDRAW_SECONDS = 0.5
PROGRESS_AFTER_SECONDS = 0.3
LORA_ROWS_KEY, LORA_TABLE_VERSION_KEY = "img-lora-rows", "img-lora-table-version"
RECENT_IMAGES = 8  # one page of recent images; "Show more" adds as many again
FORM_KEYS = {  # recipe field -> form widget key
    "prompt": "img-prompt",
    "negative_prompt": "img-negative",
    "scheduler": "img-scheduler",
    "steps": "img-steps",
    "guidance": "img-guidance",
    "width": "img-width",
    "height": "img-height",
    "model": "img-model",
}


def use_settings(stored: StoredImage) -> None:
    """Fill the form with an image's recipe (a callback, so before the form is drawn)."""
    request = stored.recipe.get("request", {})
    for name, key in FORM_KEYS.items():
        if name in request:
            st.session_state[key] = request[name]
    st.session_state["img-seed"] = str(request.get("seed", RANDOM_SEED))
    st.session_state["img-style"] = None  # the stored prompt already has the style applied
    set_lora_rows([LoraWeight(**lora) for lora in request.get("loras", [])])


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


def follow_job(job, on_cancel) -> None:
    """Show the queue position, then step i of N with previews, until the job ends; the
    Cancel button's click interrupts this loop with a rerun."""
    cancel_slot, panel = st.empty(), st.empty()
    # A quick job shows no flash of progress, and drawing would slow its first steps.
    if job.wait(PROGRESS_AFTER_SECONDS):
        return
    cancel_slot.button(
        "Cancel", icon=":material/cancel:", key=f"cancel-{job.id}", on_click=on_cancel, args=(job,)
    )
    while not job.finished:
        with panel.container():
            progress_panel(job)
        # Redraw at most a few times a second: drawing competes with the worker for the CPU.
        if not job.wait(REDRAW_SECONDS):
            job.wait_for_update(0.5)
    cancel_slot.empty()
    panel.empty()


def progress_panel(job) -> None:
    if job.status == "queued":
        st.info(waiting_text(job) + ".", icon=":material/schedule:")
    elif job.status == "running":
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
            st.download_button(
                "Download",
                item.path.read_bytes(),
                item.path.name,
                "image/png",
                key=f"{key}-download-{index}",
                icon=":material/download:",
            )
            left, right = st.columns(2)
            left.button(
                "Use these settings",
                key=f"{key}-reuse-{index}",
                on_click=use_settings,
                args=(item,),
            )
            right.button(
                "Send to image-to-image",
                key=f"{key}-send-{index}",
                on_click=send_to_image_to_image,
                args=(item,),
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
            )
