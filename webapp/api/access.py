"""Who is calling: the API key from `Authorization: Bearer <key>` (OpenAI clients) or HTTP
basic auth with the key as the password (AUTOMATIC1111 clients send `--api-auth` that way),
checked by the API keys service on every call. The key is never logged."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from webapp.api.config import ApiConfig
from webapp.api.job_waiting import ClientGone
from webapp.api.refusals import Refusal, refusal_of
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


Handler = Callable[[Request, User], Awaitable[Response]]


def keyed_route(
    config: ApiConfig,
    path: str,
    handler: Handler,
    method: str,
    answer_refusal: Callable[[Refusal], Response],
) -> Route:
    """A route whose handler gets the person the key belongs to; any refusal or error is
    answered in the protocol's own shape, and a client that left gets no answer."""

    async def endpoint(request: Request) -> Response:
        try:
            user = await caller(request, config)
            return await handler(request, user)
        except ClientGone:
            return Response(status_code=499)
        except Exception as error:
            return answer_refusal(refusal_of(error))

    return Route(config.path(path), endpoint, methods=[method])


async def shared_services(config: ApiConfig):
    """The app's services (started on first use), from the event loop without blocking it."""
    return await run_in_threadpool(config.services)
