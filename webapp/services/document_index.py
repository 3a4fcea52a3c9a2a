"""Passage vectors for questions: made at upload (the engine's embedding lane, in the
background), completed on demand, and ranked owner first.

Ranking reads one document's vectors through the library, whose query names the owner
first, then scores them with numpy: the vectors have length 1, so a dot product is the
cosine similarity.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from webapp.doctext.chunks import Passage
from webapp.embedded import DEFAULT_EMBEDDING_MODEL
from webapp.engine import Engine, Job
from webapp.engine.requests import EmbeddingRequest
from webapp.errors import AtelierError, ValidationError
from webapp.services.document_library import DocumentLibrary
from webapp.users import User

log = logging.getLogger(__name__)

WAIT_SECONDS = 600


class DocumentIndex:
    def __init__(self, engine: Engine, library: DocumentLibrary, preferred: str | None = None):
        self._engine = engine
        self._library = library
        self._preferred = preferred or DEFAULT_EMBEDDING_MODEL
        self._jobs: dict[int, tuple[Job, threading.Event]] = {}  # the event: vectors kept
        self._lock = threading.Lock()

    def embedding_model(self) -> str:
        names = [entry.name for entry in self._engine.registry().of_kind("embedding")]
        if not names:
            raise ValidationError(
                "Questions need an embedding model, and none is installed. An admin can run "
                "`atelier prepare-default-model`.",
                field="question",
            )
        return self._preferred if self._preferred in names else names[0]

    def job(self, document_id: int) -> Job | None:
        """The indexing under way for a document, if any (for its progress)."""
        with self._lock:
            running = self._jobs.get(document_id)
        return running[0] if running else None

    def wait(self, document_id: int, timeout: float = WAIT_SECONDS) -> None:
        """Until the indexing under way (if any) has its vectors kept."""
        with self._lock:
            running = self._jobs.get(document_id)
        if running is not None:
            running[1].wait(timeout)

    def start(self, user: User, document_id: int) -> Job | None:
        """Index a new document's passages in the background; None when there is no
        embedding model (questions then say so; the rest works)."""
        try:
            model = self.embedding_model()
        except ValidationError:
            return None
        passages = self._library.unindexed(user, document_id, model)
        if not passages:
            return None
        try:
            job = self._submit(user, document_id, model, passages)
        except AtelierError as error:  # a full queue, say: the first question indexes it
            log.info("indexing document %s waits for a question: %s", document_id, error.message)
            return None

        def save() -> None:
            try:
                self._save(document_id, model, passages, job)
            except AtelierError as error:
                log.info("indexing document %s did not finish: %s", document_id, error.message)
            except Exception:
                log.exception("indexing document %s failed", document_id)

        threading.Thread(target=save, name=f"index-document-{document_id}", daemon=True).start()
        return job

    def nearest(
        self, user: User, document_id: int, question: str, count: int
    ) -> list[tuple[int, float]]:
        """The positions of the `count` passages most like the question, with their cosine
        similarity, best first."""
        model = self.embedding_model()
        self._complete(user, document_id, model)
        asked = self._engine.submit(EmbeddingRequest(model, (question,), "Question"), user)
        query = asked.result(WAIT_SECONDS).vectors[0]
        vectors = self._library.vectors(user, document_id, model)
        if len(vectors.positions) and vectors.matrix.shape[1] != len(query):
            # Kept by other files under the same model name: index the document again.
            passages = self._library.passages(user, document_id)
            self._save(
                document_id, model, passages, self._submit(user, document_id, model, passages)
            )
            vectors = self._library.vectors(user, document_id, model)
        if not len(vectors.positions):
            return []
        scores = vectors.matrix @ query
        best = np.argsort(-scores, kind="stable")[:count]
        return [(int(vectors.positions[i]), float(scores[i])) for i in best]

    def _complete(self, user: User, document_id: int, model: str) -> None:
        """Every passage has a vector from `model`: wait for indexing under way, then index
        whatever is still missing."""
        self.wait(document_id)
        missing = self._library.unindexed(user, document_id, model)
        if missing:
            self._save(document_id, model, missing, self._submit(user, document_id, model, missing))

    def _submit(self, user: User, document_id: int, model: str, passages: list[Passage]) -> Job:
        texts = tuple(p.text for p in passages)
        job = self._engine.submit(EmbeddingRequest(model, texts, "Indexing a document"), user)
        with self._lock:
            self._jobs[document_id] = (job, threading.Event())
        return job

    def _save(self, document_id: int, model: str, passages: list[Passage], job: Job) -> None:
        try:
            result = job.result(WAIT_SECONDS)
            positions = [p.position for p in passages]
            self._library.save_vectors(document_id, model, positions, result.vectors)
        finally:
            with self._lock:
                running = self._jobs.get(document_id)
                if running is not None and running[0] is job:
                    del self._jobs[document_id]
                    running[1].set()
