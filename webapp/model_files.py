"""Model weight files recognised by what they contain, never by their name.

Atelier uses two weight formats: safetensors (an 8-byte length, a JSON header, then the
tensors' bytes end to end) and GGUF (a magic number, counted metadata, tensor descriptions).
Both are checked from their header alone, every count and length capped, so a truncated,
fuzzed or hostile file is refused in milliseconds without reading its data. Zip archives
and Python pickles (PyTorch's .pt, .ckpt, .bin) are named as such whatever their extension:
loading them can run code.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import stat
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from webapp.errors import ModelLoadError, ModelRefused

MAX_SAFETENSORS_HEADER = 100_000_000  # bytes; the safetensors library's own limit
MAX_DIMS = 16
# Bits per element of each safetensors dtype (F4 and F6 pack several values in a byte).
DTYPE_BITS = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}

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


class BadModelFile(ModelLoadError):
    """A weight file that is damaged, cut short, or not in the format its name says."""


class UnsafeModelFile(ModelRefused):
    """A weight file in a format whose loading can run code (a pickle or a zip archive)."""


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: tuple[str, ...]
    metadata: dict[str, str] = field(default_factory=dict)


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


# -- any weight file --------------------------------------------------------------------------


def check_weights(path: Path) -> SafetensorsHeader | GGUFHeader:
    """The header of a .safetensors or .gguf file, checked; the answer (or the refusal) is
    kept while the file stays the same, so listing folders again costs one stat a file."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise BadModelFile(f"{path.name} cannot be read ({error.strerror}).") from None
    outcome = _check_version(Path(path), info.st_ino, info.st_size, info.st_mtime_ns)
    if isinstance(outcome, tuple):
        kind, message = outcome
        raise kind(message)
    return outcome


@lru_cache(maxsize=2048)
def _check_version(path: Path, inode: int, size: int, mtime_ns: int):
    reader = read_gguf if path.suffix.lower() == ".gguf" else read_safetensors
    try:
        return reader(path)
    except (BadModelFile, UnsafeModelFile) as error:
        return type(error), error.message
    except OSError as error:  # a disk error while reading
        return BadModelFile, f"{path.name} cannot be read ({error.strerror})."


def code_format(head: bytes) -> str | None:
    """What a file that can run code when loaded is, from its first bytes (or None)."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "a zip archive (the way PyTorch saves .pt and .ckpt checkpoints)"
    if len(head) >= 2 and head[0] == 0x80 and 1 <= head[1] <= 5:
        return "a Python pickle"
    return None


def _refuse_code(name: str, head: bytes) -> None:
    what = code_format(head)
    if what is not None:
        raise UnsafeModelFile(
            f"{name} is {what}, not a safe weight format, whatever its name says: loading "
            "it could run arbitrary code. Use a .safetensors or .gguf version of the model."
        )


def _open_regular(path: Path) -> BinaryIO:
    """Open for reading without blocking on a FIFO, and only a regular file."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise BadModelFile(f"{path.name} cannot be opened ({error.strerror}).") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise BadModelFile(f"{path.name} is not a regular file.")
    return os.fdopen(descriptor, "rb")


# -- safetensors ------------------------------------------------------------------------------


def read_safetensors(path: Path) -> SafetensorsHeader:
    """Check a safetensors file from its header: size capped, valid JSON, every tensor's
    bytes inside the file, end to end without overlap, and as many as shape × dtype needs."""
    name = path.name
    with _open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(8)
        _refuse_code(name, head)
        if head.startswith(GGUF_MAGIC):
            raise BadModelFile(f"{name} is a GGUF file: name it .gguf.")
        if len(head) < 8:
            raise BadModelFile(f"{name} is too short to be a safetensors file ({size} bytes).")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_SAFETENSORS_HEADER:
            raise BadModelFile(
                f"{name} is not a safetensors file: it declares a {length:,}-byte header "
                f"(the most allowed is {MAX_SAFETENSORS_HEADER:,})."
            )
        if 8 + length > size:
            raise BadModelFile(
                f"{name} is cut short: its header alone needs {8 + length:,} bytes and the "
                f"file has {size:,}."
            )
        raw = handle.read(length)
    header = _parse_header(name, raw)
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise BadModelFile(f"{name} has a __metadata__ entry that is not text keys and values.")
    end = _check_layout(name, header)
    if 8 + length + end != size:
        raise BadModelFile(
            f"{name} is {'cut short' if 8 + length + end > size else 'longer than it says'}: "
            f"its header describes {8 + length + end:,} bytes and the file has {size:,}."
        )
    return SafetensorsHeader(tuple(header), metadata)


def _parse_header(name: str, raw: bytes) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        table = dict(pairs)
        if len(table) != len(pairs):
            raise ValueError("a name appears twice")
        return table

    try:
        if not raw.startswith(b"{"):
            raise ValueError("it does not start with '{'")
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        reason = "not UTF-8" if isinstance(error, UnicodeDecodeError) else str(error)[:120]
        raise BadModelFile(f"{name} has a damaged header ({reason}).") from None
    if not isinstance(header, dict):
        raise BadModelFile(f"{name} has a damaged header (not a JSON object).")
    return header


def _is_count(value: Any, limit: int = 2**63) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit


def _check_layout(name: str, header: dict[str, Any]) -> int:
    """Every tensor's span; returns where the last one ends."""
    spans = []
    for tensor, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise BadModelFile(f"{name}: tensor {tensor[:80]!r} is not described properly.")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        bits = DTYPE_BITS.get(dtype) if isinstance(dtype, str) else None
        if bits is None:
            raise BadModelFile(f"{name}: tensor {tensor[:80]!r} has an unknown dtype.")
        if not (isinstance(shape, list) and len(shape) <= MAX_DIMS and all(map(_is_count, shape))):
            raise BadModelFile(f"{name}: tensor {tensor[:80]!r} has an impossible shape.")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
            raise BadModelFile(f"{name}: tensor {tensor[:80]!r} has impossible offsets.")
        begin, end = offsets
        needed = math.prod(shape) * bits
        if end < begin or needed % 8 or needed // 8 != end - begin:
            raise BadModelFile(
                f"{name}: tensor {tensor[:80]!r} spans {end - begin:,} bytes but its shape "
                f"and dtype need {needed / 8:,.0f}."
            )
        spans.append((begin, end, tensor))
    position = 0
    for begin, end, tensor in sorted(spans):
        if begin != position:
            problem = "overlaps another" if begin < position else "leaves a gap before it"
            raise BadModelFile(f"{name}: tensor {tensor[:80]!r} {problem}.")
        position = end
    return position


# -- GGUF -------------------------------------------------------------------------------------


def read_gguf(path: Path) -> GGUFHeader:
    """Check a GGUF file from its metadata and tensor descriptions, every count and length
    capped; tensor data is never read, only checked to lie inside the file."""
    name = path.name
    with _open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(8)
        _refuse_code(name, head)
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

        if not _is_count(alignment) or alignment == 0 or alignment & (alignment - 1):
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
