"""Sentence embeddings: a batch of texts through an encoder, pooled and normalized.

This is what sentence-transformers does for all-MiniLM-L6-v2 and its kind (Transformer →
Pooling → Normalize), written out over transformers so no other library is needed: the
token vectors are pooled as the model's files say (mean over real tokens by default) and
scaled to length 1, so a dot product is the cosine similarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from webapp.backends.llm import EmbeddingModel


@dataclass(frozen=True)
class Embedded:
    vectors: np.ndarray  # float32 [texts, dimensions], each of length 1
    lengths: np.ndarray  # tokens read of each text
    limit: int  # the most tokens the model reads: a text that long was cut there

    def truncated(self, row: int) -> bool:
        return int(self.lengths[row]) >= self.limit


@torch.inference_mode()
def embed(model: EmbeddingModel, texts: list[str]) -> Embedded:
    """One forward pass for `texts` (the caller keeps batches small)."""
    encoded = model.tokenizer(
        texts,
        padding=True,
        truncation=True,
        max_length=model.max_length,
        return_tensors="pt",
        return_overflowing_tokens=False,
        return_length=True,
    )
    lengths = encoded.pop("length")
    encoded = {key: value.to(model.model.device) for key, value in encoded.items()}
    hidden = model.model(**encoded).last_hidden_state.float()
    mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    if model.pooling == "cls":
        pooled = hidden[:, 0]
    elif model.pooling == "max":
        pooled = hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values
    else:
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
    return Embedded(
        vectors=pooled.cpu().numpy().astype(np.float32, copy=False),
        lengths=lengths.cpu().numpy(),
        limit=model.max_length,
    )
