"""Audit (admin): who did what and when, filtered and a page at a time; the filtered log as
CSV; and charts of use per person and per model over time."""

import streamlit as st

from webapp.services.audit import OUTCOMES
from webapp.ui.audit_widgets import PAGE_KEY, audit_filters, audit_table, usage_chart
from webapp.ui.list_widgets import pager
from webapp.ui.resources import get_services
from webapp.ui.session import current_user

services = get_services()
audit = services.audit
user = current_user()

st.title("Audit")
people = [account.id for account in services.accounts.people(user)]
filters = audit_filters(people, OUTCOMES)

log_tab, usage_tab = st.tabs(["Log", "Use over time"])
with log_tab:
    entries = audit.query(user, filters, page=st.session_state.get(PAGE_KEY, 1), per_page=50)
    audit_table(entries.items)
    pager(entries, "entries", PAGE_KEY)
    st.download_button(
        "Download the filtered log (CSV)",
        data=lambda: audit.export_csv(user, filters),
        file_name="atelier-audit.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )
with usage_tab:
    by = st.segmented_control(
        "Per", ["person", "model"], default="person", key="usage-by", format_func=str.title
    )
    bucket = st.segmented_control(
        "Each", ["day", "hour"], default="day", key="usage-bucket", format_func=str.title
    )
    usage_chart(
        audit.usage(
            user,
            by=by or "person",
            bucket=bucket or "day",
            since=filters.since,
            until=filters.until,
        )
    )
