"""Atelier's entry point: the frame every page runs in."""

import streamlit as st

from webapp.errors import SettingsError
from webapp.ui.resources import get_services
from webapp.ui.session import current_user

st.set_page_config(page_title="Atelier", page_icon=":material/palette:", layout="wide")

try:
    services = get_services()
except SettingsError as error:
    st.error(f"Atelier cannot start: {error.message}", icon=":material/settings:")
    st.stop()

user = current_user()

pages = {
    "Studio": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/image_studio.py", title="Image Studio", icon=":material/palette:"),
        st.Page("pages/text_tools.py", title="Text tools", icon=":material/edit_note:"),
        st.Page("pages/queue.py", title="Queue", icon=":material/queue:"),
    ],
}
if user.is_admin:
    pages["Admin"] = [st.Page("pages/models.py", title="Models", icon=":material/memory:")]

with st.sidebar:
    st.caption(f"Signed in as **{user.display_name}**" + (" (admin)" if user.is_admin else ""))
    st.caption(f"Device: `{services.device}`")

st.navigation(pages).run()
