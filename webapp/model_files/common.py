"""What every weight-file check shares: its errors, the formats that run code, and opening
only regular files."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from webapp.errors import ModelLoadError, ModelRefused


class BadModelFile(ModelLoadError):
    """A weight file that is damaged, cut short, or not in the format its name says."""


class UnsafeModelFile(ModelRefused):
    """A weight file in a format whose loading can run code (a pickle or a zip archive)."""


def code_format(head: bytes) -> str | None:
    """What a file that can run code when loaded is, from its first bytes (or None)."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "a zip archive (the way PyTorch saves .pt and .ckpt checkpoints)"
    if len(head) >= 2 and head[0] == 0x80 and 1 <= head[1] <= 5:
        return "a Python pickle"
    return None


def refuse_code(name: str, head: bytes) -> None:
    what = code_format(head)
    if what is not None:
        raise UnsafeModelFile(
            f"{name} is {what}, not a safe weight format, whatever its name says: loading "
            "it could run arbitrary code. Use a .safetensors or .gguf version of the model."
        )


def open_regular(path: Path) -> BinaryIO:
    """Open for reading without blocking on a FIFO, and only a regular file."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise BadModelFile(f"{path.name} cannot be opened ({error.strerror}).") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise BadModelFile(f"{path.name} is not a regular file.")
    return os.fdopen(descriptor, "rb")


def is_count(value: Any, limit: int = 2**63) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit
