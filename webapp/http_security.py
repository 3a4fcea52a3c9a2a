"""HTTP hardening in front of the app: headers that keep pages out of other sites' frames and
images to the app's own origin, and the server's metrics kept to the machine itself.

A plain ASGI middleware (Starlette types only), installed by `serve.py` through st.App.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No framing by any site, and images from the app itself only: text a model writes cannot
# make the browser fetch an outside address, even if markdown let an image through.
CONTENT_SECURITY_POLICY = "frame-ancestors 'none'; img-src 'self' data: blob:"
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# Streamlit's Prometheus metrics (sessions, memory, cache sizes): for the machine itself.
LOCAL_ONLY_PATHS = ("/_stcore/metrics",)
LOCAL_ADDRESSES = frozenset({"127.0.0.1", "::1"})


def is_local_only(path: str) -> bool:
    """Also under a base URL path (/atelier/_stcore/metrics) and with a trailing slash."""
    trimmed = "/" + path.strip("/")
    return any(trimmed == p or trimmed.endswith(p) for p in LOCAL_ONLY_PATHS)


FORWARDING_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip")


def _forwarded(scope: Scope) -> bool:
    """Whether a proxy passed this request on for someone else: then it is not the machine
    itself asking, even when the connection comes from 127.0.0.1."""
    return any(name.lower() in FORWARDING_HEADERS for name, _ in scope.get("headers", []))


class SecurityMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("", 0)
        if is_local_only(scope["path"]) and (client[0] not in LOCAL_ADDRESSES or _forwarded(scope)):
            await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
