"""Token questions from page threads: how many tokens a chat takes, how long a model's
context is, which words of a picture prompt the text encoder never reads.

The answers come from tokenizers of the engine's own, loaded from the model's files
without its weights and never shared with the worker: a fast tokenizer's padding and
truncation state is not safe to share between threads, and loading weights (or running
torch) in a page thread slows the worker for good.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from jinja2 import TemplateError

from webapp.errors import ModelLoadError, ValidationError
from webapp.registry import ModelEntry, Registry
from webapp.text_servers import TextServer

DEFAULT_CONTEXT_LENGTH = 2048
KEEP_TOKENIZERS = 16
WORDS_PER_TOKEN = 0.75  # a rough English average, for telling people how much to cut
# No tokenizer makes more than one token per byte of text (byte-level BPE merges bytes,
# SentencePiece falls back to them); a chat template adds a few of its own.
TEMPLATE_TOKENS = 256  # role markers, a default system prompt
MESSAGE_TOKENS = 16


@dataclass
class _Cached:
    entry: ModelEntry
    tokenizer: Any
    context_length: int
    lock: AbstractContextManager[Any]  # a local tokenizer's; a server counts many at once


@dataclass(frozen=True)
class DroppedWords:
    """The words past what a picture model's text encoder reads."""

    limit: int  # tokens read
    words: str


