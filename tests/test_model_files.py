"""Weight files are recognised by their content: hostile, cut and fuzzed files are refused
with a typed, plain error in well under a second, and their data is never read."""

from __future__ import annotations

import json
import os
import pickle
import random
import struct
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from webapp.embedded import packaged_gguf
from webapp.errors import ModelLoadError, ModelRefused
from webapp.model_files import (
    BadModelFile,
    UnsafeModelFile,
    check_weights,
    read_gguf,
    read_safetensors,
)

FAST = 1.0  # seconds a hostile file may take to be refused


def tensors_file(path: Path) -> Path:
    tensors = {"a": torch.ones(2, 3), "b": torch.zeros(4, dtype=torch.float16)}
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def gguf_file(path: Path) -> Path:
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    writer.add_context_length(64)
    writer.add_token_list(["<s>", "</s>", "hello", "world"])
    writer.add_chat_template("{{ messages }}")
    writer.add_tensor("token_embd.weight", torch.ones(4, 8).numpy())
    writer.add_tensor("output.weight", torch.zeros(8, 8).numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def refused_quickly(read, path: Path, error=ModelLoadError) -> str:
    started = time.perf_counter()
    with pytest.raises(error) as caught:
        read(path)
    assert time.perf_counter() - started < FAST
    return caught.value.message


def answers(read, path: Path, variants) -> tuple[float, int]:
    """Write each variant to `path` and read it: the longest a read took, and how many were
    refused. An error of any other type fails the test."""
    slowest, refused = 0.0, 0
    for content in variants:
        path.write_bytes(content)
        started = time.perf_counter()
        try:
            read(path)
        except (BadModelFile, UnsafeModelFile):
            refused += 1
        slowest = max(slowest, time.perf_counter() - started)
    return slowest, refused


# -- safetensors --------------------------------------------------------------------------


def test_a_sound_safetensors_file_gives_its_tensor_names_and_metadata(tmp_path):
    header = read_safetensors(tensors_file(tmp_path / "ok.safetensors"))
    assert sorted(header.tensors) == ["a", "b"]
    assert header.metadata == {"format": "pt"}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_pickle_renamed_safetensors_is_refused_as_a_pickle(tmp_path, protocol):
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}, protocol=protocol))
    message = refused_quickly(read_safetensors, path, UnsafeModelFile)
    assert "pickle" in message and "arbitrary code" in message
    assert str(tmp_path) not in message


@pytest.mark.parametrize("suffix", [".safetensors", ".gguf"])
def test_a_torch_zip_checkpoint_is_refused_whatever_its_name(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    torch.save({"weight": torch.ones(3)}, path)
    message = refused_quickly(check_weights, path, UnsafeModelFile)
    assert "zip archive" in message
    assert issubclass(UnsafeModelFile, ModelRefused)


def test_a_legacy_torch_checkpoint_is_refused_as_a_pickle(tmp_path):
    path = tmp_path / "old.safetensors"
    torch.save({"weight": torch.ones(3)}, path, _use_new_zipfile_serialization=False)
    assert "pickle" in refused_quickly(read_safetensors, path, UnsafeModelFile)


def test_every_truncation_of_a_safetensors_file_is_a_typed_error(tmp_path):
    whole = tensors_file(tmp_path / "whole.safetensors").read_bytes()
    cut = tmp_path / "cut.safetensors"
    variants = [whole[:length] for length in range(len(whole))]
    slowest, refused = answers(read_safetensors, cut, variants)
    assert refused == len(variants) and slowest < FAST


@pytest.mark.parametrize(
    ("header", "data", "expected"),
    [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 12, "longer"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
            "overlaps",
        ),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, "gap"),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "need"),
        ({"a": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 8]}}, b"\0" * 8, "need"),
        ({"a": {"dtype": "Q9", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "dtype"),
        ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, "shape"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8, "need"),
        ({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, "not described"),
        ({"__metadata__": {"k": 1}}, b"", "__metadata__"),
    ],
)
def test_a_header_that_lies_about_its_tensors_is_refused(tmp_path, header, data, expected):
    path = tmp_path / "lie.safetensors"
    path.write_bytes(safetensors_bytes(header, data))
    assert expected in refused_quickly(read_safetensors, path, BadModelFile)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (struct.pack("<Q", 2**40) + b"{}", "declares a 1,099,511,627,776-byte header"),
        (struct.pack("<Q", 200_000_000) + b"{}", "the most allowed is 100,000,000"),
        (struct.pack("<Q", 64) + b"{}", "cut short"),
        (struct.pack("<Q", 4) + b"\xff\xfe{}", "damaged header"),
        (struct.pack("<Q", 7) + b"[1, 2 ]", "damaged header"),
        (struct.pack("<Q", 2) + b"{}" + b"x", "longer than it says"),
        (struct.pack("<Q", 16) + b'{"a": 1, "a": 2}', "damaged header"),
        (struct.pack("<Q", 40_000) + b"[" * 20_000 + b"]" * 20_000, "damaged header"),
        (b"GGUF\x03\x00\x00\x00" + b"\0" * 16, "is a GGUF file"),
        (b"abc", "too short"),
    ],
)
def test_an_odd_safetensors_header_is_refused_without_reading_on(tmp_path, content, expected):
    path = tmp_path / "odd.safetensors"
    path.write_bytes(content)
    assert expected in refused_quickly(read_safetensors, path, BadModelFile)


