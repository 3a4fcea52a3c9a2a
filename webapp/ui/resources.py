"""Process-wide singletons for every browser session, made once with st.cache_resource."""

from __future__ import annotations

import streamlit as st

from webapp.services import Services, build_services
from webapp.settings import load_settings


@st.cache_resource(show_spinner="Starting Atelier…")
def get_services() -> Services:
    """Shared by every session; the services inside are thread-safe."""
    return build_services(load_settings())
