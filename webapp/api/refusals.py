"""Errors as both protocols answer them: a status, a message that says what to do, the
field concerned, and for a full queue or a quota, when to try again. Each protocol wraps
a Refusal in its own shape (OpenAI's `{"error": {...}}`, AUTOMATIC1111's `{"detail": ...}`).
An unexpected fault is logged with its traceback and answered with a plain message only."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from webapp.api.bodies import BodyTooLarge
from webapp.engine.jobs import JobCancelled, JobFailed
from webapp.errors import (
    AtelierError,
    Forbidden,
    ModelLoadError,
    ModelNotFound,
    NotFound,
    QueueFull,
    QuotaExceeded,
    Unauthenticated,
    ValidationError,
)
from webapp.store import utc_now

log = logging.getLogger(__name__)

UNEXPECTED = (
    "Atelier could not answer this request. Try again; if it keeps failing, tell your "
    "Atelier admin (the server log has the details)."
)


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str
    kind: str  # OpenAI's error type
    code: str | None = None
    param: str | None = None
    retry_after: int | None = None  # seconds

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


def refusal_of(error: BaseException) -> Refusal:
    """How to answer `error`; an unexpected one is logged here."""
    if not isinstance(error, AtelierError):
        log.exception("an API request failed", exc_info=error)
        return Refusal(500, UNEXPECTED, "server_error")
    message, field = error.message, error.field
    if isinstance(error, Unauthenticated):
        if error.forbidden:
            return Refusal(403, message, "permission_error", "forbidden")
        return Refusal(401, message, "authentication_error", "invalid_api_key")
    if isinstance(error, BodyTooLarge):
        return Refusal(413, message, "invalid_request_error", "request_too_large")
    if isinstance(error, QueueFull):
        return Refusal(429, message, "rate_limit_error", "queue_full", None, error.retry_after)
    if isinstance(error, QuotaExceeded):
        if error.retry_at is None:  # it could never fit
            return Refusal(400, message, "invalid_request_error", "over_quota", field)
        seconds = max(1, math.ceil((error.retry_at - utc_now()).total_seconds()))
        return Refusal(429, message, "rate_limit_error", "over_quota", field, seconds)
    if isinstance(error, ModelNotFound):
        return Refusal(404, message, "invalid_request_error", "model_not_found", "model")
    if isinstance(error, Forbidden):
        return Refusal(403, message, "permission_error", "forbidden", field)
    if isinstance(error, NotFound):
        return Refusal(404, message, "invalid_request_error", "not_found", field)
    if isinstance(error, JobCancelled):
        return Refusal(409, message, "invalid_request_error", "cancelled")
    if isinstance(error, JobFailed | ModelLoadError):
        return Refusal(500, message, "server_error", "job_failed")
    if isinstance(error, ValidationError):
        return Refusal(400, message, "invalid_request_error", "invalid_value", field)
    return Refusal(400, message, "invalid_request_error", None, field)
