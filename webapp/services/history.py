"""My work: every image with its recipe and every text result and chat, per person; search,
favourites, delete, and a shared board for the team.

Ownership on every id: another person's item is "not found", the same answer as a missing
one. Items shared with the team are visible to all, changed only by their owner, and taken
off the board by their owner or an admin.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from webapp.errors import AtelierError, NotFound, ValidationError
from webapp.services.audit import AuditService
from webapp.services.paging import Page, check_page
from webapp.store import ImageRecord, Person, Store, TextRecord, utc_now
from webapp.store.images import IMAGES_DIR, image_row, search_text
from webapp.users import User

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


class HistoryService:
    def __init__(
        self,
        store: Store,
        audit: AuditService,
        clock: Callable[[], datetime] = utc_now,
        client: str = "page",
    ):
        self._store = store
        self._audit = audit
        self._clock = clock
        self._client = client

    # -- images --------------------------------------------------------------------------

    def record_image(
        self, user: User, path: Path, recipe: dict[str, Any], created: datetime | None = None
    ) -> ImageItem:
        """Add a saved PNG to the person's work (again: the same item). `created` is when it
        was made; now by default."""
        try:
            relative = self._store.relative(path)
        except ValueError:
            raise ValidationError("An image is kept under the data dir.", field="path") from None
        if not path.is_file():
            raise ValidationError(f"{path.name} is not a saved image.", field="path")
        with self._store.session() as session:
            row = session.scalar(select(ImageRecord).where(ImageRecord.path == relative))
            if row is None:
                _check_owner(session, user)
                row = image_row(user.id, relative, "", recipe, created or self._clock())
                session.add(row)
                session.flush()
            elif row.owner_id != user.id:
                raise ValidationError(f"{path.name} is someone else's image.", field="path")
            return self._image_item(row, user.display_name)

    def images(self, user: User, query: WorkQuery = WorkQuery()) -> Page[ImageItem]:
        """Newest first."""
        chosen = self._listing(ImageRecord, user, query, ImageRecord.created)
        with self._store.session() as session:
            total, rows = _page(session, chosen, query)
            items = [self._image_item(row, name) for row, name in rows]
        return Page(items, total, query.page, query.per_page)

    def image(self, user: User, image_id: int) -> ImageItem:
        with self._store.session() as session:
            row = _visible(session, ImageRecord, image_id, user, "image")
            return self._image_item(row, _name(session, row.owner_id))

    # -- text results and chats ----------------------------------------------------------

    def record_text(
        self,
        user: User,
        tool: str,
        messages: Iterable[Any],
        *,
        title: str | None = None,
        model: str | None = None,
    ) -> TextItem:
        """A text tool's result: the messages that made it and the answer."""
        return self._add_text(user, "result", tool, messages, title, model)

    def start_chat(
        self,
        user: User,
        messages: Iterable[Any],
        *,
        title: str | None = None,
        model: str | None = None,
        tool: str = "chat",
    ) -> TextItem:
        return self._add_text(user, "chat", tool, messages, title, model)

    def append_to_chat(self, user: User, chat_id: int, messages: Iterable[Any]) -> TextItem:
        """The next turns of one of the person's own chats."""
        added = _messages(messages)
        with self._store.session() as session:
            row = _owned(session, TextRecord, chat_id, user, "text")
            if row.kind != "chat":
                raise ValidationError("Only a chat can be continued.", field="chat_id")
            row.messages = [*row.messages, *added]
            row.search_text = _text_search(row.title, row.tool, row.messages)
            row.updated = self._clock()
            return _text_item(row, user.display_name)

    def rewrite_chat(self, user: User, chat_id: int, messages: Iterable[Any]) -> TextItem:
        """One of the person's own chats with all its messages replaced (its last answer
        regenerated or continued); the title stays."""
        replaced = _messages(messages)
        if not replaced:
            raise ValidationError("There is nothing to keep: no messages.", field="messages")
        with self._store.session() as session:
            row = _owned(session, TextRecord, chat_id, user, "text")
            if row.kind != "chat":
                raise ValidationError("Only a chat can be continued.", field="chat_id")
            row.messages = replaced
            row.search_text = _text_search(row.title, row.tool, row.messages)
            row.updated = self._clock()
            return _text_item(row, user.display_name)

    def text(self, user: User, text_id: int) -> TextItem:
        """One result or chat (to reopen it)."""
        with self._store.session() as session:
            row = _visible(session, TextRecord, text_id, user, "text")
            return _text_item(row, _name(session, row.owner_id))

    def texts(self, user: User, query: WorkQuery = WorkQuery()) -> Page[TextItem]:
        """Most recently changed first."""
        chosen = self._listing(TextRecord, user, query, TextRecord.updated)
        if query.kind is not None:
            if query.kind not in ("result", "chat"):
                raise ValidationError("Texts are results or chats.", field="kind")
            chosen = chosen.where(TextRecord.kind == query.kind)
        with self._store.session() as session:
            total, rows = _page(session, chosen, query)
            items = [_text_item(row, name) for row, name in rows]
        return Page(items, total, query.page, query.per_page)

    # -- either kind ---------------------------------------------------------------------

    def set_favourite(self, user: User, kind: str, item_id: int, favourite: bool) -> None:
        with self._store.session() as session:
            _owned(session, _table(kind), item_id, user, kind).favourite = bool(favourite)

    def set_shared(self, user: User, kind: str, item_id: int, shared: bool) -> None:
        """Share one of the person's items with the team, or take it back."""
        with self._store.session() as session:
            _owned(session, _table(kind), item_id, user, kind).shared = bool(shared)

    def remove_from_board(self, user: User, kind: str, item_id: int) -> None:
        """Take an item off the shared board: its owner, or an admin (recorded)."""
        with self._store.session() as session:
            row = _visible(session, _table(kind), item_id, user, kind)
            mine = row.owner_id == user.id
            if not mine and not user.is_admin:
                raise NotFound(NOT_FOUND[kind])  # visible, but not theirs to change
            row.shared = False
            owner = row.owner_id
        if not mine:
            subject = f"{kind} {item_id} of {owner}"
            self._audit.record(user, "board.remove", "ok", subject=subject, client=self._client)

    def delete(self, user: User, kind: str, item_id: int) -> None:
        """Delete one of the person's items; an image's file goes with it."""
        with self._store.session() as session:
            row = _owned(session, _table(kind), item_id, user, kind)
            if kind == "image":
                self._delete_file(row.path)  # the file first: a row never outlives it
            session.delete(row)

    def _delete_file(self, relative: str) -> None:
        path = self._store.file(relative)
        try:
            inside = self._store.relative(path).startswith(f"{IMAGES_DIR}/")
        except ValueError:
            inside = False
        if not inside:  # a row that points elsewhere is not followed
            raise NotFound(NOT_FOUND["image"])
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            raise AtelierError(
                f"The image file could not be deleted ({error.strerror}); nothing was deleted."
            ) from error

    # -- the steps' details --------------------------------------------------------------

    def _listing(self, table: Any, user: User, query: WorkQuery, when: Any) -> Select:
        check_page(query.page, query.per_page)
        if query.scope not in SCOPES:
            raise ValidationError("Show my work or the shared board.", field="scope")
        chosen = select(table, Person.display_name).join(Person, Person.id == table.owner_id)
        if query.scope == "mine":
            chosen = chosen.where(table.owner_id == user.id)
        else:
            chosen = chosen.where(table.shared.is_(True))
        words = query.words.casefold().split()
        if len(words) > MAX_WORDS:
            raise ValidationError(f"Search for at most {MAX_WORDS} words.", field="words")
        for word in words:
            chosen = chosen.where(table.search_text.like(f"%{_escape(word)}%", escape="\\"))
        if query.since is not None:
            chosen = chosen.where(when >= query.since)
        if query.until is not None:
            chosen = chosen.where(when < query.until)
        if query.favourites:
            chosen = chosen.where(table.favourite.is_(True))
        return chosen.order_by(when.desc(), table.id.desc())

    def _image_item(self, row: ImageRecord, owner_name: str) -> ImageItem:
        return ImageItem(
            id=row.id,
            owner_id=row.owner_id,
            owner_name=owner_name,
            path=self._store.file(row.path),
            prompt=row.prompt,
            model=row.model,
            style=row.style,
            seed=row.seed,
            recipe=row.recipe,
            created=row.created,
            favourite=row.favourite,
            shared=row.shared,
        )

    def _add_text(self, user, kind, tool, messages, title, model) -> TextItem:
        messages = _messages(messages)
        if not messages:
            raise ValidationError("There is nothing to keep: no messages.", field="messages")
        if not isinstance(tool, str) or not 1 <= len(tool) <= 255:
            raise ValidationError("Name the tool that made this text.", field="tool")
        title = _title(title, messages)
        now = self._clock()
        row = TextRecord(
            owner_id=user.id,
            kind=kind,
            tool=tool,
            title=title,
            model=model,
            messages=messages,
            search_text=_text_search(title, tool, messages),
            created=now,
            updated=now,
        )
        with self._store.session() as session:
            _check_owner(session, user)
            session.add(row)
            session.flush()
            return _text_item(row, user.display_name)


