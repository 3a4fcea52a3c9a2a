"""Stand-ins for the model adapters, for tests and for load benchmarks that measure the
engine and the services rather than a model: a slow image pipeline and a canned decoder."""

from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image


class CannedDecodeBatch:
    """A fake text decoder with DecodeBatch's interface: every sequence answers with the
    next canned reply, a word per step. `replies` is shared, like simonw/llm's enqueue.
    `answer(prompt_text)`, when set, writes the reply for a prompt instead; every prompt
    decoded is recorded in `prompts` (its words, as `prompt_ids` made them)."""

    replies: list[str] = []
    fail_steps = False
    answer = None  # a function of the prompt's text
    prompts: list[str] = []
    _words_of_ids: dict[int, str] = {}
    _ids_of_words: dict[str, int] = {}

    prefill_tokens = 1 << 20  # every prompt joins at once

    def __init__(self, text_model=None):
        self.sequences = []
        self.can_join = True
        self._words: dict = {}

    def __len__(self):
        return len(self.sequences)

    @classmethod
    def reset(cls):
        cls.replies, cls.answer, cls.prompts, cls.fail_steps = [], None, [], False

    def prompt_ids(self, messages):
        """One id per word of the messages (a word's id is the same every time)."""
        ids, known = [], type(self)._ids_of_words
        for message in messages:
            for word in message["content"].split():
                if word not in known:
                    known[word] = len(known)
                    type(self)._words_of_ids[known[word]] = word
                ids.append(known[word])
        return ids or [0]

    def add(self, sequences):
        for sequence in sequences:
            prompt = " ".join(self._words_of_ids.get(i, "?") for i in sequence.prompt_ids)
            type(self).prompts.append(prompt)
            if type(self).answer is not None:
                reply = type(self).answer(prompt)
            else:
                reply = self.replies.pop(0) if self.replies else "canned answer"
            self._words[sequence.key] = reply.split(" ")
            self.sequences.append(sequence)
            self._next_word(sequence)

    def remove(self, keys):
        dropped = [s for s in self.sequences if s.key in keys]
        self.sequences = [s for s in self.sequences if s.key not in keys]
        return dropped

    def step(self):
        if self.fail_steps:
            raise RuntimeError("injected decoder failure")
        for sequence in self.sequences:
            if not sequence.finished:
                self._next_word(sequence)

    def visible_text(self, sequence):
        return sequence.text

    def _next_word(self, sequence):
        words = self._words[sequence.key]
        if len(sequence.generated) >= len(words):
            sequence.finish_reason = "eos"
            return
        word = words[len(sequence.generated)]
        sequence.generated.append(len(sequence.generated))
        sequence.text += ("" if len(sequence.generated) == 1 else " ") + word
        if len(sequence.generated) >= sequence.sampling.max_new_tokens:
            sequence.finish_reason = "length"


class SlowImages:
    """A fake image runner that takes `step_seconds` per denoising step, as a real batch
    does, calling the engine's step callback after each."""

    def __init__(self, steps=40, step_seconds=0.02, full_size=False):
        self.steps, self.step_seconds, self.full_size = steps, step_seconds, full_size
        self.calls: list[list[str]] = []

    def __call__(self, pipe, rows, settings, on_step):
        self.calls.append([row.prompt for row in rows])
        for step in range(1, self.steps + 1):
            time.sleep(self.step_seconds)
            if on_step(step, torch.zeros(len(rows), 4, 8, 8)):
                break
        size = (settings.width, settings.height) if self.full_size else (8, 8)
        noise = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), np.uint8)
        return [Image.fromarray(noise) for _ in rows]
