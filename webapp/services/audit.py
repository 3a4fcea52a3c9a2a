"""The audit log: who did what, when, with which model, and how it went; usage over time;
and the optional quotas, counted from the same log.

`record` takes plain values so the engine (when a job ends), the accounts service and the
CLI all write the same kind of entry. Reading the log is for admins only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, literal, select

from webapp.errors import Forbidden, QuotaExceeded, ValidationError
from webapp.services.paging import Page, check_page
from webapp.settings import Settings
from webapp.store import AuditEvent, Store, utc_now
from webapp.users import User

OUTCOMES = ("ok", "failed", "cancelled", "interrupted", "refused")
CLIENTS = ("page", "cli", "api", "system")
# Kinds of work that run on the GPU: what quotas and usage charts count.
JOB_KINDS = ("image", "text", "chat", "embedding", "document", "training")
KIND = re.compile(r"^[a-z][a-z0-9_.-]{0,39}$")
BUCKETS = {"hour": ("%Y-%m-%dT%H:00", 'YYYY-MM-DD"T"HH24:00'), "day": ("%Y-%m-%d", "YYYY-MM-DD")}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    kind: str
    outcome: str
    subject: str | None
    model: str | None
    tool: str | None
    parameters: dict[str, Any]
    prompt: str | None
    prompt_hash: str | None
    images: int
    gpu_seconds: float
    client: str
    detail: str | None


@dataclass(frozen=True)
class AuditFilter:
    """Each field set narrows the list; `until` is exclusive."""

    actor: str | None = None
    kind: str | None = None
    outcome: str | None = None
    model: str | None = None
    client: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class UsagePoint:
    """Jobs, images and GPU seconds of one person (or model) in one hour or day (UTC)."""

    bucket: str  # 2026-11-29 or 2026-11-29T14:00
    key: str  # the person's id or the model's name
    jobs: int
    images: int
    gpu_seconds: float


class AuditService:
    def __init__(self, store: Store, settings: Settings, clock: Callable[[], datetime] = utc_now):
        self._store = store
        self._settings = settings
        self._clock = clock

    # -- writing -------------------------------------------------------------------------

    def record(
        self,
        who: User | str,
        kind: str,
        outcome: str,
        *,
        model: str | None = None,
        tool: str | None = None,
        parameters: dict[str, Any] | None = None,
        prompt: str | None = None,
        images: int = 0,
        gpu_seconds: float = 0.0,
        client: str = "page",
        subject: str | None = None,
        detail: str | None = None,
    ) -> int:
        """Add one entry; returns its id. `who` is the person (or, for a failed sign-in,
        the name that was typed). The prompt is kept whole or only as its SHA-256, as the
        `audit_prompts` setting says."""
        if not KIND.match(kind):
            raise ValueError(f"audit kind {kind!r}: lower-case letters, digits, '.', '_', '-'")
        if outcome not in OUTCOMES:
            raise ValueError(f"audit outcome {outcome!r}: one of {', '.join(OUTCOMES)}")
        if client not in CLIENTS:
            raise ValueError(f"audit client {client!r}: one of {', '.join(CLIENTS)}")
        digest = None if prompt is None else hashlib.sha256(prompt.encode()).hexdigest()
        event = AuditEvent(
            at=self._clock(),
            actor=(who.id if isinstance(who, User) else str(who))[:255],
            kind=kind,
            outcome=outcome,
            subject=None if subject is None else subject[:255],
            model=model,
            tool=tool,
            parameters=json.loads(json.dumps(parameters or {}, default=str)),
            prompt=prompt if self._settings.audit_prompts == "full" else None,
            prompt_hash=digest,
            images=int(images),
            gpu_seconds=float(gpu_seconds),
            client=client,
            detail=detail,
        )
        with self._store.session() as session:
            session.add(event)
            session.flush()
            return event.id

    def require_admin(self, user: User, kind: str, action: str, client: str = "page") -> None:
        """Refuse a non-admin, and record that they asked."""
        if not user.is_admin:
            message = f"Only an admin can {action}. Ask your Atelier admin."
            self.record(user, kind, "refused", client=client, detail=message)
            raise Forbidden(message)

    # -- reading (admins) ----------------------------------------------------------------

    def query(
        self, user: User, filters: AuditFilter = AuditFilter(), page: int = 1, per_page: int = 50
    ) -> Page[AuditEntry]:
        """Newest first."""
        self.require_admin(user, "audit.query", "read the audit log")
        offset = check_page(page, per_page)
        chosen = _filtered(select(AuditEvent), filters)
        with self._store.session() as session:
            total = session.scalar(select(func.count()).select_from(chosen.subquery()))
            rows = session.scalars(
                chosen.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                .offset(offset)
                .limit(per_page)
            )
            return Page([_entry(row) for row in rows], total or 0, page, per_page)

    def export_csv(self, user: User, filters: AuditFilter = AuditFilter()) -> str:
        """The filtered log as CSV, oldest first. Cells that a spreadsheet would run as a
        formula start with an apostrophe."""
        self.require_admin(user, "audit.export", "download the audit log")
        names = [f.name for f in fields(AuditEntry)]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(names)
        chosen = _filtered(select(AuditEvent), filters).order_by(AuditEvent.at, AuditEvent.id)
        with self._store.session() as session:
            for row in session.scalars(chosen.execution_options(yield_per=1000)):
                entry = _entry(row)
                writer.writerow(_csv_cell(getattr(entry, name)) for name in names)
        return buffer.getvalue()

    def usage(
        self,
        user: User,
        by: str = "person",
        bucket: str = "day",
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[UsagePoint]:
        """GPU work per person or per model, per hour or day (UTC), for charts."""
        self.require_admin(user, "audit.usage", "see usage")
        if by not in ("person", "model"):
            raise ValidationError("Group usage by person or model.", field="by")
        if bucket not in BUCKETS:
            raise ValidationError("Count usage per hour or per day.", field="bucket")
        key = AuditEvent.actor if by == "person" else func.coalesce(AuditEvent.model, "")
        when = _bucket(AuditEvent.at, self._store.engine.dialect.name, bucket)
        chosen = _filtered(
            select(
                when.label("bucket"),
                key.label("key"),
                func.count(),
                func.coalesce(func.sum(AuditEvent.images), 0),
                func.coalesce(func.sum(AuditEvent.gpu_seconds), 0.0),
            ),
            AuditFilter(since=since, until=until),
        )
        chosen = chosen.where(AuditEvent.kind.in_(JOB_KINDS), AuditEvent.outcome != "refused")
        chosen = chosen.group_by(when, key).order_by(when, key)
        with self._store.session() as session:
            return [
                UsagePoint(str(row[0]), row[1], row[2], int(row[3]), round(float(row[4]), 3))
                for row in session.execute(chosen)
            ]

    # -- quotas --------------------------------------------------------------------------

    def check_quota(
        self,
        user: User,
        kind: str,
        count: int = 1,
        *,
        pending_jobs: int = 0,
        pending_images: int = 0,
        client: str = "page",
    ) -> None:
        """Raise QuotaExceeded if one more job of `kind` making `count` images would pass
        the person's quota. Finished jobs are counted from this log; `pending_*` are the
        person's jobs still queued or running, which only the engine knows. A refusal is
        recorded."""
        if kind not in JOB_KINDS:
            return
        now = self._clock()
        jobs_limit = self._settings.quota_jobs_per_hour
        images_limit = self._settings.quota_images_per_day if kind == "image" else 0
        try:
            if jobs_limit:
                jobs = self._recent(user, now - timedelta(hours=1), images=False)
                hour = timedelta(hours=1)
                _check(jobs, pending_jobs, 1, jobs_limit, hour, now, "job", "this hour")
            if images_limit:
                if count > images_limit:
                    raise QuotaExceeded(
                        f"{count} images is more than the {images_limit} a day each person "
                        "may make: ask for fewer.",
                        field="num_images",
                    )
                made = self._recent(user, now - timedelta(days=1), images=True)
                day, period = timedelta(days=1), "today (the last 24 hours)"
                _check(made, pending_images, count, images_limit, day, now, "image", period)
        except QuotaExceeded as refused:
            self.record(user, kind, "refused", images=0, client=client, detail=refused.message)
            raise

    def _recent(self, user: User, since: datetime, images: bool) -> list[tuple[datetime, int]]:
        """(time, jobs or images) of the person's counted jobs since `since`, oldest first."""
        chosen = (
            select(AuditEvent.at, AuditEvent.images if images else literal(1))
            .where(
                AuditEvent.actor == user.id,
                AuditEvent.kind.in_(JOB_KINDS),
                AuditEvent.outcome != "refused",
                AuditEvent.at > since,
            )
            .order_by(AuditEvent.at)
        )
        with self._store.session() as session:
            return [(at, int(amount)) for at, amount in session.execute(chosen)]


