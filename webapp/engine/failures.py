"""What a person reads when their job fails: the same words from every lane."""

from __future__ import annotations

OOM_MESSAGE = (
    "The GPU ran out of memory for this job. Try a smaller size or fewer images, "
    "or try again when the queue is quieter."
)
FAILED_MESSAGE = (
    "This job failed. Try again; if it keeps failing, tell your Atelier admin "
    "(the server log has the details)."
)


def failure_message(error: BaseException, otherwise: str) -> str:
    """What the person reads: what to try after running out of memory, or `otherwise`."""
    out_of_memory = (
        type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower()
    )
    return OOM_MESSAGE if out_of_memory else otherwise
