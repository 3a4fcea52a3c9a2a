"""Image rows from PNG recipes, and the import of the PNGs saved before the database.

Until the database, each person's PNGs lived in `<data_dir>/images/<safe-id>-<sha8>/`
(`ImageStore.folder_of`) with their recipe in a PNG text chunk. On every start, files there
that no row refers to yet become rows for their owner: the first start imports them all,
later starts only what was added since (a listing per folder, no PNG opened twice).
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from webapp.store.tables import ImageRecord, Person

log = logging.getLogger(__name__)
IMAGES_DIR = "images"
BATCH = 500
FILE_TIME = re.compile(r"^(\d{8}-\d{6})(\d{6})-")  # 20261129-143012123456-<job>-1.png


@dataclass
class ImportReport:
    imported: int = 0
    people_added: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def search_text(*parts: str | None) -> str:
    return " ".join(part for part in parts if part).casefold()


def image_row(
    owner_id: str, relative: str, parameters: str, recipe: dict[str, Any], created: datetime
) -> ImageRecord:
    """A row for a PNG from its recipe (Atelier's JSON chunk, else the A1111 text)."""
    request = recipe.get("request") if isinstance(recipe.get("request"), dict) else {}
    prompt, model, seed = request.get("prompt"), request.get("model"), request.get("seed")
    if prompt is None and parameters:
        from webapp.png_recipe import parse_a1111

        parsed = parse_a1111(parameters)
        prompt, model, seed = parsed["prompt"], parsed.get("Model"), parsed.get("Seed")
    style = recipe.get("style") if isinstance(recipe.get("style"), str) else None
    prompt, model = str(prompt or ""), str(model or "")
    return ImageRecord(
        owner_id=owner_id,
        path=relative,
        prompt=prompt,
        model=model,
        style=style,
        seed=_int_or_none(seed),
        recipe=recipe,
        search_text=search_text(prompt, model, style),
        created=created,
    )


def _int_or_none(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if -(2**63) <= number < 2**63 else None


def import_images(store) -> ImportReport:
    """Rows for every PNG under images/ that has none yet; idempotent."""
    report = ImportReport()
    root = store.data_dir / IMAGES_DIR
    if not root.is_dir():
        return report
    folders = sorted((e for e in os.scandir(root) if _visible_dir(e)), key=lambda e: e.name)
    if not folders:
        return report
    with store.session() as session:
        known = set(session.scalars(select(ImageRecord.path)))
        people = list(session.scalars(select(Person.id)))
    owners: dict[str, str] | None = None  # made only when a folder has something new
    for folder in folders:
        names = sorted(n for n in os.listdir(folder.path) if _png(n))
        new = [n for n in names if f"{IMAGES_DIR}/{folder.name}/{n}" not in known]
        if not new:
            continue
        owners = _owners_by_folder(people) if owners is None else owners
        owner = owners.get(folder.name) or _recover_owner(store, folder.name, report)
        if owner is None:
            report.problems.append(
                f"{IMAGES_DIR}/{folder.name}: {len(new)} image(s) whose owner is unknown; "
                "left where they are"
            )
            continue
        _import_folder(store, Path(folder.path), owner, new, report)
    return report


def _visible_dir(entry: os.DirEntry) -> bool:
    return not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)


def _png(name: str) -> bool:
    return name.endswith(".png") and not name.startswith(".")  # dot files: writes under way


def _owners_by_folder(people: list[str]) -> dict[str, str]:
    from webapp.image_store import folder_name

    return {folder_name(person): person for person in people}


def _recover_owner(store, folder: str, report: ImportReport) -> str | None:
    """A folder made for an id that has no row (an account of the old single-user days):
    its safe part is the id when the folder's digest says so; the person is added with no
    password, so their work waits for them (an admin sets a password to open it)."""
    from webapp.image_store import folder_name
    from webapp.store import ensure_person

    candidate = folder.rpartition("-")[0]
    if not candidate or folder_name(candidate) != folder:
        return None
    with store.session() as session:
        ensure_person(session, candidate, candidate, "member")
    report.people_added.append(candidate)
    return candidate


def _import_folder(store, folder: Path, owner: str, names: list[str], report: ImportReport):
    from webapp.png_recipe import read_recipe

    rows = []
    for name in names:
        path = folder / name
        try:
            parameters, recipe = read_recipe(path)
        except (OSError, ValueError) as error:  # unreadable: keep the file, say so
            report.problems.append(f"{IMAGES_DIR}/{folder.name}/{name}: {error}")
            continue
        relative = f"{IMAGES_DIR}/{folder.name}/{name}"
        rows.append(image_row(owner, relative, parameters, recipe, _file_time(path)))
    for start in range(0, len(rows), BATCH):
        try:
            with store.session() as session:
                session.add_all(rows[start : start + BATCH])
        except IntegrityError:  # another process imported these meanwhile
            log.info("images in %s were imported by another process", folder.name)
            return
        report.imported += len(rows[start : start + BATCH])


def _file_time(path: Path) -> datetime:
    """When the image was made: from its name (local time, to the microsecond), else the
    file's modification time."""
    match = FILE_TIME.match(path.name)
    if match:
        try:
            seconds = time.mktime(time.strptime(match.group(1), "%Y%m%d-%H%M%S"))
            return datetime.fromtimestamp(seconds + int(match.group(2)) / 1e6, UTC)
        except (ValueError, OverflowError):
            pass
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)
