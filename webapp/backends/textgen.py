"""Batched decoding for causal LMs: many requests share each forward pass, and new requests
join a running batch at the next token (prefilled together) instead of waiting for the
batch to finish.

The batch keeps one KV cache that grows in place, left-padded, with an attention mask that
hides the padding and explicit position ids, so every sequence sees exactly its own tokens.
Each new token is detokenized once, incrementally. A sequence may ask for a tuned voice's
adapter: each row of the batch then runs with its own (`voice_adapters.rows_use`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
from tokenizers.decoders import DecodeStream
from transformers import Cache

from webapp.backends.kv_cache import GrowingLayer, can_merge, make_cache
from webapp.backends.llm import TextModel
from webapp.backends.voice_adapters import rows_use

log = logging.getLogger(__name__)


@dataclass
class Sampling:
    max_new_tokens: int
    temperature: float
    top_p: float
    seed: int
    stop: tuple[str, ...] = ()
    # Above 1, tokens already in the prompt or the answer become less likely (small models
    # otherwise loop on one sentence).
    repetition_penalty: float = 1.0


@dataclass
class Sequence:
    """One request's decoding state."""

    key: Any
    prompt_ids: list[int]
    sampling: Sampling
    generated: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None  # stop | length | eos | error
    error: str | None = None  # what went wrong, when finish_reason is "error"
    generator: torch.Generator | None = None
    # Incremental detokenization: a stream in Rust where the tokenizer allows it, else a
    # window over `generated`.
    decoder: DecodeStream | None = None
    prefix: int = 0
    read: int = 0
    adapter: str | None = None  # a tuned voice's adapter, attached to the model by name

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


# Prompt tokens read in one prefill pass. A CPU gains little per token from passes of more
# than a few prompts, so people who arrive together join a few at a time and the first
# answers start before every prompt is read (8 people's 159-token chats on 2 cores: first
# token median 1.58 s instead of 2.13 s, 0.98x the tokens/s); an accelerator reads many
# prompts in the time of one.
CPU_PREFILL_TOKENS = 512
ACCELERATOR_PREFILL_TOKENS = 8192


