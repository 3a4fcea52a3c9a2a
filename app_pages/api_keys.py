"""API keys: each person makes, names and revokes the keys their other tools (OpenAI and
AUTOMATIC1111 clients) use to reach Atelier; admins see and revoke everyone's."""

import streamlit as st

from webapp.ui.api_key_widgets import (
    keys_table,
    new_key_form,
    server_address,
    show_new_key,
    where_the_api_is,
)
from webapp.ui.resources import get_settings, get_team
from webapp.ui.session import current_user
from webapp.ui.widgets import show_flash

keys = get_team().api_keys
user = current_user()

st.title("API keys")
show_flash()
where_the_api_is(server_address())

if not keys.per_person:
    if get_settings().api_key:
        st.info("Sign-in is off: the API accepts the one key that ATELIER_API_KEY sets.")
    else:
        st.info("Sign-in is off and ATELIER_API_KEY is not set, so the API is off.")
    st.stop()

st.subheader("Your keys", divider="gray")
made = new_key_form(keys, user)
if made is not None:
    show_new_key(made)
keys_table(keys, user, keys.keys(user), owners=False)

if user.is_admin:
    st.subheader("Everyone's keys", divider="gray")
    keys_table(keys, user, keys.keys(user, everyone=True), owners=True)
