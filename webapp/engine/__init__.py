"""The job engine: one per device, the only code that runs models or their tokenizers.

This package's plain types (requests, jobs, results) import no torch; build an engine with
`webapp.engine.factory.build_engine(settings)`.
"""

from webapp.engine.core import Engine
from webapp.engine.jobs import (
    ImageResult,
    Job,
    JobCancelled,
    JobFailed,
    JobStatus,
    Progress,
    TextResult,
)
from webapp.engine.requests import ChatMessage, ImageRequest, LoraWeight, TextRequest

__all__ = [
    "ChatMessage",
    "Engine",
    "ImageRequest",
    "ImageResult",
    "Job",
    "JobCancelled",
    "JobFailed",
    "JobStatus",
    "LoraWeight",
    "Progress",
    "TextRequest",
    "TextResult",
]
