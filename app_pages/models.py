"""Models (admin): what is installed and loaded (load, unload, pin, delete); installing from
the Hub or the company's mirror, with the recommended models; importing from the server's
disk or an upload."""

import streamlit as st

from webapp.errors import AtelierError
from webapp.formatting import human_bytes
from webapp.hub.plan import RepoPlan
from webapp.ui.model_widgets import (
    LABELS,
    PROGRESS_SECONDS,
    install_card,
    plan_summary,
    recommended_table,
)
from webapp.ui.resources import get_services
from webapp.ui.session import current_user, flash
from webapp.ui.widgets import memory_meter, show_error, show_flash

services = get_services()
user = current_user()
state = st.session_state
state.setdefault("hub-plan", None)  # the looked-up repo (a dict), never the token
state.setdefault("hub-error", None)
state.setdefault("installs-seen-active", set())


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


def toggle_load_at_start(name: str) -> None:
    try:
        on = bool(state.get(f"at-start-{name}"))
        services.models.load_at_start(name, user, on)
        flash("success", f"{name} {'loads' if on else 'no longer loads'} when Atelier starts.")
    except AtelierError as error:
        flash("error", error.message)


def make_default(name: str) -> None:
    try:
        entry = services.models.set_default(name, user)
        flash("success", f"{entry.label} is now offered first for {entry.kind}.")
    except AtelierError as error:
        flash("error", error.message)


def describe(name: str) -> None:
    try:
        services.models.describe(
            name,
            user,
            state.get(f"describe-name-{name}", ""),
            state.get(f"describe-text-{name}", ""),
            state.get(f"describe-license-{name}", ""),
        )
        flash("success", f"Saved the description of {name}.")
    except AtelierError as error:
        flash("error", error.message)


def delete_model(name: str) -> None:
    try:
        services.local_models.remove(name, user)
        flash("success", f"Deleted {name}.")
    except AtelierError as error:
        flash("error", error.message)
    state.pop("delete-confirmed", None)


def look_up(repo_id: str, revision: str, name: str = "") -> None:
    state["hub-plan"], state["hub-error"] = None, None
    try:
        with st.spinner(f"Asking {services.installs.endpoint} about {repo_id}…"):
            plan = services.installs.look_up(repo_id, user, revision, state.get("hub-token"))
        state["hub-plan"] = plan.to_dict()
        state["hub-name"] = name or plan.name
        state["hub-accept"] = False
    except AtelierError as error:
        state["hub-error"] = error


def look_up_typed() -> None:
    look_up(state.get("hub-repo", ""), state.get("hub-revision", ""))


def look_up_recommended(views) -> None:
    chosen = next(v for v in views if v.model.display_name == state["hub-recommended"])
    look_up(chosen.model.repo, chosen.model.revision, chosen.model.name)


def start_install() -> None:
    plan = RepoPlan.from_dict(state["hub-plan"])
    try:
        services.installs.install(
            plan,
            user,
            name=state.get("hub-name") or plan.name,
            token=state.get("hub-token") or None,
            accept_license=bool(state.get("hub-accept")),
        )
    except AtelierError as error:
        state["hub-error"] = error
        return
    state["hub-plan"], state["hub-error"], state["hub-token"] = None, None, ""
    flash("success", f"Installing {plan.repo_id} in the background; you may leave this page.")


def cancel_install(install_id: str) -> None:
    try:
        services.installs.cancel(install_id, user)
    except AtelierError as error:
        flash("error", error.message)


def retry_install(install_id: str) -> None:
    try:
        services.installs.retry(install_id, user, state.get("hub-token") or None)
    except AtelierError as error:
        flash("error", error.message)


def dismiss_install(install_id: str) -> None:
    try:
        services.installs.dismiss(install_id, user)
    except AtelierError as error:
        flash("error", error.message)


def import_from_path() -> None:
    try:
        entry = services.local_models.import_path(
            state.get("import-path", ""), user, name=state.get("import-name") or None
        )
    except AtelierError as error:
        state["import-error"] = error
        return
    state["import-error"] = None
    flash("success", f"Imported {entry.name}: a {entry.kind} model ({entry.format}).")


def import_upload() -> None:
    upload = state.get("import-upload")
    if upload is None:
        state["import-error"] = AtelierError("Choose a file to upload first.", field="upload")
        return
    try:
        entry = services.local_models.import_upload(
            upload.name, upload.getvalue(), user, name=state.get("upload-name") or None
        )
    except AtelierError as error:
        state["import-error"] = error
        return
    state["import-error"] = None
    flash("success", f"Added {entry.name}: a {entry.kind} model ({entry.format}).")


st.title("Models")
if not user.is_admin:
    st.warning("Only an admin can manage models.")
    st.stop()
show_flash()


@st.fragment(run_every=PROGRESS_SECONDS)
def live_installs() -> None:
    """Installs and their progress, redrawn every second; when one ends, the whole page
    once (the new model in the lists)."""
    rows = services.installs.installs(user)
    active = {p.install.id for p in rows if p.install.active}
    ended = state["installs-seen-active"] - active
    state["installs-seen-active"] = active
    if ended:
        st.rerun(scope="app")
    for progress in rows[:20]:
        install_card(progress, cancel_install, retry_install, dismiss_install)


# The open tab is kept in the address (?tab=Install): a reload, or the rerun when an install
# ends, stays on it.
installed_tab, install_tab, import_tab = st.tabs(
    ["Installed", "Install", "Import"], key="tab", bind="query-params"
)

