"""Folders of TOML files an admin edits: each file one item, a broken file one problem."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def load_toml_folder(
    folder: Path, parse: Callable[[str, dict[str, Any]], Any], problems: list[str]
) -> dict[str, Any]:
    """Parse every `*.toml` in `folder` with `parse(id, data)`; id is the file name."""
    items: dict[str, Any] = {}
    if not folder.is_dir():
        return items
    for path in sorted(folder.glob("*.toml")):
        try:
            if not ID_PATTERN.match(path.stem):
                raise ValueError("name the file with lower-case letters, digits, '-' or '_'")
            data = tomllib.loads(path.read_text(encoding="utf-8"))
            items[path.stem] = parse(path.stem, data)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, ValueError, TypeError) as error:
            problems.append(f"{path.parent.name}/{path.name}: {error}")
    return items


def require(data: dict[str, Any], key: str, kind: type) -> Any:
    if key not in data:
        raise ValueError(f"missing {key!r}")
    if not isinstance(data[key], kind):
        raise ValueError(f"{key!r} must be a {kind.__name__}")
    return data[key]
