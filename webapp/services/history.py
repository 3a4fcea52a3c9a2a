"""My work: every image with its recipe and every text result and chat, per person; search,
favourites, delete, and a shared board for the team.

Ownership on every id: another person's item is "not found", the same answer as a missing
one, and the refusal is recorded in the audit log (who asked for which id). Items shared
with the team are visible to all, changed only by their owner, and taken off the board by
their owner or an admin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from webapp.errors import AtelierError, NotFound, ValidationError
from webapp.services.audit import AuditService
from webapp.services.paging import Page, check_page
from webapp.services.work_items import (
    MAX_WORDS,
    NOT_FOUND,
    SCOPES,
    ImageItem,
    TextItem,
    WorkQuery,
    escape,
    is_id,
    messages_of,
    name_of,
    page_of,
    table_of,
    text_item,
    text_search,
    title_of,
)
from webapp.store import ImageRecord, Person, Store, TextRecord, utc_now
from webapp.store.images import IMAGES_DIR, image_row
from webapp.users import User

__all__ = ["NOT_FOUND", "HistoryService", "ImageItem", "TextItem", "WorkQuery"]
RECENT_CHATS = 20  # a chat turn continues one of the person's latest chats, or starts one


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

    def images(self, user: User, query: WorkQuery | None = None) -> Page[ImageItem]:
        """Newest first."""
        query = query or WorkQuery()
        chosen = self._listing(ImageRecord, user, query, ImageRecord.created)
        with self._store.session() as session:
            total, rows = page_of(session, chosen, query)
            items = [self._image_item(row, name) for row, name in rows]
        return Page(items, total, query.page, query.per_page)

    def image(self, user: User, image_id: int) -> ImageItem:
        with self._refusal(user, "image", image_id, "open"), self._store.session() as session:
            row = _visible(session, ImageRecord, image_id, user, "image")
            return self._image_item(row, name_of(session, row.owner_id))

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

    def record_chat_turn(
        self,
        user: User,
        earlier: Iterable[Any],
        turn: Iterable[Any],
        *,
        model: str | None = None,
        tool: str = "chat",
    ) -> TextItem:
        """The next turn of a chat: added to the person's recent chat whose turns so far are
        `earlier`, or a new chat when none is (a conversation that starts here)."""
        earlier, turn = messages_of(earlier), messages_of(turn)
        if earlier:
            chosen = (
                select(TextRecord.id, TextRecord.messages)
                .where(
                    TextRecord.owner_id == user.id,
                    TextRecord.kind == "chat",
                    TextRecord.tool == tool,
                )
                .order_by(TextRecord.updated.desc(), TextRecord.id.desc())
                .limit(RECENT_CHATS)
            )
            with self._store.session() as session:
                found = next((i for i, held in session.execute(chosen) if held == earlier), None)
            if found is not None:
                return self.append_to_chat(user, found, turn)
        return self._add_text(user, "chat", tool, [*earlier, *turn], None, model)

    def append_to_chat(self, user: User, chat_id: int, messages: Iterable[Any]) -> TextItem:
        """The next turns of one of the person's own chats."""
        added = messages_of(messages)
        with self._refusal(user, "text", chat_id, "change"), self._store.session() as session:
            row = _owned(session, TextRecord, chat_id, user, "text")
            if row.kind != "chat":
                raise ValidationError("Only a chat can be continued.", field="chat_id")
            row.messages = [*row.messages, *added]
            row.search_text = text_search(row.title, row.tool, row.messages)
            row.updated = self._clock()
            return text_item(row, user.display_name)

    def rewrite_chat(self, user: User, chat_id: int, messages: Iterable[Any]) -> TextItem:
        """One of the person's own chats with all its messages replaced (its last answer
        regenerated or continued); the title stays."""
        replaced = messages_of(messages)
        if not replaced:
            raise ValidationError("There is nothing to keep: no messages.", field="messages")
        with self._refusal(user, "text", chat_id, "change"), self._store.session() as session:
            row = _owned(session, TextRecord, chat_id, user, "text")
            if row.kind != "chat":
                raise ValidationError("Only a chat can be continued.", field="chat_id")
            row.messages = replaced
            row.search_text = text_search(row.title, row.tool, row.messages)
            row.updated = self._clock()
            return text_item(row, user.display_name)

    def text(self, user: User, text_id: int) -> TextItem:
        """One result or chat (to reopen it)."""
        with self._refusal(user, "text", text_id, "open"), self._store.session() as session:
            row = _visible(session, TextRecord, text_id, user, "text")
            return text_item(row, name_of(session, row.owner_id))

    def texts(self, user: User, query: WorkQuery | None = None) -> Page[TextItem]:
        """Most recently changed first."""
        query = query or WorkQuery()
        chosen = self._listing(TextRecord, user, query, TextRecord.updated)
        if query.kind is not None:
            if query.kind not in ("result", "chat"):
                raise ValidationError("Texts are results or chats.", field="kind")
            chosen = chosen.where(TextRecord.kind == query.kind)
        with self._store.session() as session:
            total, rows = page_of(session, chosen, query)
            items = [text_item(row, name) for row, name in rows]
        return Page(items, total, query.page, query.per_page)

    # -- either kind ---------------------------------------------------------------------

    def set_favourite(self, user: User, kind: str, item_id: int, favourite: bool) -> None:
        with self._refusal(user, kind, item_id, "change"), self._store.session() as session:
            _owned(session, table_of(kind), item_id, user, kind).favourite = bool(favourite)

    def set_shared(self, user: User, kind: str, item_id: int, shared: bool) -> None:
        """Share one of the person's items with the team, or take it back."""
        with self._refusal(user, kind, item_id, "share"), self._store.session() as session:
            _owned(session, table_of(kind), item_id, user, kind).shared = bool(shared)

    def remove_from_board(self, user: User, kind: str, item_id: int) -> None:
        """Take an item off the shared board: its owner, or an admin (recorded)."""
        with self._refusal(user, kind, item_id, "unshare"), self._store.session() as session:
            row = _visible(session, table_of(kind), item_id, user, kind)
            mine = row.owner_id == user.id
            if not mine and not user.is_admin:
                raise _not_found(kind, row)  # visible, but not theirs to change
            row.shared = False
            owner = row.owner_id
        if not mine:
            subject = f"{kind} {item_id} of {owner}"
            self._audit.record(user, "board.remove", "ok", subject=subject, client=self._client)

    def delete(self, user: User, kind: str, item_id: int) -> None:
        """Delete one of the person's items; an image's file goes with it."""
        with self._refusal(user, kind, item_id, "delete"), self._store.session() as session:
            row = _owned(session, table_of(kind), item_id, user, kind)
            if kind == "image":
                self._delete_file(row.path)  # the file first: a row never outlives it
            session.delete(row)

    @contextmanager
    def _refusal(self, user: User, kind: str, item_id: Any, action: str) -> Iterator[None]:
        """Record a refused id (another person's, or none) once the session has ended."""
        try:
            yield
        except NotFound as refused:
            owner = getattr(refused, "owner", None)
            self._audit.record(
                user,
                f"{kind}.{action}",
                "refused",
                subject=f"{kind} {str(item_id)[:40]}",
                client=self._client,
                detail=f"belongs to {owner}" if owner else "no such item",
            )
            raise

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
            chosen = chosen.where(table.search_text.like(f"%{escape(word)}%", escape="\\"))
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
        messages = messages_of(messages)
        if not messages:
            raise ValidationError("There is nothing to keep: no messages.", field="messages")
        if not isinstance(tool, str) or not 1 <= len(tool) <= 255:
            raise ValidationError("Name the tool that made this text.", field="tool")
        title = title_of(title, messages)
        now = self._clock()
        row = TextRecord(
            owner_id=user.id,
            kind=kind,
            tool=tool,
            title=title,
            model=model,
            messages=messages,
            search_text=text_search(title, tool, messages),
            created=now,
            updated=now,
        )
        with self._store.session() as session:
            _check_owner(session, user)
            session.add(row)
            session.flush()
            return text_item(row, user.display_name)


def _check_owner(session: Session, user: User) -> None:
    if session.get(Person, user.id) is None:
        raise ValidationError(f"There is no account {user.id!r} to keep this for.", "owner")


def _visible(session: Session, table: Any, item_id: int, user: User, kind: str) -> Any:
    """The item if it is the person's or shared with the team; else not found."""
    row = session.get(table, item_id) if is_id(item_id) else None
    if row is None or (row.owner_id != user.id and not row.shared):
        raise _not_found(kind, row)
    return row


def _owned(session: Session, table: Any, item_id: int, user: User, kind: str) -> Any:
    """The item if it is the person's own; else not found (shared or not)."""
    row = session.get(table, item_id) if is_id(item_id) else None
    if row is None or row.owner_id != user.id:
        raise _not_found(kind, row)
    return row


def _not_found(kind: str, row: Any) -> NotFound:
    """The same message whether the item is missing or someone else's; the owner is kept
    on the error for the audit log only."""
    error = NotFound(NOT_FOUND[kind])
    error.owner = None if row is None else row.owner_id
    return error
