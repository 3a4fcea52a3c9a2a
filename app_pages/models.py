"""Models (admin): what is installed, what is loaded, and load / unload / pin."""

import streamlit as st

from webapp.errors import AtelierError
from webapp.formatting import human_bytes
from webapp.ui.resources import get_services
from webapp.ui.session import current_user, flash
from webapp.ui.widgets import memory_meter, show_flash

services = get_services()
user = current_user()


def load_model(name: str) -> None:
    try:
        with st.spinner(f"Loading {name}…"):
            stats = services.models.load(name, user)
        flash(
            "success",
            f"Loaded {name} in {stats.load_seconds:.1f} s "
            f"({human_bytes(stats.bytes)}, {stats.dtype}).",
        )
    except AtelierError as error:
        flash("error", error.message)


def unload_model(name: str) -> None:
    if services.models.unload(name, user):
        flash("success", f"Unloaded {name}.")
    else:
        flash("warning", f"{name} is busy; try again when its job has finished.")


def toggle_pin(name: str, pinned: bool) -> None:
    try:
        (services.models.unpin if pinned else services.models.pin)(name, user)
        flash("success", f"{'Unpinned' if pinned else 'Pinned'} {name}.")
    except AtelierError as error:
        flash("error", error.message)


st.title("Models")
if not user.is_admin:
    st.warning("Only an admin can manage models.")
    st.stop()
show_flash()

top_left, top_right = st.columns([3, 1])
with top_left:
    st.caption(f"Models folder: `{services.settings.models_dir.resolve()}`")
with top_right:
    if st.button("Rescan", icon=":material/refresh:", width="stretch"):
        found = services.models.rescan(user)
        st.toast(f"Found {found} model(s).")

device = services.system.device_summary()
memory_meter(
    "Memory used by loaded models", device["models_resident_bytes"], device["model_budget_bytes"]
)

views = services.models.overview(user)
rows = [
    {
        "Name": view.entry.name,
        "Kind": view.entry.kind,
        "Format": view.entry.format,
        "Family": view.entry.family,
        "Size": human_bytes(view.entry.size_bytes),
        "License": view.entry.license or "—",
        "Status": view.entry.status
        if view.entry.ready
        else f"{view.entry.status}: {view.entry.problem}",
        "Loaded": "pinned"
        if view.stats and view.stats.pinned
        else ("yes" if view.loaded else "no"),
        "Memory": human_bytes(view.stats.bytes) if view.stats else "—",
        "Dtype": view.stats.dtype if view.stats else "—",
        "Uses": view.stats.uses if view.stats else 0,
    }
    for view in views
]
if rows:
    st.dataframe(rows, hide_index=True)
else:
    st.info("No models found. Copy models into the models folder, then press Rescan.")

for problem in services.models.problems(user):
    st.warning(problem)

ready = [view for view in views if view.entry.ready and view.entry.kind != "lora"]
if ready:
    st.subheader("Manage", divider="gray")
    name = st.selectbox("Model", [view.entry.name for view in ready])
    chosen = next(view for view in ready if view.entry.name == name)
    pinned = bool(chosen.stats and chosen.stats.pinned)
    load, unload, pin = st.columns(3)
    load.button("Load", disabled=chosen.loaded, width="stretch", on_click=load_model, args=(name,))
    unload.button(
        "Unload", disabled=not chosen.loaded, width="stretch", on_click=unload_model, args=(name,)
    )
    pin.button(
        "Unpin" if pinned else "Pin (keep loaded)",
        width="stretch",
        on_click=toggle_pin,
        args=(name, pinned),
    )
