"""The web server: app.py (the navigation frame) served through st.App, behind Atelier's
HTTP hardening and its sign-in gate and routes. `atelier serve` and `make run` start it
with `streamlit run serve.py`."""

from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from webapp.http_auth import SignInConfig, SignInGate, sign_in_routes
from webapp.http_health import health_routes
from webapp.http_security import SecurityMiddleware
from webapp.ui.resources import get_services, get_settings, get_team

APP_FILE = Path(__file__).resolve().parent / "app.py"

# Settings and the store are read on first use, so a bad setting is shown by the app itself.
sign_in = SignInConfig(
    settings=get_settings, team=get_team, base_url=st.get_option("server.baseUrlPath") or ""
)
app = st.App(
    APP_FILE,
    middleware=[Middleware(SecurityMiddleware), Middleware(SignInGate, config=sign_in)],
    routes=[*sign_in_routes(sign_in), *health_routes(get_services, sign_in.base_url)],
)