with installed_tab:
    top_left, top_right = st.columns([3, 1])
    with top_left:
        st.caption(f"Models folder: `{services.settings.models_dir.resolve()}`")
    with top_right:
        if st.button("Rescan", icon=":material/refresh:", width="stretch"):
            found = services.models.rescan(user)
            st.toast(f"Found {found} model(s).")

    device = services.system.device_summary()
    memory_meter(
        "Memory used by loaded models",
        device["models_resident_bytes"],
        device["model_budget_bytes"],
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
            "Default": "yes" if view.entry.default else "",
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
        st.info("No models yet. Install one from the Install tab, or import one.")

    for problem in services.models.problems(user):
        st.warning(problem)

    ready = [view for view in views if view.entry.ready and view.entry.kind != "lora"]
    if ready:
        st.subheader("Manage", divider="gray")
        name = st.selectbox("Model", [view.entry.name for view in ready])
        chosen = next(view for view in ready if view.entry.name == name)
        pinned = bool(chosen.stats and chosen.stats.pinned)
        load, unload, pin = st.columns(3)
        load.button(
            "Load", disabled=chosen.loaded, width="stretch", on_click=load_model, args=(name,)
        )
        unload.button(
            "Unload",
            disabled=not chosen.loaded,
            width="stretch",
            on_click=unload_model,
            args=(name,),
        )
        pin.button(
            "Unpin" if pinned else "Pin (keep loaded)",
            width="stretch",
            on_click=toggle_pin,
            args=(name, pinned),
        )
        entry = chosen.entry
        at_start, default = st.columns(2)
        at_start.checkbox(
            "Load at start and keep loaded",
            value=entry.pin,
            key=f"at-start-{name}",
            on_change=toggle_load_at_start,
            args=(name,),
        )
        default.button(
            f"Offer first for {entry.kind}"
            if not entry.default
            else f"Offered first ({entry.kind})",
            disabled=entry.default,
            on_click=make_default,
            args=(name,),
        )
        with st.expander("Name, description and licence as people see them"):
            st.text_input("Display name", value=entry.display_name, key=f"describe-name-{name}")
            st.text_area(
                "What it is good for", value=entry.description, key=f"describe-text-{name}"
            )
            st.text_input("Licence", value=entry.license, key=f"describe-license-{name}")
            st.button("Save", key=f"describe-save-{name}", on_click=describe, args=(name,))

    removable = [view.entry.name for view in views if view.entry.format != "remote"]
    if removable:
        st.subheader("Delete", divider="gray")
        doomed = st.selectbox("Model or LoRA to delete", removable, key="delete-name")
        confirmed = st.checkbox(
            f"Delete {doomed} and its files from this server (this cannot be undone)",
            key="delete-confirmed",
        )
        st.button(
            "Delete",
            type="primary",
            disabled=not confirmed,
            on_click=delete_model,
            args=(doomed,),
        )

with install_tab:
    live_installs()
    st.subheader("Recommended models", divider="gray")
    recommended, problems = services.installs.recommended(user)
    for problem in problems:
        st.warning(problem)
    st.caption(
        f"Sizes and memory are approximate. Memory models may use here: "
        f"{human_bytes(device['model_budget_bytes'])}."
    )
    recommended_table(recommended)
    available = [v.model.display_name for v in recommended if not v.installed]
    if available:
        pick, go = st.columns([3, 1], vertical_alignment="bottom")
        pick.selectbox("Recommended model", available, key="hub-recommended")
        go.button(
            "Look up",
            key="look-up-recommended",
            width="stretch",
            on_click=look_up_recommended,
            args=(recommended,),
        )

    st.subheader("Any model on the Hub", divider="gray")
    st.caption(f"From `{services.installs.endpoint}` (set ATELIER_HF_ENDPOINT for a mirror).")
    repo, revision = st.columns([3, 1])
    repo.text_input("Repo id", key="hub-repo", placeholder="owner/name, e.g. stabilityai/sd-turbo")
    revision.text_input("Revision", key="hub-revision", placeholder="main")
    st.text_input(
        "Access token",
        key="hub-token",
        type="password",
        help="Only for gated models. Used for this install and forgotten: never stored or shown.",
    )
    st.button("Look up", key="look-up-typed", on_click=look_up_typed)

    if state["hub-error"] is not None:
        show_error(state["hub-error"], LABELS)
    if state["hub-plan"] is not None:
        plan = RepoPlan.from_dict(state["hub-plan"])
        with st.container(border=True):
            plan_summary(plan)
            st.text_input("Name", key="hub-name", help="The model's name in Atelier.")
            if plan.needs_acceptance:
                st.checkbox(
                    f"I have read the licence {plan.license} and accept it for this company",
                    key="hub-accept",
                )
            st.button("Install", type="primary", on_click=start_install)

with import_tab:
    roots = services.settings.import_roots
    st.caption(
        "Import folders: " + ", ".join(f"`{root}`" for root in roots)
        if roots
        else "No import folders are set (ATELIER_IMPORT_ROOTS); you can still upload a file."
    )
    st.text_input(
        "Path on the server",
        key="import-path",
        placeholder="a diffusers or transformers folder, a .safetensors or .gguf file",
    )
    st.text_input("Name", key="import-name", placeholder="default: the folder or file name")
    st.button("Import", on_click=import_from_path)
    st.divider()
    st.file_uploader(
        f"Upload a .safetensors checkpoint or LoRA, or a .gguf file "
        f"(up to {services.settings.upload_max_mb} MB)",
        key="import-upload",
        max_upload_size=services.settings.upload_max_mb,
    )
    st.text_input("Name", key="upload-name", placeholder="default: the file name")
    st.button("Add the upload", on_click=import_upload)
    if state.get("import-error") is not None:
        show_error(state["import-error"], LABELS)
