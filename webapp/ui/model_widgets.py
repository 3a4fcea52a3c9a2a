"""Widgets of the Models page: the recommended list, a looked-up repo, and installs with
their live progress."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from webapp.formatting import human_bytes
from webapp.hub.plan import RepoPlan
from webapp.job_words import describe_eta
from webapp.safe_markdown import literal_markdown

# The fields of the install and import forms, as the page labels them (errors name them).
LABELS = {
    "repo_id": "Repo id",
    "revision": "Revision",
    "token": "Access token",
    "accept_license": "Licence",
    "name": "Name",
    "disk": "Disk",
    "endpoint": "Hub",
    "source": "Path on the server",
    "upload": "Upload",
    "model": "Model",
}
STATUS_WORDS = {
    "queued": "Waiting",
    "downloading": "Downloading",
    "placing": "Checking and adding",
    "done": "Installed",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "interrupted": "Interrupted",
}
PROGRESS_SECONDS = 1.0


def recommended_table(views) -> None:
    """The recommended models beside this machine: installed or not, and whether each fits
    the memory models may use here."""
    st.dataframe(
        [
            {
                "Model": view.model.display_name,
                "Kind": view.model.kind,
                "Family": view.model.family,
                "Download": f"≈ {view.model.download_gb:g} GB",
                "Memory": f"≈ {view.model.memory_gb:g} GB",
                "Fits here": "yes" if view.fits else "too big",
                "Licence": view.model.license + (" (gated)" if view.model.gated else ""),
                "Good for": view.model.good_for,
                "Status": "installed"
                if view.installed
                else ("installing" if view.installing else "—"),
            }
            for view in views
        ],
        hide_index=True,
        column_config={"Good for": st.column_config.TextColumn(width="large")},
    )


def plan_summary(plan: RepoPlan) -> None:
    """What an install of this repo would fetch, its licence and whether the token may
    download it."""
    st.markdown(
        f"**{literal_markdown(plan.repo_id)}** at `{plan.commit[:12]}` · {plan.layout} · "
        f"{len(plan.files)} files · **{human_bytes(plan.total_bytes)}**"
    )
    licence = literal_markdown(plan.license)
    st.markdown(f"Licence: **{licence}** · [read it]({plan.license_link})")
    access = {
        "granted": "Gated: your access token may download it.",
        "needs-token": "Gated: paste an access token of an account that has accepted its "
        "licence on the Hub, then look it up again.",
        "token-refused": "Gated: the access token was refused. Check it, and that its account "
        "has accepted the licence on the Hub.",
    }.get(plan.access)
    if access:
        (st.info if plan.access == "granted" else st.warning)(access)
    if plan.skipped:
        with st.expander(
            f"{len(plan.skipped)} files left out (not safetensors, configs or tokenizers)"
        ):
            st.text("\n".join(plan.skipped[:200]))


def progress_words(progress) -> str:
    install = progress.install
    words = (
        f"{STATUS_WORDS.get(install.status, install.status)}: "
        f"{human_bytes(progress.done_bytes)} of {human_bytes(install.total_bytes)}"
    )
    if progress.bytes_per_second:
        words += f" · {human_bytes(progress.bytes_per_second)}/s"
        left = describe_eta(progress.seconds_left)
        words += f" · {left} left" if left else ""
    return words


def install_card(
    progress,
    on_cancel: Callable[[str], None],
    on_retry: Callable[[str], None],
    on_dismiss: Callable[[str], None],
) -> None:
    install = progress.install
    with st.container(border=True):
        info, action = st.columns([5, 1.4])
        with info:
            source = literal_markdown(install.source)
            st.markdown(f"**{literal_markdown(install.name)}** · {source}")
            if install.active:
                st.progress(progress.fraction, text=progress_words(progress))
            elif install.status == "done":
                st.success(f"Installed ({human_bytes(install.total_bytes)}).")
            elif install.error:
                st.error(install.error)
            else:
                st.write(STATUS_WORDS.get(install.status, install.status))
        with action:
            if install.active:
                st.button(
                    "Cancel", key=f"cancel-{install.id}", on_click=on_cancel, args=(install.id,)
                )
            else:
                if install.can_retry:
                    st.button(
                        "Retry", key=f"retry-{install.id}", on_click=on_retry, args=(install.id,)
                    )
                st.button(
                    "Dismiss", key=f"dismiss-{install.id}", on_click=on_dismiss, args=(install.id,)
                )
