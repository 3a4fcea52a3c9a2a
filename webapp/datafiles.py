"""Folders of TOML files an admin edits: each file one item, a broken file one problem."""

from __future__ import annotations

import json
import re
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from webapp.atomic import write_file

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


# -- writing an item back (the Admin page) ---------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # JSON's string escapes are TOML's; DEL is the one control character JSON leaves raw.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(data: dict[str, Any]) -> str:
    """A flat TOML document (strings, numbers, booleans and lists of them)."""
    return "".join(f"{key} = {_toml_value(value)}\n" for key, value in data.items())


def write_item(
    folder: Path, item_id: str, data: dict[str, Any], parse: Callable[[str, dict[str, Any]], Any]
) -> Any:
    """Write `<folder>/<item_id>.toml` from `data`, after checking that the file reads back,
    through the same parser as every load, as the item meant. Returns the parsed item;
    ValueError says what is wrong, before anything is written."""
    if not ID_PATTERN.match(item_id) or len(item_id) > 64:
        raise ValueError("a name of at most 64 lower-case letters, digits, '-' or '_'")
    text = to_toml(data)
    item = parse(item_id, tomllib.loads(text))
    write_file(folder / f"{item_id}.toml", lambda handle: handle.write(text.encode("utf-8")))
    return item


def remove_item(folder: Path, item_id: str) -> bool:
    """Delete `<folder>/<item_id>.toml`; False if there was none."""
    if not ID_PATTERN.match(item_id):
        return False
    path = folder / f"{item_id}.toml"
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
