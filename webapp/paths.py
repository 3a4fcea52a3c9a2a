"""One rule for file paths that come from outside: resolved, and kept inside their folder."""

from __future__ import annotations

import os
import re
from pathlib import Path

from webapp.errors import ValidationError

# %2e%2e, %2f, %00…: a name that still carries URL encoding is refused, never decoded.
ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")


class PathEscape(ValidationError):
    """A path that would lead out of its folder, or hides where it leads."""


def confined(root: Path, relative: str | os.PathLike[str], field: str = "path") -> Path:
    """`relative` resolved inside `root`, links followed. Refused, with a plain message:
    empty names, NUL, backslashes, URL-encoded characters, absolute paths, `..` parts, and
    links that lead out of `root`."""
    text = os.fspath(relative)
    problem = _name_problem(text)
    if problem is None:
        try:
            base, target = Path(root).resolve(), (Path(root) / text).resolve()
        except (OSError, RuntimeError):  # a loop of links
            base = target = None
        if target is None:
            problem = "it cannot be followed to a file"
        elif target == base:
            problem = "it names the folder itself"
        elif not target.is_relative_to(base):
            problem = "it leads outside its folder (through a link)"
        else:
            return target
    raise PathEscape(f"The file name {text[:80]!r} is not allowed: {problem}.", field=field)


def _name_problem(text: str) -> str | None:
    if not isinstance(text, str):
        return "it is not text"
    if not text:
        return "it is empty"
    if "\x00" in text:
        return "it contains a NUL character"
    if "\\" in text:
        return "it contains a backslash"
    if ENCODED.search(text):
        return "it contains URL-encoded characters"
    if os.path.isabs(text):
        return "it is an absolute path"
    if ".." in Path(text).parts:
        return "it climbs out with '..'"
    return None
