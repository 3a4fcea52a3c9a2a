"""Home: what Atelier is for and which models are ready, each with what it is good for.
Admins also see where the device and memory details are."""

import streamlit as st

from webapp.safe_markdown import literal_markdown
from webapp.ui.resources import get_services
from webapp.ui.session import current_user
from webapp.ui.widgets import add_image_model_help

services = get_services()
user = current_user()

st.title("Atelier")
st.write(
    "Your company's private studio for generative AI: make campaign images with Stable "
    "Diffusion and work on text with language models, all on this company's own server. "
    "Nothing you type or make leaves the building."
)

links = st.columns(3)
links[0].page_link("app_pages/image_studio.py", label="Make images", icon=":material/palette:")
links[1].page_link("app_pages/text_tools.py", label="Work on text", icon=":material/edit_note:")
links[2].page_link("app_pages/queue.py", label="See your jobs", icon=":material/queue:")

text_models = services.models.ready_models(user, kind="text")
image_models = services.models.ready_models(user, kind="image")


def model_line(entry) -> None:
    """A model by the name people know it by and what it is good for; no sizes or ids."""
    st.markdown(f"**{literal_markdown(entry.label)}**")
    if entry.description:
        st.caption(entry.description)


left, right = st.columns(2)
with left:
    st.subheader("For text", divider="gray")
    for entry in text_models:
        model_line(entry)
    if not text_models:
        st.info(
            "No text model is installed yet. "
            + (
                "Run `atelier prepare-default-model` to add the small one that comes with Atelier."
                if user.is_admin
                else "Ask your Atelier admin to install one."
            ),
            icon=":material/edit_note:",
        )
with right:
    st.subheader("For images", divider="gray")
    for entry in image_models:
        model_line(entry)
    if not image_models:
        add_image_model_help(services.settings.models_dir, for_admin=user.is_admin)

if user.is_admin:
    st.caption(
        ":material/memory: Admins: the device, its memory and every model's details are on "
        "**Models** and **Queue**."
    )
