"""Atelier's entry point: the frame every page runs in."""

import streamlit as st

from webapp.errors import SettingsError
from webapp.offline import use_offline_environment
from webapp.ui.resources import get_services, get_settings
from webapp.ui.session import current_user

use_offline_environment()  # before any model library is imported
st.set_page_config(page_title="Atelier", page_icon=":material/palette:", layout="wide")


def cannot_start(error: SettingsError) -> None:
    st.error(f"Atelier cannot start: {error.message}", icon=":material/settings:")
    st.stop()


try:
    get_settings()
except SettingsError as error:
    cannot_start(error)

user = current_user()

pages = {
    "Studio": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/image_studio.py", title="Image Studio", icon=":material/palette:"),
        st.Page("pages/text_tools.py", title="Text tools", icon=":material/edit_note:"),
        st.Page("pages/documents.py", title="Documents", icon=":material/description:"),
        st.Page("pages/queue.py", title="Queue", icon=":material/queue:"),
    ],
}
if user.is_admin:
    pages["Admin"] = [st.Page("pages/models.py", title="Models", icon=":material/memory:")]
# The navigation goes out before the slow first start of the services. Until a process has
# called st.navigation once, Streamlit lists the files of pages/ instead.
navigation = st.navigation(pages)

try:
    services = get_services()  # a device that is not there is a settings error too
except SettingsError as error:
    cannot_start(error)
with st.sidebar:
    st.caption(f"Signed in as **{user.display_name}**" + (" (admin)" if user.is_admin else ""))
    st.caption(f"Device: `{services.engine.device}`")

navigation.run()
