"""The web server: app.py (the navigation frame) served through st.App, behind Atelier's
HTTP hardening and its sign-in gate and routes, with the API for the team's other tools
(/v1, /sdapi/v1) on the same engine. `atelier serve` and `make run` start it with
`streamlit run serve.py`."""

from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from webapp.api import ApiConfig, api_routes
from webapp.http_auth import SignInConfig, SignInGate, sign_in_routes
from webapp.http_health import health_routes
from webapp.http_security import SecurityMiddleware
from webapp.ui.resources import get_settings, get_shared_services, get_team

APP_FILE = Path(__file__).resolve().parent / "app.py"

# Settings and the store are read on first use, so a bad setting is shown by the app itself.
base_url = st.get_option("server.baseUrlPath") or ""
sign_in = SignInConfig(settings=get_settings, team=get_team, base_url=base_url)
api = ApiConfig(services=get_shared_services, team=get_team, base_url=base_url)
app = st.App(
    APP_FILE,
    middleware=[Middleware(SecurityMiddleware), Middleware(SignInGate, config=sign_in)],
    routes=[
        *sign_in_routes(sign_in),
        *health_routes(get_shared_services, base_url),
        *api_routes(api),
    ],
)
