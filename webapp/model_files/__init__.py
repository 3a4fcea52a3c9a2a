"""Model weight files recognised by what they contain, never by their name.

Atelier uses two weight formats: safetensors (`safetensors_header`) and GGUF
(`gguf_header`). Both are checked from their header alone, every count and length capped,
so a truncated, fuzzed or hostile file is refused in milliseconds without reading its data.
Zip archives and Python pickles (PyTorch's .pt, .ckpt, .bin) are named as such whatever
their extension: loading them can run code.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from webapp.model_files.common import BadModelFile, UnsafeModelFile, code_format
from webapp.model_files.gguf_header import GGUFHeader, read_gguf
from webapp.model_files.safetensors_header import SafetensorsHeader, read_safetensors

__all__ = [
    "BadModelFile",
    "GGUFHeader",
    "SafetensorsHeader",
    "UnsafeModelFile",
    "check_weights",
    "code_format",
    "read_gguf",
    "read_safetensors",
]


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
