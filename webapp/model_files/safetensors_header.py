"""safetensors: an 8-byte length, a JSON header, then the tensors' bytes end to end.
Checked from the header alone."""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webapp.model_files.common import BadModelFile, is_count, open_regular, refuse_code

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


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: tuple[str, ...]
    metadata: dict[str, str] = field(default_factory=dict)


def read_safetensors(path: Path) -> SafetensorsHeader:
    """Check a safetensors file from its header: size capped, valid JSON, every tensor's
    bytes inside the file, end to end without overlap, and as many as shape × dtype needs."""
    name = path.name
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        head = handle.read(8)
        refuse_code(name, head)
        if head.startswith(b"GGUF"):
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
        if not (isinstance(shape, list) and len(shape) <= MAX_DIMS and all(map(is_count, shape))):
            raise BadModelFile(f"{name}: tensor {tensor[:80]!r} has an impossible shape.")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(is_count, offsets))):
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
