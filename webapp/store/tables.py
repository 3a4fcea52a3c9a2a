"""The tables: people, their images, texts and documents, the audit log, API keys, voices
and the jobs board that app replicas share.

Times are stored as UTC and come back timezone-aware. Files (images) stay under the data
dir; a row keeps the file's path relative to the data dir, with forward slashes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("admin", "member")
TEXT_KINDS = ("result", "chat")
DOCUMENT_KINDS = ("pdf", "docx", "txt", "md", "paste")
DOCUMENT_UNITS = ("page", "paragraph")

# Constraint names fixed by convention, so migrations can name what they change.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A moment in UTC: aware datetimes in and out, naive UTC in the database (SQLite keeps
    no time zone; PostgreSQL's `timestamp` then compares the same way)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a time without a time zone: pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Person(Base):
    """Someone who uses Atelier. `id` is what jobs, files and history are owned by; `login`
    is what they type (built-in accounts) or what the company's sign-on calls them."""

    __tablename__ = "people"
    __table_args__ = (CheckConstraint("role IN ('admin', 'member')", name="role"),)

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    login: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str | None] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16), default="member")
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # None: no password (signs in through the company's sign-on, or not yet set).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    # Part of every session token: raising it signs the person out everywhere.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created: Mapped[datetime] = mapped_column(default=utc_now)


class ImageRecord(Base):
    __tablename__ = "images"
    __table_args__ = (
        Index(None, "owner_id", "created"),
        Index(None, "shared", "created"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    path: Mapped[str] = mapped_column(String(1024), unique=True)  # relative to the data dir
    prompt: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str] = mapped_column(String(255), default="")
    style: Mapped[str | None] = mapped_column(String(255))
    seed: Mapped[int | None] = mapped_column(Integer)
    recipe: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Casefolded prompt, model and style: what a search by words looks in.
    search_text: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(default=utc_now)
    favourite: Mapped[bool] = mapped_column(Boolean, default=False)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)


class TextRecord(Base):
    """A text tool's result or a chat: the messages, as the person saw them."""

    __tablename__ = "texts"
    __table_args__ = (
        CheckConstraint("kind IN ('result', 'chat')", name="kind"),
        Index(None, "owner_id", "created"),
        Index(None, "shared", "created"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    kind: Mapped[str] = mapped_column(String(16))
    tool: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(255))
    messages: Mapped[list[Any]] = mapped_column(default=list)
    search_text: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(default=utc_now)
    updated: Mapped[datetime] = mapped_column(default=utc_now)
    favourite: Mapped[bool] = mapped_column(Boolean, default=False)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)


