"""What My work holds, as the services show it (plain dataclasses), what a listing asks
for, and the small rules about them: ids, kinds, messages, titles, search text."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from webapp.errors import ValidationError
from webapp.store import ImageRecord, Person, TextRecord
from webapp.store.images import search_text

KINDS = ("image", "text")
SCOPES = ("mine", "shared")
ROLES = ("system", "user", "assistant")
TITLE_CHARS = 80
MAX_WORDS = 8
NOT_FOUND = {
    "image": "That image does not exist or is not yours.",
    "text": "That text or chat does not exist or is not yours.",
}


@dataclass(frozen=True)
class ImageItem:
    id: int
    owner_id: str
    owner_name: str
    path: Path  # the PNG, under the data dir
    prompt: str
    model: str
    style: str | None
    seed: int | None
    recipe: dict[str, Any]
    created: datetime
    favourite: bool
    shared: bool


@dataclass(frozen=True)
class TextItem:
    id: int
    owner_id: str
    owner_name: str
    kind: str  # result or chat
    tool: str
    title: str
    model: str | None
    messages: list[dict[str, str]]  # {"role": ..., "content": ...}
    created: datetime
    updated: datetime
    favourite: bool
    shared: bool


@dataclass(frozen=True)
class WorkQuery:
    """What to list: mine or the team's shared board, narrowed by words (all must appear),
    a time range (`until` exclusive), favourites, and for texts the kind."""

    scope: str = "mine"
    words: str = ""
    since: datetime | None = None
    until: datetime | None = None
    favourites: bool = False
    kind: str | None = None  # texts only: result or chat
    page: int = 1
    per_page: int = 24


def table_of(kind: str) -> Any:
    if kind not in KINDS:
        raise ValidationError("An item is an image or a text.", field="kind")
    return ImageRecord if kind == "image" else TextRecord


def is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def name_of(session: Session, person_id: str) -> str:
    return session.scalar(select(Person.display_name).where(Person.id == person_id)) or person_id


def page_of(session: Session, chosen: Select, query: WorkQuery) -> tuple[int, list]:
    total = session.scalar(select(func.count()).select_from(chosen.order_by(None).subquery()))
    offset = (query.page - 1) * query.per_page
    rows = session.execute(chosen.offset(offset).limit(query.per_page)).all()
    return total or 0, [tuple(row) for row in rows]


def escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def messages_of(messages: Iterable[Any]) -> list[dict[str, str]]:
    """Plain {"role", "content"} dicts, from dicts or objects such as the engine's
    ChatMessage."""
    cleaned = []
    for message in messages:
        if isinstance(message, dict):
            role, content = message.get("role"), message.get("content")
        else:
            role, content = getattr(message, "role", None), getattr(message, "content", None)
        if role not in ROLES or not isinstance(content, str):
            raise ValidationError(
                "Each message has a role (system, user or assistant) and text.", "messages"
            )
        cleaned.append({"role": role, "content": content})
    return cleaned


def title_of(title: str | None, messages: list[dict[str, str]]) -> str:
    if title is None:
        first = next((m["content"] for m in messages if m["role"] == "user"), "")
        title = " ".join(first.split())
    title = " ".join(str(title).split()) or "Untitled"
    return title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "…"


def text_search(title: str, tool: str, messages: list[dict[str, str]]) -> str:
    return search_text(title, tool, *(m["content"] for m in messages))


def text_item(row: TextRecord, owner_name: str) -> TextItem:
    return TextItem(
        id=row.id,
        owner_id=row.owner_id,
        owner_name=owner_name,
        kind=row.kind,
        tool=row.tool,
        title=row.title,
        model=row.model,
        messages=json.loads(json.dumps(row.messages)),  # a copy the caller may change
        created=row.created,
        updated=row.updated,
        favourite=row.favourite,
        shared=row.shared,
    )
