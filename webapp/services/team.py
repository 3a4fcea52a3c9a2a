"""The services over the store, built in one place: people and sign-in, API keys, my work,
audit.

Pages build them once per process (a cached resource); the CLI builds them with
`client="cli"`, so the audit log says where each action came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher

from webapp.services.accounts import AccountsService
from webapp.services.api_keys import ApiKeyService
from webapp.services.audit import AuditService
from webapp.services.history import HistoryService
from webapp.settings import Settings
from webapp.store import Store, open_store, utc_now


@dataclass
class TeamServices:
    store: Store
    audit: AuditService
    accounts: AccountsService
    history: HistoryService
    api_keys: ApiKeyService

    def close(self) -> None:
        self.store.close()


def build_team_services(
    settings: Settings,
    *,
    client: str = "page",
    clock: Callable[[], datetime] = utc_now,
    hasher: PasswordHasher | None = None,
    store: Store | None = None,
) -> TeamServices:
    """Open (and migrate) the store unless one is given, then build the services on it."""
    store = store or open_store(settings)
    audit = AuditService(store, settings, clock)
    return TeamServices(
        store=store,
        audit=audit,
        accounts=AccountsService(store, settings, audit, hasher=hasher, clock=clock, client=client),
        history=HistoryService(store, audit, clock, client=client),
        api_keys=ApiKeyService(store, settings, audit, clock, client=client),
    )