class AuditEvent(Base):
    """Who did what, when, with which model, and how it went. `actor` is a person's id, or
    the name someone typed at a failed sign-in, so it is not a foreign key."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index(None, "at"),
        Index(None, "actor", "at"),
        Index(None, "model", "at"),
        Index(None, "kind", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utc_now)
    actor: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(40))  # image, text, sign_in, person.add, …
    outcome: Mapped[str] = mapped_column(String(16))  # ok, failed, refused, …
    subject: Mapped[str | None] = mapped_column(String(255))  # the person or item acted on
    model: Mapped[str | None] = mapped_column(String(255))
    tool: Mapped[str | None] = mapped_column(String(255))  # text tool or image style
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prompt: Mapped[str | None] = mapped_column(Text)  # only when audit_prompts is full
    prompt_hash: Mapped[str | None] = mapped_column(String(64))
    images: Mapped[int] = mapped_column(Integer, default=0)  # images made (image quotas)
    gpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    client: Mapped[str] = mapped_column(String(16))  # page, cli, api, system
    detail: Mapped[str | None] = mapped_column(Text)  # the message a person was shown


class ApiKey(Base):
    """A key for the OpenAI- and A1111-compatible API (`services/api_keys.py`). Only its
    SHA-256 is kept; `prefix` lets a person tell their keys apart."""

    __tablename__ = "api_keys"
    __table_args__ = (Index(None, "owner_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    name: Mapped[str] = mapped_column(String(100))
    hash: Mapped[str] = mapped_column(String(128), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created: Mapped[datetime] = mapped_column(default=utc_now)
    revoked: Mapped[datetime | None]


class DocumentRecord(Base):
    """An uploaded or pasted document. The file (none for pasted text) stays under the data
    dir under a name the server made; its text lives on in the chunks."""

    __tablename__ = "documents"
    __table_args__ = (
        CheckConstraint("kind IN ('pdf', 'docx', 'txt', 'md', 'paste')", name="kind"),
        CheckConstraint("unit IN ('page', 'paragraph')", name="unit"),
        Index(None, "owner_id", "created"),
        Index(None, "shared", "created"),
        Index(None, "created"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str] = mapped_column(String(16))  # what numbers the text: page or paragraph
    pages: Mapped[int] = mapped_column(Integer)  # pages (blank ones too) or paragraphs
    blank: Mapped[list[Any]] = mapped_column(default=list)  # pages with no text on them
    chars: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    path: Mapped[str | None] = mapped_column(String(1024), unique=True)  # under the data dir
    created: Mapped[datetime] = mapped_column(default=utc_now)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)


class DocumentChunk(Base):
    """A passage of a document: its text and the pages or paragraphs it spans."""

    __tablename__ = "document_chunks"
    __table_args__ = (Index(None, "document_id", "position", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    unit_start: Mapped[int] = mapped_column(Integer)
    unit_end: Mapped[int] = mapped_column(Integer)
    heading: Mapped[bool] = mapped_column(Boolean, default=False)
    text: Mapped[str] = mapped_column(Text)


class DocumentEmbedding(Base):
    """A passage's vector (float32, length 1) from one embedding model. The owner is kept
    here too, so retrieval filters by owner before it reads a single vector."""

    __tablename__ = "document_embeddings"
    __table_args__ = (Index(None, "owner_id", "document_id"),)

    chunk_id: Mapped[int] = mapped_column(
        ForeignKey("document_chunks.id", ondelete="CASCADE"), primary_key=True
    )
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    model: Mapped[str] = mapped_column(String(255))
    vector: Mapped[bytes] = mapped_column(LargeBinary)


RUN_STATUSES = ("queued", "running", "done", "failed", "cancelled")


class VoiceDataset(Base):
    """A person's dataset of approved texts: a JSONL file under the data dir (train and
    held-back examples) with its counts."""

    __tablename__ = "voice_datasets"
    __table_args__ = (Index(None, "owner_id", "created"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(1024), unique=True)  # under the data dir
    examples: Mapped[int] = mapped_column(Integer)
    held_back: Mapped[int] = mapped_column(Integer)
    pairs: Mapped[int] = mapped_column(Integer, default=0)
    # Word lengths, duplicates set aside and advice, as the page shows them.
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created: Mapped[datetime] = mapped_column(default=utc_now)


class VoiceRun(Base):
    """A training run, and the tuned voice version it made: `voice` names the voice,
    `version` counts its runs. Only an admin's approval makes a version usable by the team;
    `live` marks the one version of a voice that Text tools serves."""

    __tablename__ = "voice_runs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="status"
        ),
        Index(None, "voice", "version", unique=True),
        Index(None, "owner_id", "created"),
        Index(None, "job_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    voice: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    base_model: Mapped[str] = mapped_column(String(255))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("voice_datasets.id"))
    preset: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    job_id: Mapped[str | None] = mapped_column(String(64))
    folder: Mapped[str] = mapped_column(String(1024), unique=True)  # under the data dir
    adapter_path: Mapped[str | None] = mapped_column(String(1024))  # set only when done
    # Steps, losses, perplexity before and after, base and tuned answers side by side.
    evaluation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    approved_by: Mapped[str | None] = mapped_column(String(255))
    approved_at: Mapped[datetime | None]
    live: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(default=utc_now)
    finished: Mapped[datetime | None]


class BoardJob(Base):
    """A job as the Queue page lists it, written by the app replica that runs it so that
    every replica can show it (`services/job_board.py`). `cancel_requested_by`: someone on
    another replica pressed Cancel; the replica running it stops it."""

    __tablename__ = "board_jobs"
    __table_args__ = (Index(None, "replica"), Index(None, "owner_id"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the engine's job id
    replica: Mapped[str] = mapped_column(String(128))
    owner_id: Mapped[str] = mapped_column(String(255))
    owner_name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(255))
    summary: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(Text)
    fraction: Mapped[float] = mapped_column(Float, default=0.0)
    created: Mapped[datetime] = mapped_column(default=utc_now)
    updated: Mapped[datetime] = mapped_column(default=utc_now)
    cancel_requested_by: Mapped[str | None] = mapped_column(String(255))


class Replica(Base):
    """An app replica that writes the jobs board, and when it last did (a replica not seen
    for a while has stopped, and its unfinished jobs with it)."""

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    started: Mapped[datetime] = mapped_column(default=utc_now)
    seen: Mapped[datetime] = mapped_column(default=utc_now)
