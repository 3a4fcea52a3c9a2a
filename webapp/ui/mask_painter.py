"""A brush in the browser to paint the area of a picture to change (inpainting)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import streamlit as st

from webapp.services.images import PicturePreview

ASSETS = Path(__file__).parent / "assets"
MASK_PREFIX = "data:image/png;base64,"

_painter = st.components.v2.component(
    "atelier_mask_painter",
    js=(ASSETS / "mask_painter.js").read_text(encoding="utf-8"),
    css=(ASSETS / "mask_painter.css").read_text(encoding="utf-8"),
)


def paint_mask(preview: PicturePreview, picture_id: str) -> bytes | None:
    """Show the picture with a brush over it. Returns the painted mask (a PNG the size of the
    picture, white where it should change), or None while nothing is painted."""
    result = _painter(
        key=f"mask-painter-{picture_id}",
        data={
            "picture_id": picture_id,
            "preview": "data:image/jpeg;base64," + base64.b64encode(preview.jpeg).decode(),
            "width": preview.width,
            "height": preview.height,
        },
        default={"mask": None},
        on_mask_change=_no_action,  # the painted mask is read on the next run
    )
    return mask_from_data_url(result.mask)


def mask_from_data_url(value: object) -> bytes | None:
    """The PNG bytes the painter sent; anything else counts as nothing painted. The service
    checks the PNG itself like any uploaded mask."""
    if not isinstance(value, str) or not value.startswith(MASK_PREFIX):
        return None
    try:
        return base64.b64decode(value[len(MASK_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        return None


def _no_action() -> None:
    pass
