"""API keys: each person makes, names and revokes their own; the API asks who a key is.

A key is 256 random bits, shown once when it is made. Only its SHA-256 is kept (a key is
not a password: it has all the entropy it needs, so a fast hash is as strong as a slow
one, and every API call can afford it), with a short prefix that lets a person tell their
keys apart. A key works while it is not revoked and its owner is not disabled. In
single-user mode there are no people to own keys: the one key `ATELIER_API_KEY` names is
the local user's, and without it the API is off.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from sqlalchemy import func, select

from webapp.errors import NotFound, Unauthenticated, ValidationError
from webapp.services.audit import AuditService
from webapp.settings import Settings
from webapp.store import ApiKey, Person, Store, utc_now
from webapp.users import User, local_user

TOKEN_START = "atl_"
PREFIX_CHARS = len(TOKEN_START) + 8
MAX_NAME_CHARS = 60
MAX_ACTIVE_KEYS = 20  # per person: enough for every tool they own, few enough to review

MISSING = (
    "Send an Atelier API key: 'Authorization: Bearer <key>' (OpenAI clients), or HTTP basic "
    "auth with the key as the password (AUTOMATIC1111 clients). Make one on the API keys page."
)
WRONG_KEY = "That API key is not valid. Check it, or make a new one on the API keys page."
REVOKED = "That API key was revoked. Make a new one on the API keys page."
DISABLED = "This account is disabled. Ask your Atelier admin."
API_OFF = (
    "The API is off: in single-user mode it accepts only the key that ATELIER_API_KEY sets. "
    "Ask whoever runs Atelier to set it."
)


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as its owner (or an admin) sees it: never the key itself."""

    id: int
    owner_id: str
    name: str
    prefix: str
    created: datetime
    revoked: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked is None


@dataclass(frozen=True)
class NewApiKey:
    info: ApiKeyInfo
    key: str  # shown once, then only its hash is kept


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeyService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        audit: AuditService,
        clock: Callable[[], datetime] = utc_now,
        client: str = "page",
    ):
        self._store = store
        self._settings = settings
        self._audit = audit
        self._clock = clock
        self._client = client

    # -- people: their own keys ------------------------------------------------------------

    @property
    def per_person(self) -> bool:
        """Whether people make keys of their own (sign-in is on); else the one set key."""
        return self._settings.auth_mode != "none"

    def create(self, user: User, name: str) -> NewApiKey:
        """A new key for `user`, named so they know which tool holds it."""
        if not self.per_person:
            raise ValidationError(API_OFF, field="name")
        name = _clean_name(name)
        key = TOKEN_START + secrets.token_urlsafe(32)
        with self._store.session() as session:
            active = session.scalar(
                select(func.count())
                .select_from(ApiKey)
                .where(ApiKey.owner_id == user.id, ApiKey.revoked.is_(None))
            )
            if active >= MAX_ACTIVE_KEYS:
                raise ValidationError(
                    f"You have {active} keys: revoke one you no longer use first.", field="name"
                )
            row = ApiKey(
                owner_id=user.id,
                name=name,
                hash=key_hash(key),
                prefix=key[:PREFIX_CHARS],
                created=self._clock(),
            )
            session.add(row)
            session.flush()
            info = _info(row)
        self._audit.record(
            user, "api_key.create", "ok", subject=info.prefix, client=self._client, detail=name
        )
        return NewApiKey(info, key)

    def keys(self, user: User, everyone: bool = False) -> list[ApiKeyInfo]:
        """The person's keys, newest first; an admin may ask for everyone's."""
        if everyone:
            self._audit.require_admin(user, "api_key.list", "see everyone's API keys")
        chosen = select(ApiKey).order_by(ApiKey.created.desc(), ApiKey.id.desc())
        if not everyone:
            chosen = chosen.where(ApiKey.owner_id == user.id)
        with self._store.session() as session:
            return [_info(row) for row in session.scalars(chosen)]

    def revoke(self, user: User, key_id: int) -> ApiKeyInfo:
        """Stop a key working at once: one's own, or (admins) anyone's."""
        with self._store.session() as session:
            row = session.get(ApiKey, key_id)
            if row is None or (row.owner_id != user.id and not user.is_admin):
                raise NotFound("That API key does not exist or is not yours.", field="key")
            if row.revoked is None:
                row.revoked = self._clock()
            info = _info(row)
        self._audit.record(
            user, "api_key.revoke", "ok", subject=info.prefix, client=self._client,
            detail=f"{info.name} (of {info.owner_id})",
        )  # fmt: skip
        return info

    # -- the API: who a key belongs to -------------------------------------------------------

    def person_for(self, key: str | None, address: str = "unknown") -> User:
        """The person a key belongs to; Unauthenticated (recorded) if there is none now."""
        if not key:
            raise Unauthenticated(MISSING)
        if not self.per_person:
            expected = self._settings.api_key
            if expected is None:
                self._refused(f"address {address}", API_OFF, forbidden=True)
            if not hmac.compare_digest(key.encode(), expected.encode()):
                self._refused(f"address {address}", WRONG_KEY)
            return local_user(self._settings)
        digest = key_hash(key)
        with self._store.engine.connect() as connection:
            row = connection.execute(
                select(
                    ApiKey.hash,
                    ApiKey.prefix,
                    ApiKey.revoked,
                    Person.id,
                    Person.display_name,
                    Person.role,
                    Person.disabled,
                )  # fmt: skip
                .join(Person, Person.id == ApiKey.owner_id)
                .where(ApiKey.hash == digest)
            ).first()
        if row is None or not hmac.compare_digest(row.hash, digest):
            self._refused(f"address {address}", WRONG_KEY)
        if row.revoked is not None:
            self._refused(row.id, REVOKED, row.prefix)
        if row.disabled:
            self._refused(row.id, DISABLED, row.prefix, forbidden=True)
        return User(row.id, row.display_name, is_admin=row.role == "admin")

    def _refused(
        self, who: str, message: str, prefix: str | None = None, forbidden: bool = False
    ) -> NoReturn:
        self._audit.record(who, "api_key", "refused", subject=prefix, client="api", detail=message)
        raise Unauthenticated(message, forbidden=forbidden)


def _clean_name(name: str) -> str:
    text = " ".join((name or "").split())
    if not text:
        raise ValidationError("Name the key after the tool that will use it.", field="name")
    if len(text) > MAX_NAME_CHARS or not text.isprintable():
        raise ValidationError(
            f"A key's name is at most {MAX_NAME_CHARS} printable characters.", field="name"
        )
    return text


def _info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(row.id, row.owner_id, row.name, row.prefix, row.created, row.revoked)
