"""The web server: app.py (the navigation frame) served through st.App, behind Atelier's
HTTP hardening. `atelier serve` and `make run` start it with `streamlit run serve.py`."""

from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from webapp.http_security import SecurityMiddleware

APP_FILE = Path(__file__).resolve().parent / "app.py"

app = st.App(APP_FILE, middleware=[Middleware(SecurityMiddleware)])
