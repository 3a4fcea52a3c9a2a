"""Documents in the store: the file under a name the server made, the passages, their
vectors; listing, sharing, deleting and expiring them.

Ownership on every id: another person's document is "not found", the same answer as a
missing one, unless its owner shared it (then others may read it, never change it).
Vectors are read owner first: the query names the document's owner before anything else,
so retrieval can never rank another person's passages.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from webapp.atomic import write_file
from webapp.doctext.chunks import Passage
from webapp.doctext.extract import ExtractedText
from webapp.errors import AtelierError, NotFound, ValidationError
from webapp.store import DocumentChunk, DocumentEmbedding, DocumentRecord, Person, Store, utc_now
from webapp.users import User

log = logging.getLogger(__name__)

DOCUMENTS_DIR = "documents"
NOT_FOUND = "That document does not exist or is not yours."
TITLE_CHARS = 200
SUFFIXES = {"pdf": ".pdf", "docx": ".docx", "txt": ".txt", "md": ".md"}


@dataclass(frozen=True)
class DocumentInfo:
    id: int
    owner_id: str
    owner_name: str
    title: str
    kind: str  # pdf | docx | txt | md | paste
    unit: str  # page | paragraph
    pages: int  # pages (blank ones too) or paragraphs
    blank: tuple[int, ...]
    chars: int
    size_bytes: int
    created: datetime
    shared: bool
    passages: int


@dataclass(frozen=True)
class Vectors:
    positions: np.ndarray  # int: the passage of each row
    matrix: np.ndarray  # float32 [passages, dimensions]


class DocumentLibrary:
    def __init__(self, store: Store, clock: Callable[[], datetime] = utc_now):
        self._store = store
        self._clock = clock

    # -- adding ----------------------------------------------------------------------------

    def add(
        self,
        user: User,
        title: str,
        extracted: ExtractedText,
        passages: list[Passage],
        data: bytes | None,
    ) -> DocumentInfo:
        """Keep a document that was read whole: its file (if any) first, then the rows; if
        the rows cannot be written, the file goes too, so nothing is kept of a failure."""
        title = " ".join(str(title).split())[:TITLE_CHARS] or "Untitled"
        path = None
        if data is not None:
            name = f"{secrets.token_hex(16)}{SUFFIXES[extracted.kind]}"
            path = self._store.data_dir / DOCUMENTS_DIR / name
            write_file(path, lambda handle: handle.write(data))
        try:
            with self._store.session() as session:
                if session.get(Person, user.id) is None:
                    raise ValidationError(
                        f"There is no account {user.id!r} to keep this for.", "owner"
                    )
                row = DocumentRecord(
                    owner_id=user.id,
                    title=title,
                    kind=extracted.kind,
                    unit=extracted.unit,
                    pages=extracted.unit_count,
                    blank=list(extracted.blank),
                    chars=extracted.chars,
                    size_bytes=len(data) if data is not None else extracted.chars,
                    path=self._store.relative(path) if path is not None else None,
                    created=self._clock(),
                )
                session.add(row)
                session.flush()
                session.add_all(
                    DocumentChunk(
                        document_id=row.id,
                        position=p.position,
                        unit_start=p.unit_start,
                        unit_end=p.unit_end,
                        heading=p.heading,
                        text=p.text,
                    )
                    for p in passages
                )
                return _info(row, user.display_name, len(passages))
        except BaseException:
            if path is not None:
                path.unlink(missing_ok=True)
            raise

    # -- reading ---------------------------------------------------------------------------

    def documents(self, user: User, scope: str = "mine") -> list[DocumentInfo]:
        """The person's documents, or those shared with the team; newest first."""
        if scope not in ("mine", "shared"):
            raise ValidationError("Show my documents or the shared ones.", field="scope")
        chosen = select(DocumentRecord, Person.display_name).join(
            Person, Person.id == DocumentRecord.owner_id
        )
        if scope == "mine":
            chosen = chosen.where(DocumentRecord.owner_id == user.id)
        else:
            chosen = chosen.where(DocumentRecord.shared.is_(True))
        chosen = chosen.order_by(DocumentRecord.created.desc(), DocumentRecord.id.desc())
        with self._store.session() as session:
            rows = session.execute(chosen).all()
            counts = _passage_counts(session, [row.id for row, _ in rows])
            return [_info(row, name, counts.get(row.id, 0)) for row, name in rows]

    def document(self, user: User, document_id: int, own: bool = False) -> DocumentInfo:
        with self._store.session() as session:
            row = _visible(session, document_id, user, own)
            name = session.scalar(select(Person.display_name).where(Person.id == row.owner_id))
            count = _passage_counts(session, [row.id]).get(row.id, 0)
            return _info(row, name or row.owner_id, count)

    def passages(self, user: User, document_id: int) -> list[Passage]:
        with self._store.session() as session:
            _visible(session, document_id, user)
            rows = session.scalars(
                select(DocumentChunk)
                .where(DocumentChunk.document_id == document_id)
                .order_by(DocumentChunk.position)
            ).all()
            return [_passage(row) for row in rows]

    # -- vectors ---------------------------------------------------------------------------

    def unindexed(self, user: User, document_id: int, model: str) -> list[Passage]:
        """The passages that have no vector from `model` yet."""
        with self._store.session() as session:
            _visible(session, document_id, user)
            done = select(DocumentEmbedding.chunk_id).where(
                DocumentEmbedding.document_id == document_id, DocumentEmbedding.model == model
            )
            rows = session.scalars(
                select(DocumentChunk)
                .where(DocumentChunk.document_id == document_id, DocumentChunk.id.not_in(done))
                .order_by(DocumentChunk.position)
            ).all()
            return [_passage(row) for row in rows]

    def save_vectors(
        self, document_id: int, model: str, positions: list[int], vectors: np.ndarray
    ) -> None:
        """Keep passages' vectors (float32) for a document, replacing older ones."""
        with self._store.session() as session:
            document = session.get(DocumentRecord, document_id)
            if document is None:
                return  # deleted meanwhile: nothing to keep
            chunks = dict(
                session.execute(
                    select(DocumentChunk.position, DocumentChunk.id).where(
                        DocumentChunk.document_id == document_id,
                        DocumentChunk.position.in_(positions),
                    )
                ).all()
            )
            session.execute(
                delete(DocumentEmbedding).where(DocumentEmbedding.chunk_id.in_(chunks.values()))
            )
            session.add_all(
                DocumentEmbedding(
                    chunk_id=chunks[position],
                    document_id=document_id,
                    owner_id=document.owner_id,
                    model=model,
                    vector=np.asarray(vector, dtype=np.float32).tobytes(),
                )
                for position, vector in zip(positions, vectors, strict=True)
                if position in chunks
            )

    def vectors(self, user: User, document_id: int, model: str) -> Vectors:
        """The document's passage vectors, read with the owner's id first in the query."""
        with self._store.session() as session:
            owner = _visible(session, document_id, user).owner_id
            rows = session.execute(
                select(DocumentChunk.position, DocumentEmbedding.vector)
                .join(DocumentChunk, DocumentChunk.id == DocumentEmbedding.chunk_id)
                .where(
                    DocumentEmbedding.owner_id == owner,
                    DocumentEmbedding.document_id == document_id,
                    DocumentEmbedding.model == model,
                )
            ).all()
        if not rows:
            return Vectors(np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
        positions = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype=np.float32)
        return Vectors(positions, matrix.reshape(len(rows), -1))

    # -- changing and deleting -------------------------------------------------------------

    def set_shared(self, user: User, document_id: int, shared: bool) -> None:
        with self._store.session() as session:
            _visible(session, document_id, user, own=True).shared = bool(shared)

    def delete(self, user: User, document_id: int) -> None:
        """The file, then the vectors, passages and the document's row."""
        with self._store.session() as session:
            row = _visible(session, document_id, user, own=True)
            self._remove(session, row)

    def expire(self, days: int) -> int:
        """Delete every document older than `days` days (anyone's); how many went."""
        cutoff = self._clock() - timedelta(days=days)
        with self._store.session() as session:
            rows = session.scalars(
                select(DocumentRecord).where(DocumentRecord.created < cutoff)
            ).all()
            for row in rows:
                self._remove(session, row)
            return len(rows)

    def _remove(self, session: Session, row: DocumentRecord) -> None:
        if row.path is not None:
            self._delete_file(row.path)
        session.execute(delete(DocumentEmbedding).where(DocumentEmbedding.document_id == row.id))
        session.execute(delete(DocumentChunk).where(DocumentChunk.document_id == row.id))
        session.delete(row)

    def _delete_file(self, relative: str) -> None:
        path: Path = self._store.file(relative)
        try:
            inside = self._store.relative(path).startswith(f"{DOCUMENTS_DIR}/")
        except ValueError:
            inside = False
        if not inside:  # a row that points elsewhere is not followed
            log.warning("a document row points outside %s: %s", DOCUMENTS_DIR, relative)
            return
        try:
            path.unlink(missing_ok=True)
        except OSError as error:
            raise AtelierError(
                f"The document's file could not be deleted ({error.strerror}); nothing was deleted."
            ) from error


