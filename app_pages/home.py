"""Home: what Atelier is for, which models are ready, and the device."""

import streamlit as st

from webapp.formatting import human_bytes
from webapp.ui.resources import get_services
from webapp.ui.session import current_user
from webapp.ui.widgets import add_image_model_help, memory_meter

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

left, right = st.columns(2)
with left:
    st.subheader("Text models ready", divider="gray")
    if text_models:
        for entry in text_models:
            st.markdown(
                f"**{entry.display_name}** · {entry.family} · {human_bytes(entry.size_bytes)}"
            )
            if entry.description:
                st.caption(entry.description)
    else:
        st.warning("No text model is ready. An admin can run `atelier prepare-default-model`.")
with right:
    st.subheader("Image models ready", divider="gray")
    for entry in image_models:
        st.markdown(f"**{entry.display_name}** · {entry.family} · {human_bytes(entry.size_bytes)}")
        if entry.description:
            st.caption(entry.description)
    if not image_models:
        add_image_model_help(services.settings.models_dir)

st.subheader("Device", divider="gray")
device = services.system.device_summary()
st.write(f"Running on **{device['device_name']}** (`{device['device']}`).")
memory_meter("Models loaded", device["models_resident_bytes"], device["model_budget_bytes"])
