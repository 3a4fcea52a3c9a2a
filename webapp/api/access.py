"""Who is calling: the API key from `Authorization: Bearer <key>` (OpenAI clients) or HTTP
basic auth with the key as the password (AUTOMATIC1111 clients send `--api-auth` that way),
checked by the API keys service on every call. The key is never logged."""

from __future__ import annotations

import base64
import binascii

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from webapp.api.config import ApiConfig
from webapp.users import User

MAX_HEADER_CHARS = 1024


def key_of(request: Request) -> str | None:
    """The key the request carries, or None."""
    header = request.headers.get("authorization", "")
    if not header or len(header) > MAX_HEADER_CHARS:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


async def caller(request: Request, config: ApiConfig) -> User:
    """The person the request's key belongs to; Unauthenticated otherwise (recorded)."""
    address = request.client.host if request.client else "unknown"
    keys = config.team().api_keys
    return await run_in_threadpool(keys.person_for, key_of(request), address)
