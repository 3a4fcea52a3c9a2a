"""The text decoder: sequences that decode together come out exactly as they would alone."""

from __future__ import annotations

import pytest
import torch

from webapp.backends.llm import load_text_model
from webapp.backends.textgen import DecodeBatch, Sampling, Sequence
from webapp.registry import discover
from webapp.settings import Settings


@pytest.fixture(scope="module")
def tiny_llm(tiny_models_dir):
    entry = discover(Settings(models_dir=tiny_models_dir)).get("tiny-llm")
    return load_text_model(entry, torch.device("cpu"), torch.float32)


def prompt(tiny_llm, words: str) -> list[int]:
    return DecodeBatch(tiny_llm).prompt_ids([{"role": "user", "content": words}])


def sequence(tiny_llm, key, words, new_tokens=12, temperature=0.0, seed=0, stop=()):
    sampling = Sampling(new_tokens, temperature, 0.9, seed, stop)
    return Sequence(key=key, prompt_ids=prompt(tiny_llm, words), sampling=sampling)


def run_until_done(batch: DecodeBatch) -> dict:
    done = {}
    while batch.sequences:
        finished = {s.key for s in batch.sequences if s.finished}
        for s in batch.remove(finished):
            done[s.key] = s
        if batch.sequences:
            batch.step()
    return done


def alone(tiny_llm, *args, **kwargs) -> Sequence:
    batch = DecodeBatch(tiny_llm)
    batch.add([sequence(tiny_llm, "solo", *args, **kwargs)])
    return run_until_done(batch)["solo"]


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_sequences_joining_mid_flight_decode_as_they_would_alone(tiny_llm, temperature):
    texts = ["a short one", "a much longer question about the weather today", "third"]
    expected = {t: alone(tiny_llm, t, 16, temperature, seed=i) for i, t in enumerate(texts)}
    batch = DecodeBatch(tiny_llm)
    batch.add([sequence(tiny_llm, texts[0], texts[0], 16, temperature, seed=0)])
    batch.step()
    batch.step()
    batch.add([sequence(tiny_llm, t, t, 16, temperature, seed=i) for i, t in enumerate(texts) if i])
    done = run_until_done(batch)
    for text_, solo in expected.items():
        assert done[text_].generated == solo.generated, text_
        assert done[text_].text == solo.text


def test_a_sequence_leaving_the_batch_does_not_change_the_others(tiny_llm):
    expected = alone(tiny_llm, "stay with me", 20)
    batch = DecodeBatch(tiny_llm)
    batch.add([sequence(tiny_llm, "stay", "stay with me", 20), sequence(tiny_llm, "go", "bye", 20)])
    batch.step()
    batch.remove({"go"})
    assert run_until_done(batch)["stay"].generated == expected.generated


def test_streamed_pieces_add_up_to_the_final_text(tiny_llm):
    batch = DecodeBatch(tiny_llm)
    batch.add([sequence(tiny_llm, "s", "tell me a story", 40, temperature=1.0, seed=5)])
    shown = []
    while not batch.sequences[0].finished:
        shown.append(batch.visible_text(batch.sequences[0]))
        batch.step()
    final = batch.sequences[0]
    assert all(final.text.startswith(piece) for piece in shown)
    assert final.text == tiny_llm.tokenizer.decode(final.generated, skip_special_tokens=True)


def test_a_stop_string_ends_the_text_before_it(tiny_llm):
    free = alone(tiny_llm, "go on", 30, 1.0, seed=2)
    stop = free.text[4:7]
    stopped = alone(tiny_llm, "go on", 30, 1.0, seed=2, stop=(stop,))
    assert stopped.finish_reason == "stop"
    assert free.text.startswith(stopped.text) and stop not in stopped.text


def test_greedy_decoding_matches_plain_generate_past_the_cache_room(tiny_llm):
    from webapp.backends.kv_cache import MIN_ROOM

    words = "the quick brown fox jumps over the lazy dog " * 30
    ids = prompt(tiny_llm, words)
    assert len(ids) > MIN_ROOM  # the prompt alone fills the first room
    batch = DecodeBatch(tiny_llm)
    batch.add([sequence(tiny_llm, "long", words, MIN_ROOM + 40), sequence(tiny_llm, "b", "hi", 8)])
    done = run_until_done(batch)
    with torch.inference_mode():
        plain = tiny_llm.model.generate(
            torch.tensor([ids]), max_new_tokens=MIN_ROOM + 40, do_sample=False
        )[0, len(ids) :].tolist()
    eos = tiny_llm.model.generation_config.eos_token_id
    assert done["long"].generated == [t for t in plain if t != eos][: len(done["long"].generated)]
    assert len(done["long"].generated) == MIN_ROOM + 40 or done["long"].finish_reason == "eos"