def _check(
    used: list[tuple[datetime, int]],
    pending: int,
    asked: int,
    limit: int,
    window: timedelta,
    now: datetime,
    what: str,
    period: str,
) -> None:
    """Refuse when what was `used` in the window, what is `pending` and what is `asked`
    together pass `limit`, saying when enough of `used` leaves the window."""
    total = sum(amount for _, amount in used) + pending
    if total + asked <= limit:
        return
    excess, freed, retry_at = total + asked - limit, 0, None
    for at, amount in used:
        freed += amount
        if freed >= excess:
            retry_at = at + window
            break
    if total >= limit:
        done = f"You have used your {_count(limit, what)} for {period}"
    else:
        done = (
            f"You have made {total} of your {_count(limit, what)} for {period}, and {asked} "
            "more would pass that"
        )
    if retry_at is None:  # only jobs still queued or running stand in the way
        raise QuotaExceeded(f"{done}, counting the jobs still in the queue: wait for them.")
    minutes = max(1, round((retry_at - now).total_seconds() / 60))
    raise QuotaExceeded(
        f"{done}. You can go on in {_duration(minutes)}, at {retry_at:%H:%M} UTC.",
        retry_at=retry_at,
    )


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' * (number != 1)}"


def _duration(minutes: int) -> str:
    hours, minutes = divmod(minutes, 60)
    parts = ([_count(hours, "hour")] if hours else []) + (
        [_count(minutes, "minute")] if minutes else []
    )
    return " ".join(parts)


def _filtered(chosen: Select, filters: AuditFilter) -> Select:
    for name in ("actor", "kind", "outcome", "model", "client"):
        value = getattr(filters, name)
        if value:
            chosen = chosen.where(getattr(AuditEvent, name) == value)
    if filters.since is not None:
        chosen = chosen.where(AuditEvent.at >= filters.since)
    if filters.until is not None:
        chosen = chosen.where(AuditEvent.at < filters.until)
    return chosen


def _bucket(column: Any, dialect: str, bucket: str) -> Any:
    sqlite_format, postgres_format = BUCKETS[bucket]
    if dialect == "sqlite":
        return func.strftime(sqlite_format, column)
    return func.to_char(column, postgres_format)


def _entry(row: AuditEvent) -> AuditEntry:
    return AuditEntry(**{f.name: getattr(row, f.name) for f in fields(AuditEntry)})


def _csv_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
