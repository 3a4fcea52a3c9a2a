"""Process-wide singletons for every browser session, made once with st.cache_resource.

The team services (the store: people, sessions, my work, audit) start in a moment and are
what signing in needs, on every page run and in the server's sign-in routes; the full
services around them own the app's engine (there is no other), the slow start. Clearing
the cache (new settings, tests) shuts that engine down and closes the store.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

import streamlit as st

from webapp.settings import Settings, load_settings
from webapp.versions import require_safe_versions

if TYPE_CHECKING:
    from webapp.services import Services
    from webapp.services.documents import DocumentService
    from webapp.services.team import TeamServices


@st.cache_resource(show_spinner=False)
def get_settings() -> Settings:
    """Read once per process (quick); a bad value, a library below its security floor or an
    unsafe environment raises SettingsError."""
    require_safe_versions()
    return load_settings()


def _close_team(team: TeamServices) -> None:
    team.close()


@st.cache_resource(show_spinner=False, on_release=_close_team)
def get_team() -> TeamServices:
    """The store and the services over it; the server's sign-in routes share them (they may
    call this from outside a page run: no spinner)."""
    from webapp.services.team import build_team_services

    return build_team_services(get_settings())


def _close(services: Services) -> None:
    services.close()


def get_services() -> Services:
    """The app's services, for a page: a spinner says so while the engine starts."""
    with st.spinner("Starting Atelier…"):  # shown only if it takes more than half a second
        return get_shared_services()


@st.cache_resource(show_spinner=False, on_release=_close)
def get_shared_services() -> Services:
    """Shared by every session and the server's API routes (which call it from outside a
    page run: no spinner); all thread-safe. Imported here, not at the top: the first page
    run draws the navigation before this slow start."""
    from webapp.services import build_services

    services = build_services(get_settings(), team=get_team())
    # Hundreds of thousands of objects (torch, diffusers, transformers) now live as long
    # as the process. Set aside, the garbage collector stops walking them: each full
    # collection otherwise stalls every session and the engine for a fifth of a second.
    gc.collect()  # garbage first: frozen objects are never collected
    gc.freeze()
    return services


def _close_documents(documents: DocumentService) -> None:
    documents.close()


@st.cache_resource(show_spinner=False, on_release=_close_documents)
def get_documents() -> DocumentService:
    """The documents service over the app's engine and store; its retention sweep runs at
    start and then daily."""
    from webapp.services.documents import DocumentService

    team = get_team()
    service = DocumentService(get_settings(), get_shared_services().engine, team.store, team.audit)
    return service.start_retention()


def clear_resources() -> None:
    """Forget the settings and services, stopping the engine (tests that change settings)."""
    get_documents.clear()
    get_shared_services.clear()
    get_team.clear()
    get_settings.clear()