def _table(kind: str) -> Any:
    if kind not in KINDS:
        raise ValidationError("An item is an image or a text.", field="kind")
    return ImageRecord if kind == "image" else TextRecord


def _check_owner(session: Session, user: User) -> None:
    if session.get(Person, user.id) is None:
        raise ValidationError(f"There is no account {user.id!r} to keep this for.", "owner")


def _visible(session: Session, table: Any, item_id: int, user: User, kind: str) -> Any:
    """The item if it is the person's or shared with the team; else not found."""
    row = session.get(table, item_id) if _is_id(item_id) else None
    if row is None or (row.owner_id != user.id and not row.shared):
        raise NotFound(NOT_FOUND[kind])
    return row


def _owned(session: Session, table: Any, item_id: int, user: User, kind: str) -> Any:
    """The item if it is the person's own; else not found (shared or not)."""
    row = session.get(table, item_id) if _is_id(item_id) else None
    if row is None or row.owner_id != user.id:
        raise NotFound(NOT_FOUND[kind])
    return row


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def _name(session: Session, person_id: str) -> str:
    return session.scalar(select(Person.display_name).where(Person.id == person_id)) or person_id


def _page(session: Session, chosen: Select, query: WorkQuery) -> tuple[int, list]:
    total = session.scalar(select(func.count()).select_from(chosen.order_by(None).subquery()))
    offset = (query.page - 1) * query.per_page
    rows = session.execute(chosen.offset(offset).limit(query.per_page)).all()
    return total or 0, [tuple(row) for row in rows]


def _escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _messages(messages: Iterable[Any]) -> list[dict[str, str]]:
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


def _title(title: str | None, messages: list[dict[str, str]]) -> str:
    if title is None:
        first = next((m["content"] for m in messages if m["role"] == "user"), "")
        title = " ".join(first.split())
    title = " ".join(str(title).split()) or "Untitled"
    return title if len(title) <= TITLE_CHARS else title[: TITLE_CHARS - 1] + "…"


def _text_search(title: str, tool: str, messages: list[dict[str, str]]) -> str:
    return search_text(title, tool, *(m["content"] for m in messages))


def _text_item(row: TextRecord, owner_name: str) -> TextItem:
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