def _visible(session: Session, document_id: int, user: User, own: bool = False) -> DocumentRecord:
    """The document if it is the person's (or, unless `own`, shared); else not found."""
    valid = isinstance(document_id, int) and not isinstance(document_id, bool)
    row = session.get(DocumentRecord, document_id) if valid and 0 < document_id < 2**63 else None
    if row is None or (row.owner_id != user.id and (own or not row.shared)):
        raise NotFound(NOT_FOUND, field="document")
    return row


def _passage_counts(session: Session, ids: list[int]) -> dict[int, int]:
    from sqlalchemy import func

    if not ids:
        return {}
    counted = session.execute(
        select(DocumentChunk.document_id, func.count())
        .where(DocumentChunk.document_id.in_(ids))
        .group_by(DocumentChunk.document_id)
    ).all()
    return {document_id: count for document_id, count in counted}


def _passage(row: DocumentChunk) -> Passage:
    return Passage(row.position, row.unit_start, row.unit_end, row.text, row.heading)


def _info(row: DocumentRecord, owner_name: str, passages: int) -> DocumentInfo:
    return DocumentInfo(
        id=row.id,
        owner_id=row.owner_id,
        owner_name=owner_name,
        title=row.title,
        kind=row.kind,
        unit=row.unit,
        pages=row.pages,
        blank=tuple(row.blank or ()),
        chars=row.chars,
        size_bytes=row.size_bytes,
        created=row.created,
        shared=row.shared,
        passages=passages,
    )
