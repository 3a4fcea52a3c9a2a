"""A key/value cache for the decode batch that grows in place.

transformers' DynamicCache appends each new token with `torch.cat`, copying every layer's
whole cache at every step: for eight sequences of a few hundred tokens that copy costs as
much as the attention itself on a CPU. Here each layer keeps its keys and values in
buffers with room to spare; a step writes one column, and the cache is copied only when
the room runs out (growing by a quarter) or when sequences join or leave.
"""

from __future__ import annotations

import torch
from transformers import Cache, DynamicCache
from transformers.cache_utils import DynamicLayer

MIN_ROOM = 128  # columns added at least when a buffer grows


def make_cache(config) -> Cache:
    """A growing cache when every layer is plain attention; otherwise transformers' own
    (sliding-window and other layers keep their own rules, and sequences cannot join)."""
    dynamic = DynamicCache(config=config)
    if dynamic.layers and all(type(layer) is DynamicLayer for layer in dynamic.layers):
        return Cache(layers=[GrowingLayer() for _ in dynamic.layers])
    return dynamic


def can_merge(cache: Cache) -> bool:
    return all(isinstance(layer, GrowingLayer) for layer in cache.layers)


class GrowingLayer(DynamicLayer):
    """One layer's cache: `keys` and `values` are views of the filled part of buffers
    shaped [batch, heads, room, head_dim]."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self._key_room = key_states.new_empty(_with_room(key_states, key_states.shape[-2]))
        self._value_room = value_states.new_empty(_with_room(value_states, key_states.shape[-2]))
        self.length = 0
        self.is_initialized = True

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        added = key_states.shape[-2]
        if self.length + added > self._key_room.shape[-2]:
            self._grow(self.length + added)
        end = self.length + added
        self._key_room[..., self.length : end, :] = key_states
        self._value_room[..., self.length : end, :] = value_states
        self._show(end)
        return self.keys, self.values

    def replace(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """New contents (after sequences joined), with room to grow."""
        if not self.is_initialized:
            self.lazy_initialization(keys, values)
        self._key_room = keys.new_empty(_with_room(keys, keys.shape[-2]))
        self._value_room = values.new_empty(_with_room(values, values.shape[-2]))
        self._key_room[..., : keys.shape[-2], :] = keys
        self._value_room[..., : values.shape[-2], :] = values
        self._show(keys.shape[-2])

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            self._key_room = self._key_room[indices]
            self._value_room = self._value_room[indices]
            self._show(self.length)

    def drop_leading(self, count: int) -> None:
        """Forget the first `count` columns (padding no sequence needs any more)."""
        self._key_room = self._key_room[..., count:, :]
        self._value_room = self._value_room[..., count:, :]
        self._show(self.length - count)

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def _grow(self, needed: int) -> None:
        filled_keys, filled_values = self.keys, self.values
        self._key_room = filled_keys.new_empty(_with_room(filled_keys, needed))
        self._value_room = filled_values.new_empty(_with_room(filled_values, needed))
        self._key_room[..., : self.length, :] = filled_keys
        self._value_room[..., : self.length, :] = filled_values

    def _show(self, length: int) -> None:
        self.length = length
        self.keys = self._key_room[..., :length, :]
        self.values = self._value_room[..., :length, :]


def _with_room(states: torch.Tensor, needed: int) -> tuple[int, ...]:
    batch, heads, _, head_dim = states.shape
    return (batch, heads, needed + max(MIN_ROOM, needed // 4), head_dim)
