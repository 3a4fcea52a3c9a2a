"""Atelier's entry point: the frame every page runs in. It checks who is asking on every
run, lists the pages that person may open (admins' pages for admins only) and draws the
sign-in line; then the chosen page runs.

Pages live in app_pages/, not pages/: Streamlit runs a pages/ folder as an old-style
multipage app on the first run after a restart, without this frame (tests/test_architecture).
"""

import streamlit as st

from webapp.errors import SettingsError
from webapp.offline import use_offline_environment
from webapp.ui.frame import admin_only, sign_in_line, sign_in_prompt
from webapp.ui.resources import get_services, get_settings
from webapp.ui.session import check_sign_in

use_offline_environment()  # before any model library is imported
# An emoji icon: Streamlit draws it as a data: image. A :material: icon would be fetched
# from fonts.gstatic.com, an outside request on every page load (and refused by the CSP).
st.set_page_config(page_title="Atelier", page_icon="🎨", layout="wide")


def cannot_start(error: SettingsError) -> None:
    st.error(f"Atelier cannot start: {error.message}", icon=":material/settings:")
    st.stop()


try:
    get_settings()
    signed_in = check_sign_in()  # opens the store (quick), not the engine
except SettingsError as error:
    cannot_start(error)
user = signed_in.user

STUDIO = [
    ("app_pages/home.py", "Home", ":material/home:"),
    ("app_pages/image_studio.py", "Image Studio", ":material/palette:"),
    ("app_pages/text_tools.py", "Text tools", ":material/edit_note:"),
    ("app_pages/documents.py", "Documents", ":material/description:"),
    ("app_pages/voices.py", "Brand voices", ":material/record_voice_over:"),
    ("app_pages/my_work.py", "My work", ":material/photo_library:"),
    ("app_pages/queue.py", "Queue", ":material/queue:"),
    ("app_pages/api_keys.py", "API keys", ":material/key:"),
]
ADMIN = [
    ("app_pages/models.py", "Models", ":material/memory:"),
    ("app_pages/admin.py", "Admin", ":material/manage_accounts:"),
    ("app_pages/audit.py", "Audit", ":material/policy:"),
]


def url_path(file: str) -> str:
    return file.rsplit("/", 1)[-1].removesuffix(".py")


if user is None:
    # Every address shows the sign-in prompt and keeps its URL; nothing is listed.
    def prompt() -> None:
        sign_in_prompt(signed_in)

    pages = {"": [st.Page(prompt, title="Sign in", icon=":material/login:", default=True)]}
    pages[""] += [
        st.Page(prompt, title=title, url_path=url_path(file), visibility="hidden")
        for file, title, _ in STUDIO[1:] + ADMIN
    ]
    st.navigation(pages, position="hidden").run()
    st.stop()

pages = {
    "Studio": [
        st.Page(file, title=title, icon=icon, default=index == 0)
        for index, (file, title, icon) in enumerate(STUDIO)
    ]
}
if user.is_admin:
    pages["Admin"] = [st.Page(file, title=title, icon=icon) for file, title, icon in ADMIN]
else:  # an admin page's address: refused, said and recorded; never listed
    pages["Studio"] += [
        st.Page(
            admin_only(f"page.{url_path(file)}", title),
            title=title,
            url_path=url_path(file),
            visibility="hidden",
        )
        for file, title, _ in ADMIN
    ]
# The navigation and the sign-in line go out before the slow first start of the engine.
navigation = st.navigation(pages)
with st.sidebar:
    sign_in_line(signed_in)

try:
    get_services()  # a device that is not there is a settings error too
except SettingsError as error:
    cannot_start(error)

navigation.run()
