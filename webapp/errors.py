"""Domain errors: a plain-language message for people, and the field it concerns.

Pages show `message` next to `field`; logs keep the chained cause.
"""

import re

# An absolute path with at least one folder: /srv/atelier/models/x/config.json
ABSOLUTE_PATH = re.compile(r"(?<![\w.~])/(?:[^\s/'\"():,]+/)+([^\s/'\"():,]*)")


def without_paths(text: str) -> str:
    """`text` with each absolute server path cut to its last part: people see what is wrong
    (a file name), not how the server's disk is laid out."""
    return ABSOLUTE_PATH.sub(lambda match: match.group(1) or "…", text)


class AtelierError(Exception):
    """Base of every error Atelier shows to a person."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class SettingsError(AtelierError):
    """A setting has a value that is not allowed; start-up stops."""


class ValidationError(AtelierError):
    """A request carries a value that is not allowed."""


class ModelNotFound(AtelierError):
    """No model of that name is installed."""


class ModelRefused(AtelierError):
    """A model exists but Atelier will not load it (unsafe format, bad name)."""


class ModelLoadError(AtelierError):
    """A model could not be loaded: missing or corrupt files, or too big."""


class Forbidden(AtelierError):
    """The user asking has no right to do this."""


class QueueFull(AtelierError):
    """The job queue (the user's share or the whole) is full. `retry_after` estimates the
    seconds until there is room (an API answers it as Retry-After)."""

    def __init__(self, message: str, retry_after: int = 0):
        super().__init__(message)
        self.retry_after = retry_after


class Unauthenticated(AtelierError):
    """An API call without a usable key (missing, wrong, revoked). `forbidden`: the key is
    known but its owner may not use it now (disabled), or the API is off."""

    def __init__(self, message: str, forbidden: bool = False):
        super().__init__(message)
        self.forbidden = forbidden


class NotFound(AtelierError):
    """No such item for the person asking: missing and not theirs get the same message, so
    an id never tells whether someone else's item exists."""


class SignInFailed(AtelierError):
    """A sign-in was refused: a wrong name or password, a lockout, or a disabled account."""


class QuotaExceeded(AtelierError):
    """The person has used their share of jobs or images for now; `retry_at` says when they
    can go on (None when the request could never fit)."""

    def __init__(self, message: str, field: str | None = None, retry_at=None):
        super().__init__(message, field)
        self.retry_at = retry_at
