"""GGUF: a magic number, counted metadata, tensor descriptions, then aligned tensor data.
Checked from its metadata and tensor descriptions, every count and length capped."""

from __future__ import annotations

import math
import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webapp.model_files.common import BadModelFile, is_count, open_regular, refuse_code

GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)
MAX_GGUF_KEYS = 65_536
MAX_GGUF_TENSORS = 65_536
MAX_GGUF_STRING = 16 * 2**20  # a chat template is a few kB; a tokenizer's pieces are tiny
# Texts and nested arrays in all arrays of one file (vocabularies reach ~260k pieces);
# arrays of numbers are skipped by their size, never read.
MAX_GGUF_ARRAY_ITEMS = 4_000_000
MAX_GGUF_NESTING = 4
GGML_MAX_DIMS = 4
# GGUF metadata value types: fixed-size ones by their struct code, then string and array.
GGUF_SCALARS = {
    0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"
}  # fmt: skip
GGUF_STRING, GGUF_ARRAY = 8, 9
_LENGTH = struct.Struct("<Q")


@dataclass(frozen=True)
class GGUFHeader:
    version: int
    tensor_count: int
    # Scalar and string values; an array is summarised by its length.
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) and value else "unknown"


def read_gguf(path: Path) -> GGUFHeader:
    """Check a GGUF file from its metadata and tensor descriptions, every count and length
    capped; tensor data is never read, only checked to lie inside the file."""
    name = path.name
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(8)
        refuse_code(name, head)
        if not head.startswith(GGUF_MAGIC):
            raise BadModelFile(f"{name} is not a GGUF file (it does not start with 'GGUF').")
        if size < 24:
            raise BadModelFile(f"{name} is too short to be a GGUF file ({size} bytes).")
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            view = memoryview(data)
            try:
                return _GGUFParser(name, view).parse()
            finally:
                view.release()  # the map cannot close while a view of it is held


class _GGUFParser:
    def __init__(self, name: str, data: memoryview):
        self.name, self.data, self.at, self.items = name, data, 4, 0

    def fail(self, problem: str) -> BadModelFile:
        return BadModelFile(f"{self.name} is not a usable GGUF file: {problem}.")

    def take(self, code: str) -> Any:
        width = struct.calcsize("<" + code)
        if self.at + width > len(self.data):
            raise self.fail("it is cut short")
        (value,) = struct.unpack_from("<" + code, self.data, self.at)
        self.at += width
        return value

    def string(self, limit: int = MAX_GGUF_STRING) -> str:
        length = self.take("Q")
        if length > limit:
            raise self.fail(f"a text of {length:,} bytes is longer than allowed")
        if self.at + length > len(self.data):
            raise self.fail("it is cut short")
        text = bytes(self.data[self.at : self.at + length]).decode("utf-8", "replace")
        self.at += length
        return text

    def value(self, kind: int, depth: int = 0) -> Any:
        if kind in GGUF_SCALARS:
            return self.take(GGUF_SCALARS[kind])
        if kind == GGUF_STRING:
            return self.string()
        if kind != GGUF_ARRAY or depth >= MAX_GGUF_NESTING:
            raise self.fail(f"unknown metadata type {kind}")
        item_kind, count = self.take("I"), self.take("Q")
        if item_kind in GGUF_SCALARS:  # fixed size: skipped, never read
            self.at += count * struct.calcsize("<" + GGUF_SCALARS[item_kind])
            if self.at > len(self.data):
                raise self.fail("it is cut short")
        elif item_kind == GGUF_STRING:  # a vocabulary: skipped by its lengths alone
            self._skip_strings(count)
        else:
            self._count_items(count)
            for _ in range(count):
                self.value(item_kind, depth + 1)
        return [count]  # arrays are summarised by their length

    def _count_items(self, count: int) -> None:
        self.items += count
        if self.items > MAX_GGUF_ARRAY_ITEMS:
            raise self.fail("its metadata arrays hold more items than allowed")

    def _skip_strings(self, count: int) -> None:
        self._count_items(count)
        data, at, end, length_at = self.data, self.at, len(self.data), _LENGTH.unpack_from
        for _ in range(count):
            if at + 8 > end:
                raise self.fail("it is cut short")
            (length,) = length_at(data, at)
            if length > MAX_GGUF_STRING:
                raise self.fail(f"a text of {length:,} bytes is longer than allowed")
            at += 8 + length
        if at > end:
            raise self.fail("it is cut short")
        self.at = at

    def parse(self) -> GGUFHeader:
        version = self.take("I")
        if version not in GGUF_VERSIONS:
            raise self.fail(f"version {version} is not supported (only 2 and 3)")
        tensor_count, key_count = self.take("Q"), self.take("Q")
        if tensor_count > MAX_GGUF_TENSORS or key_count > MAX_GGUF_KEYS:
            raise self.fail(f"it declares {tensor_count:,} tensors and {key_count:,} keys")
        metadata = {}
        for _ in range(key_count):
            key = self.string(limit=65_535)
            metadata[key] = self.value(self.take("I"))
        self._check_tensors(tensor_count, metadata.get("general.alignment", 32))
        return GGUFHeader(version, tensor_count, metadata)

    def _check_tensors(self, count: int, alignment: Any) -> None:
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

        if not is_count(alignment) or alignment == 0 or alignment & (alignment - 1):
            raise self.fail("its general.alignment is not a power of two")
        spans = []
        for _ in range(count):
            tensor = self.string(limit=65_535)
            dims = self.take("I")
            if dims > GGML_MAX_DIMS:
                raise self.fail(f"tensor {tensor[:80]!r} has {dims} dimensions")
            shape = [self.take("Q") for _ in range(dims)]
            kind, offset = self.take("I"), self.take("Q")
            try:
                block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
            except (ValueError, KeyError):
                raise self.fail(f"tensor {tensor[:80]!r} has unknown type {kind}") from None
            count_of = math.prod(shape)
            if count_of % block or offset % alignment:
                raise self.fail(f"tensor {tensor[:80]!r} is not aligned to its blocks")
            spans.append((offset, offset + count_of // block * block_bytes, tensor))
        start = -(-self.at // alignment) * alignment  # tensor data begins aligned
        position = 0
        for begin, end, tensor in sorted(spans):
            if begin < position:
                raise self.fail(f"tensor {tensor[:80]!r} overlaps another")
            position = end
        if start + position > len(self.data):
            raise self.fail(
                f"it is cut short: its tensors need {start + position:,} bytes and the "
                f"file has {len(self.data):,}"
            )