class DecodeBatch:
    def __init__(self, text_model: TextModel):
        self.model = text_model.model
        self.tokenizer = text_model.tokenizer
        self.device = self.model.device
        self.sequences: list[Sequence] = []
        self._cache: Cache | None = None
        self._mask: torch.Tensor | None = None  # [batch, cached length], 1 = real token
        eos = self.model.generation_config.eos_token_id
        self._eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        # The fast tokenizer's own streaming decoder gives the same text as decoding the
        # whole answer, unless the tokenizer cleans up spaces after decoding.
        backend = getattr(self.tokenizer, "_tokenizer", None)
        self._stream_backend = (
            backend if not getattr(self.tokenizer, "clean_up_tokenization_spaces", False) else None
        )

    def __len__(self) -> int:
        return len(self.sequences)

    @property
    def prefill_tokens(self) -> int:
        """How many prompt tokens to prefill in one pass (at least one whole prompt)."""
        return CPU_PREFILL_TOKENS if self.device.type == "cpu" else ACCELERATOR_PREFILL_TOKENS

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(encoded["input_ids"])

    @property
    def can_join(self) -> bool:
        """New sequences can join mid-flight when every cache layer is plain attention."""
        return self._cache is None or can_merge(self._cache)

    # -- adding and removing sequences ----------------------------------------------------

    @torch.inference_mode()
    def add(self, sequences: list[Sequence]) -> None:
        """Prefill new sequences and merge them into the batch; each gets its first token."""
        for sequence in sequences:
            sequence.generator = torch.Generator(self.device).manual_seed(sequence.sampling.seed)
            if self._stream_backend is not None:
                sequence.decoder = DecodeStream(skip_special_tokens=True)
        longest = max(len(s.prompt_ids) for s in sequences)
        pad = self.tokenizer.pad_token_id or 0
        ids = torch.tensor(
            [[pad] * (longest - len(s.prompt_ids)) + s.prompt_ids for s in sequences],
            device=self.device,
        )
        mask = torch.tensor(
            [[0] * (longest - len(s.prompt_ids)) + [1] * len(s.prompt_ids) for s in sequences],
            device=self.device,
        )
        cache = make_cache(self.model.config)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        with rows_use(self.model, [s.adapter for s in sequences]):
            logits = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,  # the next token's only: not a vocabulary row per prompt token
            ).logits[:, -1, :]
        self._merge(cache, mask, sequences)
        self._accept(sequences, logits)

    def _merge(self, cache: Cache, mask: torch.Tensor, sequences: list[Sequence]) -> None:
        if self._cache is None:
            self._cache, self._mask, self.sequences = cache, mask, list(sequences)
            return
        length = max(self._mask.shape[1], mask.shape[1])
        for old, new in zip(self._cache.layers, cache.layers, strict=True):
            old.replace(
                torch.cat([_pad_left(old.keys, length), _pad_left(new.keys, length)]),
                torch.cat([_pad_left(old.values, length), _pad_left(new.values, length)]),
            )
        self._mask = torch.cat(
            [_pad_left(self._mask, length, dim=1), _pad_left(mask, length, dim=1)]
        )
        self.sequences.extend(sequences)

    def remove(self, keys: set[Any]) -> list[Sequence]:
        """Drop sequences (finished or cancelled) from the batch; returns those dropped."""
        dropped = [s for s in self.sequences if s.key in keys]
        if not dropped:
            return []
        keep = [i for i, s in enumerate(self.sequences) if s.key not in keys]
        self.sequences = [self.sequences[i] for i in keep]
        if not keep:
            self._cache = self._mask = None
            return dropped
        index = torch.tensor(keep, device=self.device)
        self._cache.batch_select_indices(index)
        self._mask = self._mask[index]
        self._trim_padding()
        return dropped

    def _trim_padding(self) -> None:
        """Cut columns that are padding for every remaining sequence."""
        real = self._mask.any(dim=0).nonzero()
        start = int(real[0]) if len(real) else 0
        if start:
            for layer in self._cache.layers:
                if isinstance(layer, GrowingLayer):
                    layer.drop_leading(start)
                else:
                    layer.keys = layer.keys[..., start:, :]
                    layer.values = layer.values[..., start:, :]
            self._mask = self._mask[:, start:]

    # -- decoding -------------------------------------------------------------------------

    @torch.inference_mode()
    def step(self) -> None:
        """One new token for every unfinished sequence."""
        if not self.sequences:
            return
        last = torch.tensor([[s.generated[-1]] for s in self.sequences], device=self.device)
        self._mask = torch.cat([self._mask, self._mask.new_ones(len(self.sequences), 1)], dim=1)
        positions = self._mask.sum(dim=1, keepdim=True) - 1
        with rows_use(self.model, [s.adapter for s in self.sequences]):
            logits = self.model(
                input_ids=last,
                attention_mask=self._mask,
                position_ids=positions,
                cache=self._cache,
                use_cache=True,
            ).logits[:, -1, :]
        self._accept(self.sequences, logits)

    def _accept(self, sequences: list[Sequence], logits: torch.Tensor) -> None:
        _penalize_repeats(sequences, logits)
        greedy = logits.argmax(dim=-1).tolist()  # one device sync for every greedy row
        for sequence, row, best in zip(sequences, logits, greedy, strict=True):
            if sequence.finished:
                continue
            try:
                self._accept_one(sequence, row, best)
            except Exception as error:  # one sequence's fault ends that sequence only
                log.exception("sequence %s failed", sequence.key)
                sequence.finish_reason, sequence.error = "error", str(error)

    def _accept_one(self, sequence: Sequence, logits: torch.Tensor, best: int) -> None:
        sampling = sequence.sampling
        token = best if sampling.temperature <= 0 else _sample(logits, sampling, sequence.generator)
        if token in self._eos:
            self._finish(sequence, "eos")
            return
        sequence.generated.append(token)
        self._detokenize(sequence)
        if not sequence.finished and len(sequence.generated) >= sampling.max_new_tokens:
            self._finish(sequence, "length")

    def _finish(self, sequence: Sequence, reason: str) -> None:
        """The final text: the whole answer decoded once (a held-back partial character
        included), cut at a stop string."""
        sequence.text = self.tokenizer.decode(sequence.generated, skip_special_tokens=True)
        sequence.finish_reason = reason
        _cut_at_stop(sequence)

    def _detokenize(self, sequence: Sequence) -> None:
        """Append the new token's text (a token that ends mid-character waits for the next
        one): one streaming step, or else a decode of a short window, never the whole."""
        if sequence.decoder is not None:
            piece = sequence.decoder.step(self._stream_backend, sequence.generated[-1])
            if piece:
                sequence.text += piece
                _cut_at_stop(sequence)
            return
        ids = sequence.generated
        before = self.tokenizer.decode(
            ids[sequence.prefix : sequence.read], skip_special_tokens=True
        )
        after = self.tokenizer.decode(ids[sequence.prefix :], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            sequence.text += after[len(before) :]
            sequence.prefix, sequence.read = sequence.read, len(ids)
            _cut_at_stop(sequence)

    def visible_text(self, sequence: Sequence) -> str:
        """Text safe to show while streaming: a possible start of a stop string is held back."""
        if sequence.finished:
            return sequence.text
        text = sequence.text
        for stop in sequence.sampling.stop:
            for size in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:size]):
                    return text[:-size]
        return text


def _cut_at_stop(sequence: Sequence) -> None:
    text = sequence.text
    hits = [text.find(stop) for stop in sequence.sampling.stop if stop and stop in text]
    if hits:
        sequence.finish_reason = "stop"
        sequence.text = text[: min(hits)]


def _pad_left(tensor: torch.Tensor, length: int, dim: int = -2) -> torch.Tensor:
    missing = length - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _penalize_repeats(sequences: list[Sequence], logits: torch.Tensor) -> None:
    """The repetition penalty as transformers applies it: a token already seen has its
    score divided by the penalty (multiplied, when negative)."""
    for row, sequence in enumerate(sequences):
        penalty = sequence.sampling.repetition_penalty
        if penalty == 1.0 or sequence.finished:
            continue
        seen = torch.tensor(
            sorted({*sequence.prompt_ids, *sequence.generated}), device=logits.device
        )
        scores = logits[row, seen]
        logits[row, seen] = torch.where(scores > 0, scores / penalty, scores * penalty)


class SamplingError(ValueError):
    """The model's scores for the next token cannot be sampled from (NaN or infinite)."""


def _sample(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> int:
    probs = torch.softmax(logits.float() / sampling.temperature, dim=-1)
    if not bool(torch.isfinite(probs).all()):
        raise SamplingError("the next-token probabilities are not finite numbers")
    if sampling.top_p < 1:
        sorted_probs, order = probs.sort(descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs > sampling.top_p
        sorted_probs[outside] = 0
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))
