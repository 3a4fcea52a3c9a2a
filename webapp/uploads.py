"""Pictures people upload: checked for size and pixel count before they are decoded."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from webapp.errors import ValidationError

MAX_UPLOAD_PIXELS = 40_000_000  # about 6300 × 6300; more is a decompression bomb here


def decode_upload(data: bytes, field: str, label: str, max_bytes: int) -> Image.Image:
    if len(data) > max_bytes:
        raise ValidationError(
            f"The {label} is {len(data) / 2**20:.1f} MB; the most is {max_bytes / 2**20:.0f} MB. "
            "Upload a smaller file.",
            field=field,
        )
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except (UnidentifiedImageError, OSError):
        raise ValidationError(
            f"The {label} is not a picture Atelier can read: upload a PNG, JPEG or WebP file.",
            field=field,
        ) from None
    width, height = image.size
    if width * height > MAX_UPLOAD_PIXELS:
        raise ValidationError(
            f"The {label} is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"the most is {MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels. Upload a smaller picture.",
            field=field,
        )
    try:
        image.load()
    except (OSError, SyntaxError, Image.DecompressionBombError, ValueError):
        raise ValidationError(
            f"The {label} is damaged or incomplete: save it again and upload it.", field=field
        ) from None
    return image