class TokenCounter:
    def __init__(self, registry: Callable[[], Registry]):
        self._registry = registry
        self._cached: OrderedDict[str, _Cached] = OrderedDict()
        self._lock = threading.Lock()

    def chat_ids(
        self, model: str, messages: list[dict[str, str]], continues: bool = False
    ) -> list[int]:
        """The token ids of a chat, as the model will read it (its chat template applied).
        `continues`: the last message is an answer begun, left open for the model to go on."""
        cached = self._get(model)
        try:
            with cached.lock:
                encoded = cached.tokenizer.apply_chat_template(
                    messages,
                    add_generation_prompt=not continues,
                    continue_final_message=continues,
                    tokenize=True,
                    return_dict=True,
                )
        except TemplateError as error:  # a sandbox refusal, or a broken template
            raise ModelLoadError(
                f"The chat template that comes with {model!r} cannot be used ({error}). "
                "Tell your Atelier admin: the model's tokenizer_config.json needs fixing.",
                field="model",
            ) from None
        return list(encoded["input_ids"])

    def count(self, model: str, texts: list[str]) -> list[int]:
        """How many tokens each text takes, as plain text (no chat template, no special
        tokens): for sizing what a prompt quotes."""
        cached = self._get(model)
        if not texts:
            return []
        with cached.lock:
            encoded = cached.tokenizer(texts, add_special_tokens=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def context_length(self, model: str) -> int:
        return self._get(model).context_length

    def counted_by_server(self, model: str) -> bool:
        """Whether counting asks the server that serves `model` (no tokenizer folder here)."""
        return isinstance(self._get(model).tokenizer, ServerTokenizer)

    def dropped_words(self, model: str, prompt: str) -> DroppedWords | None:
        """The words of `prompt` a picture model will not read, or None when it reads all."""
        cached = self._get(model)
        if cached.tokenizer is None:
            return None
        with cached.lock:
            tokenizer = cached.tokenizer
            ids = tokenizer(prompt, truncation=False, verbose=False).input_ids
            limit = tokenizer.model_max_length
            if len(ids) <= limit:
                return None
            # From the start of the word the cut falls in: CLIP's tokens end words with </w>.
            start = limit - 1
            tokens = tokenizer.convert_ids_to_tokens(ids[: limit - 1])
            while start > 1 and not tokens[start - 1].endswith("</w>"):
                start -= 1
            words = tokenizer.decode(ids[start:-1], skip_special_tokens=True).strip()
        return DroppedWords(limit=limit - 2, words=words)

    def _get(self, model: str) -> _Cached:
        registry = self._registry()
        entry = registry.get(model)
        with self._lock:
            cached = self._cached.get(model)
            if cached is not None and cached.entry == entry:
                self._cached.move_to_end(model)
                return cached
        loaded = _load(entry, registry)
        with self._lock:
            self._cached[model] = loaded
            while len(self._cached) > KEEP_TOKENIZERS:
                self._cached.popitem(last=False)
        return loaded


def _load(entry: ModelEntry, registry: Registry) -> _Cached:
    if entry.format == "remote" and entry.server and not entry.server.tokenizer:
        tokenizer = ServerTokenizer(entry.server)
        return _Cached(entry, tokenizer, tokenizer.context_length(), nullcontext())
    if entry.kind == "image":
        return _Cached(entry, _clip_tokenizer(entry, registry), 0, threading.Lock())
    if entry.kind != "text":
        raise ValidationError(f"{entry.name!r} is not a text or image model.", field="model")
    from transformers import AutoConfig, AutoTokenizer

    where, options = str(entry.path), {"local_files_only": True, "trust_remote_code": False}
    if entry.format == "gguf":
        where, options = str(entry.path.parent), {**options, "gguf_file": entry.path.name}
    tokenizer = AutoTokenizer.from_pretrained(where, **options)
    if entry.format == "remote":  # a tokenizer folder beside a model served elsewhere
        length = ServerTokenizer(entry.server).context_length()
    else:
        config = AutoConfig.from_pretrained(where, **options)
        length = getattr(config, "max_position_embeddings", None) or DEFAULT_CONTEXT_LENGTH
    return _Cached(entry, tokenizer, int(length), threading.Lock())


def surely_fits(messages: list[dict[str, str]], new_tokens: int, limit: int) -> bool:
    """Whether a chat and its answer fit a context of `limit` tokens whatever the tokenizer,
    so that no server need be asked to count them (it still refuses what does not fit)."""
    most = TEMPLATE_TOKENS + sum(MESSAGE_TOKENS + len(m["content"].encode()) for m in messages)
    return most + new_tokens <= limit


def too_long_message(model: str, limit: int, prompt: int | None, new_tokens: int) -> str:
    """What to tell a person whose input and answer do not fit `model`'s context."""
    if prompt is None:  # the server said so, without a count
        return (
            f"This is too long for {model}: it reads at most {limit:,} tokens, the input and "
            "the answer together. Cut some of the input, or ask for a shorter answer."
        )
    over = prompt + new_tokens - limit
    return (
        f"This is too long for {model}: the input is {prompt:,} tokens and the answer may "
        f"take {new_tokens:,}, but the model reads at most {limit:,}. Cut about {over:,} "
        f"tokens (roughly {int(over * WORDS_PER_TOKEN):,} words) from the input, or ask for a "
        "shorter answer."
    )


class ServerTokenizer:
    """Token counts from the server that serves the model (vLLM's /tokenize), for a model
    with no tokenizer folder here: the same chat template and tokenizer as the answers."""

    def __init__(self, server: TextServer):
        self.server = server

    def apply_chat_template(self, messages: list[dict[str, str]], **_: Any) -> dict[str, Any]:
        return {"input_ids": self._ask(messages)[0]}

    def context_length(self) -> int:
        return self._ask([{"role": "user", "content": "hello"}])[1] or DEFAULT_CONTEXT_LENGTH

    def _ask(self, messages: list[dict[str, str]]) -> tuple[list[int], int | None]:
        from webapp.backends import openai_server

        for url in self.server.urls:
            try:
                return openai_server.count_chat_tokens(
                    url, self.server.name_on_server, messages, self.server.api_key
                )
            except openai_server.ServerDown:
                continue  # the next replica
            except openai_server.ServerRefused as error:
                raise ModelLoadError(
                    f"The text server for {self.server.model!r} refused to count tokens "
                    f"({error}). Tell your Atelier admin: check the served model's name.",
                    field="model",
                ) from None
        raise ModelLoadError(
            f"No text server for {self.server.model!r} is answering at the moment. Try again "
            "in a minute; if it keeps failing, tell your Atelier admin.",
            field="model",
        )


def _clip_tokenizer(entry: ModelEntry, registry: Registry) -> Any:
    """The picture model's first text-encoder tokenizer (the one its pipeline uses), or None
    for a single-file checkpoint with no folder of its family to borrow it from."""
    from transformers import CLIPTokenizer

    folder = entry.path if entry.format == "diffusers" else registry.config_folder_for(entry)
    if folder is None:
        return None
    return CLIPTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
