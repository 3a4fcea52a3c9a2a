"""Admin: people (the same as `atelier users`), brand kits (image styles and brand voices,
with the fields members cannot change), and the settings in effect."""

import streamlit as st

from webapp.ui.admin_widgets import (
    add_person_form,
    manage_person,
    people_table,
    style_form,
    voice_form,
)
from webapp.ui.resources import get_services
from webapp.ui.session import current_user
from webapp.ui.widgets import show_flash

services = get_services()
user = current_user()

st.title("Admin")
show_flash()
people_tab, kits_tab, settings_tab = st.tabs(["People", "Brand kits", "Settings"])

with people_tab:
    people = services.accounts.people(user)
    people_table(people)
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("Add a person", divider="gray")
        add_person_form(services.accounts, user, services.settings.auth_mode)
    with right:
        st.subheader("Change a person", divider="gray")
        manage_person(services.accounts, user, people)

with kits_tab:
    kits = services.kits.kits(user)
    for problem in kits.problems:
        st.warning(f"A library file could not be read: {problem}", icon=":material/build:")
    styles_column, voices_column = st.columns(2, gap="large")
    with styles_column:
        st.subheader("Image styles", divider="gray")
        style_form(services.kits, user, kits.styles, services.images.loras(user))
    with voices_column:
        st.subheader("Brand voices", divider="gray")
        voice_form(services.kits, user, kits.voices)

with settings_tab:
    st.caption(
        "The settings in effect, from the environment and atelier.toml (read at start; "
        "change them there and restart Atelier)."
    )
    st.dataframe(
        [
            {"Setting": name, "Value": value, "From": source}
            for name, value, source in services.system.settings_in_effect(user)
        ],
        hide_index=True,
    )
