"""Widgets of the Audit page: the filters, the log as a table, the use charts."""

from __future__ import annotations

import streamlit as st

from webapp.services.audit import AuditEntry, AuditFilter, UsagePoint
from webapp.ui.list_widgets import date_range, when

PAGE_KEY = "audit-page"
KINDS = ("image", "text", "sign_in", "session", "board.remove")
MEASURES = {"jobs": "Jobs", "images": "Images", "gpu_seconds": "GPU seconds"}


def _first_page() -> None:
    st.session_state[PAGE_KEY] = 1


def audit_filters(people: list[str], outcomes: tuple[str, ...]) -> AuditFilter:
    """Person, kind, outcome, model and dates; a change goes back to the first page. A
    person or kind that is not in the list can be typed (a name typed at a failed sign-in,
    an address, an admin action such as person.add)."""
    top = st.columns(3)
    actor = top[0].selectbox(
        "Person", people, index=None, placeholder="anyone", accept_new_options=True,
        key="audit-actor", on_change=_first_page,
    )  # fmt: skip
    kind = top[1].selectbox(
        "Kind", KINDS, index=None, placeholder="any", accept_new_options=True,
        key="audit-kind", on_change=_first_page,
    )  # fmt: skip
    outcome = top[2].selectbox(
        "Outcome", outcomes, index=None, placeholder="any", key="audit-outcome",
        on_change=_first_page,
    )  # fmt: skip
    bottom = st.columns(3)
    model = bottom[0].text_input("Model", key="audit-model", on_change=_first_page)
    start = bottom[1].date_input("From", value=None, key="audit-since", on_change=_first_page)
    end = bottom[2].date_input("To", value=None, key="audit-until", on_change=_first_page)
    since, until = date_range(start, end)
    return AuditFilter(
        actor=actor or None,
        kind=kind or None,
        outcome=outcome or None,
        model=model.strip() or None,
        since=since,
        until=until,
    )


def audit_table(entries: list[AuditEntry]) -> None:
    """The entries as a table: every value shown as written (names and prompts included)."""
    if not entries:
        st.info("Nothing in the log matches.")
        return
    st.dataframe(
        [
            {
                "When": when(e.at),
                "Who": e.actor,
                "What": e.kind,
                "Outcome": e.outcome,
                "Subject": e.subject or "",
                "Model": e.model or "",
                "Tool or style": e.tool or "",
                "Images": e.images,
                "GPU s": round(e.gpu_seconds, 2),
                "From": e.client,
                "Detail": e.detail or "",
                "Prompt": e.prompt if e.prompt is not None else (e.prompt_hash or ""),
            }
            for e in entries
        ],
        hide_index=True,
    )


def usage_chart(points: list[UsagePoint]) -> None:
    """Jobs, images or GPU seconds per person or model over time, stacked."""
    if not points:
        st.info("No jobs in this period.")
        return
    measure = st.segmented_control(
        "Count", list(MEASURES), default="jobs", format_func=MEASURES.get, key="usage-measure"
    )
    measure = measure or "jobs"
    rows = [
        {"When": p.bucket, "Who or what": p.key or "(none)", MEASURES[measure]: getattr(p, measure)}
        for p in points
    ]
    st.bar_chart(rows, x="When", y=MEASURES[measure], color="Who or what")
