"""Text models served elsewhere: OpenAI-compatible servers (vLLM, llama.cpp's server…)
that Atelier sends its text jobs to, keeping the queue, fairness and accounts its own.

In atelier.toml:

    [[text_servers]]
    model = "llama-3.1-8b"                       # the name people pick
    urls = ["http://10.0.0.5:8000/v1", "http://10.0.0.6:8000/v1"]   # replicas
    served_model = "meta-llama/Llama-3.1-8B-Instruct"   # the name the servers know (optional)
    max_concurrency = 16                         # requests each replica is sent at once
    tokenizer = "llama-3.1-8b-tokenizer"         # optional: a folder in the models dir
                                                 # with the tokenizer, to count tokens here

or the same list as JSON in ATELIER_TEXT_SERVERS.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
KEYS = {"model", "urls", "served_model", "max_concurrency", "tokenizer", "api_key"}


@dataclass(frozen=True)
class TextServer:
    model: str
    urls: tuple[str, ...]
    served_model: str = ""
    max_concurrency: int = 8
    tokenizer: str = ""
    api_key: str = ""

    @property
    def name_on_server(self) -> str:
        return self.served_model or self.model


def parse_text_servers(value: Any) -> tuple[TextServer, ...]:
    """A list of tables (TOML) or its JSON text (an environment variable)."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as error:
            raise ValueError(f"a JSON list of servers ({error.msg})") from None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError('a list of tables like [[text_servers]] model = "…" urls = ["…"]')
    servers = tuple(_server(item) for item in value)
    names = [server.model for server in servers]
    if len(set(names)) != len(names):
        raise ValueError("one entry per model name")
    return servers


def _server(item: dict[str, Any]) -> TextServer:
    unknown = set(item) - KEYS
    if unknown:
        raise ValueError(f"text server keys {sorted(KEYS)}; not {sorted(unknown)}")
    model = str(item.get("model", ""))
    if not NAME.match(model):
        raise ValueError("a model name of letters, digits, '.', '_' and '-' for each server")
    urls = item.get("urls")
    if isinstance(urls, str):
        urls = [urls]
    if not urls or not all(_is_http(url) for url in urls):
        raise ValueError(f"http(s) URLs (ending in /v1) for {model}")
    concurrency = item.get("max_concurrency", 8)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValueError(f"a max_concurrency of 1 or more for {model}")
    tokenizer = str(item.get("tokenizer", ""))
    if tokenizer and not NAME.match(tokenizer):
        raise ValueError(f"a tokenizer folder name (not a path) for {model}")
    return TextServer(
        model=model,
        urls=tuple(url.rstrip("/") for url in urls),
        served_model=str(item.get("served_model", "")),
        max_concurrency=concurrency,
        tokenizer=tokenizer,
        api_key=str(item.get("api_key", "")),
    )


def _is_http(url: Any) -> bool:
    parts = urlsplit(str(url))
    return parts.scheme in ("http", "https") and bool(parts.netloc)
