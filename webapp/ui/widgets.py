"""Widgets shared by pages."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from webapp.errors import AtelierError


def human_bytes(count: int | float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1024 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TB"


def show_error(error: AtelierError) -> None:
    """A domain error, in plain words (st.error renders text as text, never as HTML)."""
    prefix = f"**{error.field.replace('_', ' ').capitalize()}:** " if error.field else ""
    st.error(prefix + error.message, icon=":material/error:")


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
