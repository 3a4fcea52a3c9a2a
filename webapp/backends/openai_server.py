"""An OpenAI-compatible text server (vLLM, llama.cpp's server…): streamed chat completions,
token counts and a health check, over HTTP. It knows nothing of queues."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx

CONNECT_SECONDS = 5
READ_SECONDS = 120  # the longest wait for the next piece of an answer (a long prefill)
MAX_CONNECTIONS = 512  # open at once to all servers: every answer streams on its own
# An idle connection is dropped before the server would close it (uvicorn, under vLLM, does
# after 5 s), so a request never goes out on a connection that is closing.
KEEPALIVE_SECONDS = 2

_client: httpx.Client | None = None
_client_lock = threading.Lock()


class ServerDown(Exception):
    """The server did not answer, or broke off: another replica may."""


class ServerRefused(Exception):
    """The server answered with an error about the request itself (4xx)."""


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(READ_SECONDS, connect=CONNECT_SECONDS)


def client() -> httpx.Client:
    """The process's one client for text servers: connections kept open and reused, and no
    client (with its TLS set-up, which holds the interpreter for a while) made per answer."""
    global _client
    with _client_lock:
        if _client is None:
            limits = httpx.Limits(
                max_connections=MAX_CONNECTIONS,
                max_keepalive_connections=64,
                keepalive_expiry=KEEPALIVE_SECONDS,
            )
            _client = httpx.Client(timeout=_timeout(), limits=limits)
        return _client


def stream_chat(url: str, body: dict[str, Any], api_key: str = "") -> Iterator[dict[str, Any]]:
    """The chunks of a streamed chat completion, as dicts. Closing the iterator closes the
    connection, which makes the server stop working on it."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    try:
        with client().stream(
            "POST", f"{url}/chat/completions", json=body, headers=_headers(api_key)
        ) as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            done = False
            for line in response.iter_lines():  # read to the end: the connection is reused
                if done or not line.startswith("data:"):
                    continue
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    done = True
                    continue
                yield json.loads(data)
    except (httpx.TransportError, json.JSONDecodeError) as error:
        raise ServerDown(f"{url}: {type(error).__name__}: {error}") from None


def count_chat_tokens(
    url: str, model: str, messages: list[dict[str, str]], api_key: str = ""
) -> tuple[list[int], int | None]:
    """The chat's token ids as the server's tokenizer makes them (its chat template applied),
    and the longest context it serves; vLLM's /tokenize."""
    root = url.removesuffix("/v1")
    body = {"model": model, "messages": messages, "add_generation_prompt": True}
    try:
        response = client().post(f"{root}/tokenize", json=body, headers=_headers(api_key))
    except httpx.TransportError as error:
        raise ServerDown(f"{url}: {type(error).__name__}: {error}") from None
    if response.status_code >= 400:
        _raise_for(response)
    answer = response.json()
    return list(answer.get("tokens", [])), answer.get("max_model_len")


def served_models(url: str, api_key: str = "") -> list[str]:
    """The model names the server serves (GET /models): a health check."""
    try:
        response = client().get(f"{url}/models", headers=_headers(api_key), timeout=CONNECT_SECONDS)
    except httpx.TransportError as error:
        raise ServerDown(f"{url}: {type(error).__name__}: {error}") from None
    if response.status_code >= 400:
        _raise_for(response)
    try:
        return [item["id"] for item in response.json()["data"]]
    except (ValueError, KeyError, TypeError):
        raise ServerDown(f"{url} does not speak the OpenAI API (no model list).") from None


def _raise_for(response: httpx.Response) -> None:
    try:
        body = response.json()
        error = body.get("error")
        detail = (error.get("message") if isinstance(error, dict) else error) or body.get("message")
    except (ValueError, AttributeError):
        detail = None
    detail = detail or response.text
    detail = str(detail).strip()[:300]
    if 400 <= response.status_code < 500:
        raise ServerRefused(f"{response.status_code}: {detail}")
    raise ServerDown(f"{response.status_code}: {detail}")
