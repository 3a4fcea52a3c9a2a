"""The API's clients for `atelier bench api`, in a process of their own as real clients are
(their HTTP and JSON work never competes with the server's threads for the interpreter).
Imports only httpx and the standard library: the process starts fast."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from webapp.bench.at_once import at_once


def serve_rounds(connection, url: str, keys: list[str]) -> None:
    """Run the rounds the parent asks for ((kind, body) over the pipe) until it sends None;
    each answer is (makespan, tokens, first-token seconds per client) or an error."""
    with httpx.Client(timeout=600, limits=httpx.Limits(max_connections=len(keys))) as client:
        while (asked := connection.recv()) is not None:
            kind, body = asked
            try:
                connection.send(_round(client, url, keys, kind, body))
            except Exception as error:  # the parent raises it
                connection.send(RuntimeError(f"{type(error).__name__}: {error}"))


def _round(client: httpx.Client, url: str, keys: list[str], kind: str, body: dict[str, Any]):
    run = _image if kind == "image" else _text
    makespan, results = at_once(lambda key: run(client, url, key, body), keys)
    return makespan, sum(r[0] for r in results), [r[1] for r in results if r[1] is not None]


def _image(client: httpx.Client, url: str, key: str, body: dict[str, Any]):
    answer = client.post(url + "/v1/images/generations", json=body, headers=_auth(key))
    answer.raise_for_status()
    if len(answer.json()["data"]) != 1:
        raise RuntimeError("an image is missing from the answer")
    return 0, None


def _text(client: httpx.Client, url: str, key: str, body: dict[str, Any]):
    asked = time.perf_counter()
    first, tokens = None, 0
    with client.stream(
        "POST", url + "/v1/chat/completions", json=body, headers=_auth(key)
    ) as answer:
        answer.raise_for_status()
        for line in answer.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                first = first or time.perf_counter() - asked
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return tokens, first


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
