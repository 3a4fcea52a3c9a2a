"""Pictures people upload: checked for size, format, pixel count and shape before they are
decoded, so no upload can make the server allocate more than a sane picture would."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from webapp.errors import ValidationError

MAX_UPLOAD_PIXELS = 40_000_000  # about 6300 × 6300; more is a decompression bomb here
# Longer side over shorter side. Pictures are scaled to the model's pixel count; a thinner
# one would come out with a side below the smallest a model makes, or blow up in memory.
MAX_ASPECT_RATIO = 8
PICTURE_FORMATS = ("PNG", "JPEG", "WEBP")  # what the content must be, whatever the name says


def decode_upload(data: bytes, field: str, label: str, max_bytes: int) -> Image.Image:
    """The picture in `data`, decoded, or a ValidationError for `field` saying what to do."""
    # 1. Size on disk, before anything is read.
    if len(data) > max_bytes:
        raise ValidationError(
            f"The {label} is {len(data) / 2**20:.1f} MB; the most is {max_bytes / 2**20:.0f} MB. "
            "Upload a smaller file.",
            field=field,
        )
    # 2. The header only: the format from the content, then the pixel count and the shape.
    image = _open_header(data, field, label)
    width, height = image.size
    if width * height > MAX_UPLOAD_PIXELS:
        raise ValidationError(
            f"The {label} is {width}×{height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"the most is {MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels. Upload a smaller picture.",
            field=field,
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ValidationError(
            f"The {label} is {width}×{height} pixels: too long and thin to work with. "
            f"Crop it so the longer side is at most {MAX_ASPECT_RATIO} times the shorter one.",
            field=field,
        )
    # 3. The pixels.
    try:
        image.load()
    except (OSError, SyntaxError, Image.DecompressionBombError, ValueError):
        raise ValidationError(
            f"The {label} is damaged or incomplete: save it again and upload it.", field=field
        ) from None
    return image


def _open_header(data: bytes, field: str, label: str) -> Image.Image:
    not_a_picture = ValidationError(
        f"The {label} is not a picture Atelier can read: upload a PNG, JPEG or WebP file.",
        field=field,
    )
    if not data:
        raise not_a_picture
    try:
        with warnings.catch_warnings():
            # Pillow warns above 89 megapixels; the pixel check after this one says it better.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=PICTURE_FORMATS)
    except Image.DecompressionBombError:
        raise ValidationError(
            f"The {label} declares more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, "
            f"so it was not opened; the most is {MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels. "
            "Upload a smaller picture.",
            field=field,
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise not_a_picture from None
