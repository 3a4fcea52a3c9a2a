"""Folders of TOML files an admin edits: each file one item, a broken file one problem."""

from __future__ import annotations

import re
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


# (folder, parser) -> (the files' names, sizes and times; the items; the problems)
_parsed: dict[tuple[Path, Callable], tuple[tuple, dict[str, Any], list[str]]] = {}
_parsed_lock = threading.Lock()


def load_toml_folder(
    folder: Path, parse: Callable[[str, dict[str, Any]], Any], problems: list[str]
) -> dict[str, Any]:
    """Parse every `*.toml` in `folder` with `parse(id, data)`; id is the file name.

    Files are parsed again only when one is added, removed or changed, so a page may ask
    on every run and still see an admin's new file at once."""
    paths = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    snapshot = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    key = (folder.resolve(), parse)
    with _parsed_lock:
        cached = _parsed.get(key)
    if cached is None or cached[0] != snapshot:
        found: list[str] = []
        cached = (snapshot, _parse_files(paths, parse, found), found)
        with _parsed_lock:
            _parsed[key] = cached
    problems.extend(cached[2])
    return dict(cached[1])


def _parse_files(
    paths: list[Path], parse: Callable[[str, dict[str, Any]], Any], problems: list[str]
) -> dict[str, Any]:
    items: dict[str, Any] = {}
    for path in paths:
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
