"""Process-wide singletons for every browser session, made once with st.cache_resource."""

from __future__ import annotations

import streamlit as st

from webapp.engine import get_engine, reset_engine
from webapp.services import Services, build_services
from webapp.settings import load_settings


@st.cache_resource(show_spinner="Starting Atelier…")
def get_services() -> Services:
    """Shared by every session, around the process-wide engine; all thread-safe."""
    settings = load_settings()
    reset_engine()  # a new cache entry means new settings: the old engine must go
    return build_services(settings, engine=get_engine())
