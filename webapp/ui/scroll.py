"""Scroll the page to where something new appears (a result, a streamed answer)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

ASSETS = Path(__file__).parent / "assets"

_scroller = st.components.v2.component(
    "atelier_scroll_into_view",
    js=(ASSETS / "scroll_into_view.js").read_text(encoding="utf-8"),
)


def scroll_into_view(key: str, token: str, block: str = "nearest") -> None:
    """Bring the element drawn with `key` (a container or widget key) into view, once per
    `token` (a job's id: each new result is brought into view once). `block`: "nearest"
    moves the page only as far as needed; "start" puts the element at the top."""
    _scroller(key=f"scroll-{key}", data={"target": f"st-key-{key}", "token": token, "block": block})
