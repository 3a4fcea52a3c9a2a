"""Queue: your jobs with their place in line, progress and a cancel button. Admins see
everyone's, with the details (owners, model ids, the device and its memory). With several
app replicas sharing a jobs board, the jobs running on the others are listed too."""

import streamlit as st

from webapp.errors import AtelierError
from webapp.formatting import human_bytes
from webapp.ui.resources import get_services
from webapp.ui.session import current_user, flash
from webapp.ui.widgets import job_card, memory_meter, show_flash

services = get_services()
user = current_user()

st.title("Queue")
show_flash()
everyone = user.is_admin and st.toggle("Show everyone's jobs", value=True)


def cancel(job_id: str) -> None:
    try:
        services.jobs.cancel(job_id, user)
    except AtelierError as error:
        flash("error", error.message)


names = {entry.name: entry.label for entry in services.models.ready_models(user)}


@st.fragment(run_every=1.0)
def live_queue() -> None:
    view = services.jobs.everyones_queue(user) if everyone else services.jobs.my_queue(user)
    for notice in view.notices:
        st.warning(notice)
    waiting, running = st.columns(2)
    waiting.metric("Waiting", view.waiting)
    running.metric("Running", view.running)
    if not view.jobs:
        st.info("No jobs yet. Jobs you start in the studio pages appear here.")
    for line in view.jobs[:50]:
        job_card(
            line,
            names,
            show_details=user.is_admin,
            can_cancel=line.owner_id == user.id or user.is_admin,
            on_cancel=cancel,
        )

    if user.is_admin:
        st.subheader("Device", divider="gray")
        device = services.system.device_summary()
        st.write(f"**{device['device_name']}** (`{device['device']}`)")
        memory_meter(
            "Device memory in use",
            device["memory_total_bytes"] - device["memory_free_bytes"],
            device["memory_total_bytes"],
        )
        memory_meter("Loaded models", device["models_resident_bytes"], device["model_budget_bytes"])
        loaded = services.jobs.loaded_models(user)
        if loaded:
            st.dataframe(
                [
                    {
                        "Model": s.name,
                        "Kind": s.kind,
                        "Memory": human_bytes(s.bytes),
                        "Dtype": s.dtype,
                        "Uses": s.uses,
                        "Pinned": s.pinned,
                        "Busy": s.in_use,
                    }
                    for s in loaded
                ],
                hide_index=True,
            )
        else:
            st.caption("No model is loaded.")


live_queue()
