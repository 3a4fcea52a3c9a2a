"""Embeddings for the API's clients: texts in, one vector each out, from the engine's
embedding lane (the documents service uses the same lane for its passages)."""

from __future__ import annotations

from webapp.engine import Engine, Job
from webapp.engine.requests import EmbeddingRequest
from webapp.errors import ValidationError
from webapp.registry import ModelEntry
from webapp.users import User


class EmbeddingService:
    def __init__(self, engine: Engine, client: str = "page"):
        self._engine = engine
        self._client = client  # where the jobs come from, for the audit log

    def models(self, user: User) -> list[ModelEntry]:
        return self._engine.registry().of_kind("embedding")

    def embed(self, texts: tuple[str, ...], user: User, model: str | None = None) -> Job:
        """Queue the texts; the job's result is an EmbeddingResult."""
        model = model or self._default_model(user)
        self._engine.registry().get(model, kind="embedding")
        request = EmbeddingRequest(model=model, texts=texts, title="Embeddings")
        return self._engine.submit(request, user, client=self._client)

    def _default_model(self, user: User) -> str:
        models = self.models(user)
        if not models:
            raise ValidationError(
                "No embedding model is installed. An admin can run "
                "`atelier prepare-default-model`, which places all-MiniLM-L6-v2.",
                field="model",
            )
        return models[0].name