def test_fuzzed_safetensors_files_give_only_typed_errors(tmp_path):
    whole = tensors_file(tmp_path / "whole.safetensors").read_bytes()
    header_end = 8 + struct.unpack("<Q", whole[:8])[0]
    fuzzed, rng = tmp_path / "fuzzed.safetensors", random.Random(17)
    variants = []
    for _ in range(300):
        data = bytearray(whole)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(header_end)] = rng.randrange(256)
        variants.append(bytes(data))
    slowest, refused = answers(read_safetensors, fuzzed, variants)
    assert slowest < FAST
    assert refused > 250  # a flip inside a tensor name or a space may leave it valid


def test_a_fifo_named_like_weights_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    answers = []

    def read():
        try:
            read_safetensors(fifo)
        except BadModelFile as error:
            answers.append(error.message)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(5)
    assert answers == ["pipe.safetensors is not a regular file."]


def test_the_check_is_made_again_when_the_file_changes(tmp_path):
    path = tensors_file(tmp_path / "w.safetensors")
    assert sorted(check_weights(path).tensors) == ["a", "b"]
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(BadModelFile, match="cut short"):
        check_weights(path)
    with pytest.raises(BadModelFile, match="cut short"):  # the refusal is remembered too
        check_weights(path)


# -- GGUF ---------------------------------------------------------------------------------


def test_a_sound_gguf_file_gives_its_architecture_and_metadata(tmp_path):
    header = read_gguf(gguf_file(tmp_path / "tiny.gguf"))
    assert header.architecture == "llama"
    assert header.tensor_count == 2
    assert header.metadata["llama.context_length"] == 64
    assert header.metadata["tokenizer.ggml.tokens"] == [4]  # arrays by their length only


def test_the_embedded_gguf_model_is_read_from_its_header_in_well_under_a_second():
    started = time.perf_counter()
    header = read_gguf(Path(packaged_gguf()))
    assert time.perf_counter() - started < FAST
    assert (header.architecture, header.tensor_count) == ("llama", 272)


def test_every_truncation_of_a_gguf_file_is_a_typed_error(tmp_path):
    whole = gguf_file(tmp_path / "whole.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    variants = [whole[:length] for length in range(0, len(whole), 3)]
    slowest, refused = answers(read_gguf, cut, variants)
    assert refused == len(variants) and slowest < FAST


def gguf_prefix(tensors: int = 0, keys: int = 1) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, tensors, keys)


def gguf_key(key: str, kind: int) -> bytes:
    return struct.pack("<Q", len(key)) + key.encode() + struct.pack("<I", kind)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (gguf_prefix(keys=2**60), "declares"),
        (gguf_prefix(tensors=2**40), "declares"),
        (gguf_prefix() + struct.pack("<Q", 2**62) + b"x", "longer than allowed"),
        (gguf_prefix() + gguf_key("k", 8) + struct.pack("<Q", 2**50), "longer than allowed"),
        (gguf_prefix() + gguf_key("k", 9) + struct.pack("<IQ", 8, 2**40), "more items"),
        (gguf_prefix() + gguf_key("k", 9) + struct.pack("<IQ", 8, 1000), "cut short"),
        (gguf_prefix() + gguf_key("k", 9) + struct.pack("<IQ", 6, 2**30), "cut short"),
        (gguf_prefix() + gguf_key("k", 77) + b"\0" * 8, "unknown metadata type"),
        (b"GGUF" + struct.pack("<IQQ", 1, 0, 0), "version 1"),
        (b"GGUF" + struct.pack("<IQQ", 99, 0, 0), "version 99"),
        (b"NOPE" + b"\0" * 40, "not a GGUF file"),
    ],
)
def test_a_gguf_header_with_absurd_counts_is_refused_at_once(tmp_path, content, expected):
    path = tmp_path / "odd.gguf"
    path.write_bytes(content + b"\0" * 16)
    assert expected in refused_quickly(read_gguf, path, BadModelFile)


def test_a_gguf_whose_tensors_reach_past_its_end_is_refused(tmp_path):
    whole = gguf_file(tmp_path / "whole.gguf").read_bytes()
    path = tmp_path / "short.gguf"
    path.write_bytes(whole[:-64])
    assert "cut short" in refused_quickly(read_gguf, path, BadModelFile)


def test_a_pickle_named_gguf_is_refused_as_a_pickle(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(pickle.dumps(["not", "a", "model"]))
    assert "pickle" in refused_quickly(read_gguf, path, UnsafeModelFile)


def test_fuzzed_gguf_files_give_only_typed_errors(tmp_path):
    whole = gguf_file(tmp_path / "whole.gguf").read_bytes()
    fuzzed, rng = tmp_path / "fuzzed.gguf", random.Random(23)
    variants = []
    for _ in range(300):
        data = bytearray(whole)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(min(len(data), 400))] = rng.randrange(256)
        variants.append(bytes(data))
    slowest, refused = answers(read_gguf, fuzzed, variants)
    assert slowest < FAST and refused > 100
