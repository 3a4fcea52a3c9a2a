"""Request bodies: JSON objects of a bounded size, and their fields read with their types
checked. A wrong type is a ValidationError naming the field; the values themselves are
checked where the pages' are (the requests' `check()`, the services)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from webapp.errors import AtelierError, ValidationError

MAX_JSON_BYTES = 8 * 2**20  # chat and embedding bodies; picture bodies: see picture_body_limit


class BodyTooLarge(AtelierError):
    """The body is over the limit (413)."""


def picture_body_limit(upload_max_mb: int, pictures: int = 2) -> int:
    """Room for `pictures` uploads at the upload limit, base64-encoded, and the rest."""
    return pictures * (upload_max_mb * 2**20 * 4 // 3 + 4) + 2**20


async def read_json(request: Request, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The body as a JSON object; BodyTooLarge or ValidationError otherwise. It must say it
    is JSON: a page of another site can post a form to the API, but not JSON (which takes
    a preflight that this server never answers)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ValidationError(
            "Send the body as JSON, with the header Content-Type: application/json.", "body"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(_too_large(max_bytes))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge(_too_large(max_bytes))
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValidationError(
            f"The body is not valid JSON ({error}). Send a JSON object.", field="body"
        ) from None
    if not isinstance(data, dict):
        raise ValidationError("The body must be a JSON object.", field="body")
    return data


def _too_large(max_bytes: int) -> str:
    return f"The request is over {max_bytes / 2**20:.0f} MB. Send less in one request."


class Fields:
    """Typed access to a body's fields: absent or null gives the default."""

    def __init__(self, body: dict[str, Any]):
        self.body = body

    def present(self, name: str) -> bool:
        return self.body.get(name) is not None

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.body.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise _wrong(name, "a string", value)
        return value

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.body.get(name)
        if value is None:
            return default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong(name, "a whole number", value)
        return value

    def number(self, name: str, default: float | None = None) -> float | None:
        value = self.body.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong(name, "a number", value)
        return float(value)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.body.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise _wrong(name, "true or false", value)
        return value

    def strings(self, name: str, most: int) -> tuple[str, ...]:
        """A string or a list of strings (at most `most`)."""
        value = self.body.get(name)
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise _wrong(name, "a string or a list of strings", value)
        if len(items) > most:
            raise ValidationError(f"{name} takes at most {most} strings.", field=name)
        return tuple(items)

    def mapping(self, name: str) -> dict[str, Any]:
        value = self.body.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _wrong(name, "an object", value)
        return value

    def items(self, name: str) -> list[Any]:
        value = self.body.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise _wrong(name, "a list", value)
        return value


def _wrong(name: str, expected: str, value: Any) -> ValidationError:
    shown = json.dumps(value)[:40]
    return ValidationError(f"{name} must be {expected}, not {shown}.", field=name)
