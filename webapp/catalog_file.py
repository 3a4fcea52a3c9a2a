"""Changing one model's entry in `catalog.toml` (the models dir's descriptions): what admins
edit on the Models page (display name, description, licence, default, pinned).

The file stays the admin's: only the changed models' tables are rewritten (moved to the
end, without the comments that were inside them); everything else is kept as it was.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from webapp.atomic import write_file
from webapp.errors import ValidationError
from webapp.registry import CATALOG_FILE

HEADER = re.compile(r"^\s*\[")


def read_entries(models_dir: Path) -> dict[str, dict[str, Any]]:
    path = models_dir / CATALOG_FILE
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")).get("models", {})
    except tomllib.TOMLDecodeError as error:
        raise ValidationError(
            f"{CATALOG_FILE} in the models dir is not valid TOML ({error}): fix it by hand first.",
            field="model",
        ) from None


def update_entries(models_dir: Path, changes: dict[str, dict[str, Any]]) -> None:
    """Set (or, with a value of None, remove) keys of some models' entries."""
    entries = read_entries(models_dir)
    path = models_dir / CATALOG_FILE
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    for name, values in changes.items():
        entry = dict(entries.get(name, {}))
        for key, value in values.items():
            if value is None:
                entry.pop(key, None)
            else:
                entry[key] = value
        text = _without_tables(text, name).rstrip("\n") + "\n\n" + _tables(name, entry)
    data = text.encode("utf-8")
    tomllib.loads(text)  # never write a file the registry could not read
    write_file(path, lambda handle: handle.write(data))


def _without_tables(text: str, name: str) -> str:
    own = re.compile(
        r'^\s*\[\s*models\s*\.\s*(?:"' + re.escape(name) + r'"|' + re.escape(name) + r")"
        r"\s*(?:\.\s*defaults\s*)?\]\s*$"
    )
    kept, skipping = [], False
    for line in text.splitlines():
        if HEADER.match(line):
            skipping = bool(own.match(line))
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


def _tables(name: str, entry: dict[str, Any]) -> str:
    defaults = entry.pop("defaults", None)
    lines = [f"[models.{json.dumps(name)}]"]
    lines += [f"{key} = {_value(value)}" for key, value in entry.items()]
    if defaults:
        lines += ["", f"[models.{json.dumps(name)}.defaults]"]
        lines += [f"{key} = {_value(value)}" for key, value in defaults.items()]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)
