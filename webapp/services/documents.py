"""Documents: upload or paste, list, share, delete; and the four analyses, each an engine
job: a whole-document summary, an extraction of fields, a question answered with
citations, and a comparison of two versions.

Every call takes the asking `User`; another person's document is "not found" unless they
shared it. Nothing is sent anywhere: extraction, indexing and the model all run here.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from webapp.doctext.chunks import Passage, make_passages, make_windows
from webapp.doctext.compare import ComparisonResult, ComparisonTask, differences, sections
from webapp.doctext.extract import Limits, extract_paste, extract_upload
from webapp.doctext.prompts import marker, quote
from webapp.doctext.tasks import (
    ANSWER_TOKENS,
    EXTRACTION_TOKENS,
    FIELDS,
    LENGTHS,
    NOT_FOUND,
    NOTE_TOKENS,
    ExtractionTask,
    QuestionResult,
    QuestionTask,
    SummaryTask,
    extraction_system,
    summary_map_system,
)
from webapp.embedded import DEFAULT_TEXT_MODEL
from webapp.engine import Engine, Job
from webapp.engine.requests import DocumentRequest
from webapp.errors import ValidationError
from webapp.services.audit import AuditService
from webapp.services.document_index import DocumentIndex
from webapp.services.document_library import DocumentInfo, DocumentLibrary
from webapp.settings import Settings
from webapp.store import Store, utc_now
from webapp.users import User

log = logging.getLogger(__name__)

WINDOW_TOKENS = 3072  # a map prompt quotes at most this much, whatever the model reads
MARGIN_TOKENS = 48  # page markers and the joins between passages
MIN_WINDOW_TOKENS = 96  # less, and a model cannot read a document in useful parts
TOP_K = 5  # passages given to the model for a question
MIN_RELEVANCE = 0.15  # cosine similarity below which a passage answers nothing (all-MiniLM-L6-v2:
# unrelated questions score under 0.1, terse related ones about 0.2)
INDEX_WAIT_SECONDS = 600
MAX_QUESTION_CHARS = 2000
MAX_FIELDS = 12
FIELD_NAME = re.compile(r"^[\w][\w .,'()/&-]{0,59}$")
DAY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class DocumentRun:
    """An analysis on its way: the engine job, or (for a question nothing in the document
    answers) the result straight away."""

    kind: str  # summary | extraction | answer | comparison
    document: DocumentInfo
    job: Job | None = None
    ready: Any = None
    other: DocumentInfo | None = None  # the old version, for a comparison

    def result(self, timeout: float | None = None) -> Any:
        return self.ready if self.job is None else self.job.result(timeout)


class DocumentService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        store: Store,
        audit: AuditService | None = None,
        clock: Callable[[], datetime] = utc_now,
        client: str = "page",
        limits: Limits | None = None,
        min_relevance: float = MIN_RELEVANCE,
        embedding_model: str | None = None,
    ):
        self._settings = settings
        self._engine = engine
        self._audit = audit
        self._client = client
        self._limits = limits or Limits()
        self._min_relevance = min_relevance
        self.library = DocumentLibrary(store, clock)
        self.index = DocumentIndex(engine, self.library, embedding_model)
        self._sweeper: RetentionSweeper | None = None

    # -- the documents ---------------------------------------------------------------------

    def upload(self, user: User, filename: str, data: bytes, password: str = "") -> DocumentInfo:
        """Read a file whole, keep it and its passages, and start indexing it for questions.
        A file that cannot be read raises a ValidationError and leaves nothing behind."""
        extracted = extract_upload(
            data, filename, self._settings.document_max_mb * 2**20, password, self._limits
        )
        name = filename.replace("\\", "/").rsplit("/", 1)[-1]
        title = re.sub(r"\.(pdf|docx|txt|md|markdown)$", "", name, flags=re.IGNORECASE)
        info = self.library.add(user, title, extracted, make_passages(extracted), data)
        self._record(user, "document.upload", info, extracted.kind)
        self.index.start(user, info.id)
        return info

    def paste(self, user: User, title: str, text: str) -> DocumentInfo:
        extracted = extract_paste(text)
        title = title.strip() or " ".join(text.split()[:8])
        info = self.library.add(user, title, extracted, make_passages(extracted), None)
        self._record(user, "document.upload", info, "paste")
        self.index.start(user, info.id)
        return info

    def documents(self, user: User, scope: str = "mine") -> list[DocumentInfo]:
        return self.library.documents(user, scope)

    def document(self, user: User, document_id: int) -> DocumentInfo:
        return self.library.document(user, document_id)

    def passages(self, user: User, document_id: int) -> list[Passage]:
        return self.library.passages(user, document_id)

    def share(self, user: User, document_id: int, shared: bool) -> None:
        self.library.set_shared(user, document_id, shared)
        info = self.library.document(user, document_id)
        self._record(user, "document.share" if shared else "document.unshare", info)

    def delete(self, user: User, document_id: int) -> None:
        """The file, its text, passages and vectors: all of it."""
        info = self.library.document(user, document_id, own=True)
        self.library.delete(user, document_id)
        self._record(user, "document.delete", info)

    def start_retention(self, interval: float = DAY_SECONDS) -> DocumentService:
        """Delete expired documents now, then once a day, until `close()`."""
        self._sweeper = RetentionSweeper(self, interval).start()
        return self

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.stop()

    def expire_old(self) -> int:
        """Delete documents older than the retention setting (0 keeps them)."""
        days = self._settings.document_retention_days
        if not days:
            return 0
        count = self.library.expire(days)
        if count and self._audit is not None:
            self._audit.record(
                "system",
                "document.expire",
                "ok",
                parameters={"documents": count, "days": days},
                client="system",
            )
        return count

    # -- models ----------------------------------------------------------------------------

    def text_models(self, user: User) -> list[str]:
        return [entry.name for entry in self._engine.registry().of_kind("text")]

    def default_model(self) -> str:
        names = self.text_models(User("", ""))
        if not names:
            raise ValidationError(
                "No text model is installed. An admin can run `atelier prepare-default-model`.",
                field="model",
            )
        return DEFAULT_TEXT_MODEL if DEFAULT_TEXT_MODEL in names else names[0]

    # -- the analyses ----------------------------------------------------------------------

    def summarize(
        self, user: User, document_id: int, length: str = "medium", model: str | None = None
    ) -> DocumentRun:
        """The whole document, map-reduce, with pages cited per point and the coverage."""
        if length not in LENGTHS:
            raise ValidationError(f"Choose a length: {', '.join(LENGTHS)}.", field="length")
        info, passages, model = self._open(user, document_id, model)
        context = self._engine.tokens.context_length(model)
        answer = min(LENGTHS[length][1], context // 3)
        notes = min(NOTE_TOKENS, max(48, (context - answer - 256) // 4))
        system = summary_map_system(info.unit)
        windows = self._windows(model, passages, info.unit, system, notes)
        task = SummaryTask(
            info.unit, info.pages, windows, length, info.blank, notes, answer_tokens=answer
        )
        return self._submit(user, "summary", info, model, task, f"Summary of {info.title}")

    def extract(
        self,
        user: User,
        document_id: int,
        fields: list[str] | None = None,
        model: str | None = None,
    ) -> DocumentRun:
        """Parties, dates, amounts, obligations, termination and renewal, or the fields the
        person names, with the page of each item."""
        wanted = self._fields(fields)
        info, passages, model = self._open(user, document_id, model)
        rows = min(EXTRACTION_TOKENS, self._engine.tokens.context_length(model) // 4)
        windows = self._windows(
            model, passages, info.unit, extraction_system(info.unit, wanted), rows
        )
        task = ExtractionTask(info.unit, info.pages, windows, wanted, info.blank, rows)
        return self._submit(user, "extraction", info, model, task, f"Fields of {info.title}")

    def ask(
        self, user: User, document_id: int, question: str, model: str | None = None
    ) -> DocumentRun:
        """The passages nearest the question (this document's only), then an answer that
        cites their pages; "not found in the document" when none is near."""
        question = " ".join(str(question).split())
        if not question:
            raise ValidationError("Write a question about the document.", field="question")
        if len(question) > MAX_QUESTION_CHARS:
            raise ValidationError(
                f"The question is {len(question):,} characters; ask in at most "
                f"{MAX_QUESTION_CHARS:,}.",
                field="question",
            )
        info, passages, model = self._open(user, document_id, model)
        by_position = {p.position: p for p in passages}
        nearest = self.index.nearest(user, document_id, question, TOP_K)
        chosen = [by_position[p] for p, score in nearest if score >= self._min_relevance]
        if not chosen:
            result = QuestionResult(question, NOT_FOUND, False, (), (), 0, 0.0)
            return DocumentRun("answer", info, ready=result)
        answer = min(ANSWER_TOKENS, self._engine.tokens.context_length(model) // 4)
        probe = QuestionTask(info.unit, info.pages, question, (), answer)
        system, user_text = (m.content for m in probe.prompts[0].messages)
        windows = self._windows(model, chosen, info.unit, system + user_text, answer)
        # The nearest passages that fit the model at once, best first.
        fitting = {(p.position, p.text) for p in windows[0].passages}
        chosen = [p for p in chosen if (p.position, p.text) in fitting] or [windows[0].passages[0]]
        task = QuestionTask(info.unit, info.pages, question, tuple(chosen), answer)
        return self._submit(user, "answer", info, model, task, f"Question on {info.title}")

    def compare(
        self, user: User, old_id: int, new_id: int, model: str | None = None
    ) -> DocumentRun:
        """What changed from one version to the other, by section, and a model's summary."""
        if old_id == new_id:
            raise ValidationError("Choose two different documents to compare.", field="other")
        old, old_passages, _ = self._open(user, old_id, model)
        new, new_passages, model = self._open(user, new_id, model)
        if old.unit != new.unit:
            raise ValidationError(
                "Compare two documents of one kind: both numbered by page (PDF) or both by "
                "paragraph (Word, text).",
                field="other",
            )
        changes = tuple(
            differences(sections(old_passages, old.unit), sections(new_passages, new.unit))
        )
        if not changes:
            result = ComparisonResult((), (), "", 0, 0.0)
            return DocumentRun("comparison", new, ready=result, other=old)
        context = self._engine.tokens.context_length(model)
        per_side = max(400, min(4000, (context - 600) * 3 // 2))  # characters, about
        task = ComparisonTask(new.unit, new.pages, changes, per_side, min(480, context // 3))
        title = f"Changes from {old.title} to {new.title}"
        run = self._submit(user, "comparison", new, model, task, title)
        return DocumentRun("comparison", new, run.job, other=old)

    # -- the steps' details ----------------------------------------------------------------

    def _open(self, user: User, document_id: int, model: str | None):
        info = self.library.document(user, document_id)
        model = model or self.default_model()
        self._engine.registry().get(model, kind="text")
        return info, self.library.passages(user, document_id), model

    def _windows(self, model, passages, unit, system: str, answer_tokens: int):
        """The passages packed into windows that fit the model with the instructions and
        the answer (and at most WINDOW_TOKENS, so many windows decode together)."""
        tokens = self._engine.tokens
        context = tokens.context_length(model)
        empty = [
            {"role": "system", "content": system},
            {"role": "user", "content": quote([], unit)},
        ]
        overhead = len(tokens.chat_ids(model, empty))
        budget = min(context - overhead - answer_tokens - MARGIN_TOKENS, WINDOW_TOKENS)
        if budget < MIN_WINDOW_TOKENS:
            raise ValidationError(
                f"{model} reads too little at once ({context:,} tokens) to work through a "
                "document: choose a model with a longer context.",
                field="model",
            )
        counts = tokens.count(
            model, [f"{marker(unit, p.unit_start, p.unit_end)}\n\n{p.text}" for p in passages]
        )
        pieces, sizes = [], []
        for passage, count in zip(passages, counts, strict=True):
            parts = -(-count // budget)  # a passage longer than a window goes in parts
            if parts == 1:
                pieces.append(passage)
                sizes.append(count)
                continue
            words = passage.text.split()
            size = -(-len(words) // parts)
            for start in range(0, len(words), size):
                pieces.append(replace(passage, text=" ".join(words[start : start + size])))
                sizes.append(-(-count // parts))
        return tuple(make_windows(pieces, sizes, budget))

    def _fields(self, fields: list[str] | None) -> tuple[str, ...]:
        names = [" ".join(str(f).split()) for f in (fields or list(FIELDS))]
        names = list(dict.fromkeys(n for n in names if n))
        if not names:
            raise ValidationError("Name at least one field to look for.", field="fields")
        if len(names) > MAX_FIELDS:
            raise ValidationError(f"Ask for at most {MAX_FIELDS} fields at once.", field="fields")
        for name in names:
            if not FIELD_NAME.match(name) or "|" in name:
                raise ValidationError(
                    f"“{name[:60]}” is not a field name: use words (letters, digits, spaces), "
                    "at most 60 characters.",
                    field="fields",
                )
        return tuple(names)

    def _submit(self, user, kind, info, model, task, title) -> DocumentRun:
        job = self._engine.submit(DocumentRequest(model, task, title=title), user)
        self._record(user, f"document.{kind}", info, model=model)
        return DocumentRun(kind, info, job)

    def _record(self, user: User, kind: str, info: DocumentInfo, detail: str = "", model=None):
        if self._audit is None:
            return
        self._audit.record(
            user,
            kind,
            "ok",
            subject=f"document {info.id}",
            model=model,
            parameters={"title": info.title, "pages": info.pages, "unit": info.unit},
            client=self._client,
            detail=detail or None,
        )


class RetentionSweeper:
    """Deletes documents past the retention setting at start, then once a day."""

    def __init__(self, service: DocumentService, interval: float = DAY_SECONDS):
        self._service = service
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="document-retention", daemon=True)

    def start(self) -> RetentionSweeper:
        self._sweep()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sweep()

    def _sweep(self) -> None:
        try:
            removed = self._service.expire_old()
            if removed:
                log.info("retention: deleted %d document(s)", removed)
        except Exception:
            log.exception("the document retention sweep failed")
