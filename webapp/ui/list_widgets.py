"""Widgets for long lists (My work, Audit): a date range in the browser's own days, paging,
and times as people read them."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import streamlit as st

from webapp.services.paging import Page


def browser_zone() -> ZoneInfo:
    try:
        return ZoneInfo(st.context.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def when(moment: datetime) -> str:
    return moment.astimezone(browser_zone()).strftime("%d %b %Y, %H:%M")


def date_range(start: date | None, end: date | None) -> tuple[datetime | None, datetime | None]:
    """From the start of `start` to the end of `end` (exclusive), in the browser's days."""
    zone = browser_zone()
    since = None if start is None else datetime.combine(start, time(), tzinfo=zone)
    until = None if end is None else datetime.combine(end + timedelta(days=1), time(), zone)
    return since, until


def pager(page: Page, noun: str, state_key: str) -> None:
    """Previous and Next, and where we are; the page number lives in `state_key`."""
    if page.total == 0:
        return
    back, where, forward = st.columns([1, 3, 1], vertical_alignment="center")
    back.button(
        "Previous",
        icon=":material/chevron_left:",
        disabled=page.page <= 1,
        on_click=_go,
        args=(state_key, page.page - 1),
        key=f"{state_key}-previous-{noun}",
    )
    where.caption(f"Page {page.page} of {page.pages} · {page.total} {noun}")
    forward.button(
        "Next",
        icon=":material/chevron_right:",
        disabled=not page.has_more,
        on_click=_go,
        args=(state_key, page.page + 1),
        key=f"{state_key}-next-{noun}",
    )


def _go(state_key: str, number: int) -> None:
    st.session_state[state_key] = max(1, number)
