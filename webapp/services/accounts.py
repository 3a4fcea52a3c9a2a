"""People and signing in: built-in accounts (argon2 passwords, lockout), session tokens,
and the people the company's sign-on (OIDC) or reverse proxy vouches for.

Every admin operation checks the caller is an admin and is recorded in the audit log, as
are sign-ins, failed ones included. A wrong password and an unknown name get the same
message and cost the same (an unknown name is checked against a dummy hash).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import NoReturn

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from webapp.auth import (
    InvalidSession,
    SessionClaims,
    load_or_create_secret,
    password_hasher,
    read_session,
    sign_session,
    user_from_proxy,
)
from webapp.errors import Forbidden, NotFound, SignInFailed, ValidationError
from webapp.services.audit import AuditService
from webapp.services.people import (
    Account,
    account_of,
    check_login,
    check_password,
    check_role,
    clean_display_name,
    clean_email,
    user_of,
)
from webapp.settings import Settings
from webapp.store import Person, Store, ensure_person, utc_now
from webapp.users import User

WRONG = "Wrong name or password."
DISABLED = "This account is disabled. Ask your Atelier admin."


class AccountsService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        audit: AuditService,
        *,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], datetime] = utc_now,
        secret: bytes | None = None,
        client: str = "page",
    ):
        self._store = store
        self._settings = settings
        self._audit = audit
        self._hasher = hasher or password_hasher()
        self._clock = clock
        self._secret = secret if secret is not None else load_or_create_secret(settings.data_dir)
        self._client = client
        # What an unknown name is checked against: the same work as a real check.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    # -- admins: managing people ---------------------------------------------------------

    def add_person(
        self,
        caller: User,
        login: str,
        password: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
        role: str = "member",
    ) -> Account:
        self._audit.require_admin(caller, "person.add", "add people", self._client)
        check_login(login)
        check_password(password, login)
        display_name = clean_display_name(display_name or login)
        email = clean_email(email)
        check_role(role)
        password_hash = self._hasher.hash(password)
        with self._store.session() as session:
            taken = session.scalar(
                select(func.count()).where((Person.login == login) | (Person.id == login))
            )
            if taken:
                raise ValidationError(f"Someone already signs in as {login!r}.", field="login")
            person = Person(
                id=login,
                login=login,
                display_name=display_name,
                email=email,
                role=role,
                password_hash=password_hash,
                created=self._clock(),
            )
            session.add(person)
            session.flush()
            account = account_of(person)
        self._record(caller, "person.add", login, {"role": role})
        return account

    def people(self, caller: User) -> list[Account]:
        self._audit.require_admin(caller, "person.list", "see the people list", self._client)
        with self._store.session() as session:
            return [account_of(p) for p in session.scalars(select(Person).order_by(Person.login))]

    def set_disabled(self, caller: User, login: str, disabled: bool) -> Account:
        """Disable (signs the person out everywhere) or enable an account."""
        kind = "person.disable" if disabled else "person.enable"
        self._audit.require_admin(caller, kind, "disable or enable people", self._client)
        with self._store.session() as session:
            person = _find(session, login)
            if disabled and person.id == caller.id:
                raise ValidationError(
                    "You cannot disable your own account: ask another admin.", field="login"
                )
            if disabled and person.role == "admin":
                _keep_an_admin(session, person)
            person.disabled = disabled
            if disabled:
                person.session_version += 1
            else:
                person.failed_attempts, person.locked_until = 0, None
            account = account_of(person)
        self._record(caller, kind, account.login)
        return account

    def reset_password(self, caller: User, login: str, password: str) -> Account:
        """A new password, set by an admin: lifts any lockout and signs the person out."""
        self._audit.require_admin(caller, "person.password", "reset passwords", self._client)
        with self._store.session() as session:
            person = _find(session, login)
            check_password(password, person.login)
            person.password_hash = self._hasher.hash(password)
            person.failed_attempts, person.locked_until = 0, None
            person.session_version += 1
            account = account_of(person)
        self._record(caller, "person.password", account.login)
        return account

    def set_role(self, caller: User, login: str, role: str) -> Account:
        self._audit.require_admin(caller, "person.role", "change roles", self._client)
        check_role(role)
        with self._store.session() as session:
            person = _find(session, login)
            if person.role == "admin" and role != "admin":
                _keep_an_admin(session, person)
            person.role = role
            account = account_of(person)
        self._record(caller, "person.role", account.login, {"role": role})
        return account

    def unlock(self, caller: User, login: str) -> Account:
        """Lift a lockout before its time."""
        self._audit.require_admin(caller, "person.unlock", "unlock accounts", self._client)
        with self._store.session() as session:
            person = _find(session, login)
            person.failed_attempts, person.locked_until = 0, None
            account = account_of(person)
        self._record(caller, "person.unlock", account.login)
        return account

    # -- everyone: signing in and out ----------------------------------------------------

    def sign_in(self, login: str, password: str) -> User:
        """The person, if the name and password match; SignInFailed otherwise."""
        name = (login or "").strip().casefold()[:255]
        with self._store.session() as session:
            person = session.scalar(select(Person).where(Person.login == name))
        stored = person.password_hash if person is not None else None
        matches = self._verify(stored or self._dummy_hash, password or "")
        now = self._clock()
        if person is None or stored is None:
            self._refuse(name, "failed", WRONG)
        if person.locked_until is not None and person.locked_until > now:
            minutes = max(1, round((person.locked_until - now).total_seconds() / 60))
            self._refuse(name, "refused", _locked_message(minutes))
        if not matches:
            self._failed_attempt(person, now)
        if person.disabled:
            self._refuse(name, "refused", DISABLED)
        with self._store.session() as session:
            values = {"failed_attempts": 0, "locked_until": None}
            if self._hasher.check_needs_rehash(stored):
                values["password_hash"] = self._hasher.hash(password)
            session.execute(update(Person).where(Person.id == person.id).values(**values))
        self._audit.record(person.id, "sign_in", "ok", client=self._client)
        return user_of(person)

    def change_password(self, user: User, current: str, new: str) -> str:
        """A person's own new password; signs out their other sessions and returns a new
        session token for this one."""
        with self._store.session() as session:
            person = session.get(Person, user.id)
            if person is None or not self._verify(person.password_hash or "", current or ""):
                raise ValidationError("Your current password is not right.", field="current")
            check_password(new, person.login)
            person.password_hash = self._hasher.hash(new)
            person.session_version += 1
        self._audit.record(user, "person.password", "ok", subject=user.id, client=self._client)
        return self.issue_session(user)

    def issue_session(self, user: User) -> str:
        """A signed session token for the person (the cookie's value)."""
        with self._store.session() as session:
            person = session.get(Person, user.id)
            if person is None or person.disabled:
                raise SignInFailed(DISABLED)
            claims = SessionClaims(
                person.id, int(self._clock().timestamp()), person.session_version
            )
        return sign_session(self._secret, claims)

    def check_session(self, token: str) -> User | None:
        """The person a session token belongs to, or None if it is not valid now (tampered,
        expired, signed out everywhere, disabled; the first two are recorded). Cheap: one
        HMAC and one row read by its key."""
        if not token:
            return None  # no cookie: not signed in
        now, max_age = self._clock().timestamp(), self._settings.session_hours * 3600
        try:
            claims = read_session(self._secret, token, now, max_age)
        except InvalidSession as bad:  # recorded: the page then clears the cookie
            who = bad.person_id or "unknown"
            self._audit.record(who, "session", "refused", client=self._client, detail=bad.reason)
            return None
        with self._store.engine.connect() as connection:
            row = connection.execute(
                select(
                    Person.display_name, Person.role, Person.disabled, Person.session_version
                ).where(Person.id == claims.person_id)
            ).first()
        if row is None or row.disabled or row.session_version != claims.version:
            return None
        return User(claims.person_id, row.display_name, is_admin=row.role == "admin")

    def sign_out_everywhere(self, user: User) -> None:
        """Every session token of this person stops working."""
        with self._store.session() as session:
            session.execute(
                update(Person)
                .where(Person.id == user.id)
                .values(session_version=Person.session_version + 1)
            )
        self._audit.record(user, "sign_out", "ok", subject=user.id, client=self._client)

    def ensure_operator(self, operator: User) -> User:
        """The server's operator (`cli:<os user>`, an admin at the terminal) as a person, so
        that what the command line makes is theirs in My work and the audit log. The row is
        disabled and has no password: nobody signs in as the operator."""
        if not operator.id.startswith("cli:") or not operator.is_admin:
            raise ValueError("only the terminal's operator (cli:<name>) is kept this way")
        with self._store.session() as session:
            person = ensure_person(session, operator.id, operator.display_name, "member")
            person.disabled, person.password_hash = True, None
        return operator

    # -- the company's sign-on -----------------------------------------------------------

    def user_for_identity(
        self, login: str, display_name: str | None = None, email: str | None = None
    ) -> User:
        """The person the company's sign-on (OIDC) or proxy vouches for: made at their first
        sign-in; an admin when their e-mail is in `admin_emails`. Call it once per browser
        session (each call is an audited sign-in)."""
        name = (login or "").strip().casefold()
        if not name or len(name) > 254 or not name.isprintable() or " " in name:
            raise SignInFailed("The company's sign-on sent no usable name.")
        email = clean_email(email or (name if "@" in name else None))
        admin = email is not None and email in self._settings.admin_emails
        with self._store.session() as session:
            person = session.scalar(select(Person).where(Person.login == name))
            made = person is None
            if person is None:
                person = Person(
                    id=_free_id(session, name),
                    login=name,
                    display_name=clean_display_name(display_name or name),
                    email=email,
                    role="admin" if admin else "member",
                    created=self._clock(),
                )
                session.add(person)
                session.flush()
            elif admin and person.role != "admin":
                person.role = "admin"
            user = user_of(person)
        if made:
            self._record(user, "person.add", name, {"source": "sign-on"})
        if person.disabled:
            self._refuse(name, "refused", DISABLED)
        self._audit.record(user, "sign_in", "ok", client=self._client)
        return user

    def sign_in_proxy(self, headers: Mapping[str, str], client_address: str | None) -> User | None:
        """The person the trusted reverse proxy names, or None if it names nobody. A header
        from anywhere else is refused (Forbidden) and recorded."""
        try:
            name = user_from_proxy(headers, client_address, self._settings)
        except Forbidden as refused:
            who = f"address {client_address or 'unknown'}"
            self._audit.record(
                who, "sign_in", "refused", client=self._client, detail=refused.message
            )
            raise
        return None if name is None else self.user_for_identity(name)

    # -- the steps' details --------------------------------------------------------------

    def _verify(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _failed_attempt(self, person: Person, now: datetime) -> NoReturn:
        """Count a wrong password; the Nth in a row locks the account for a while."""
        with self._store.session() as session:
            session.execute(
                update(Person)
                .where(Person.id == person.id)
                .values(failed_attempts=Person.failed_attempts + 1)
            )
            failed = session.scalar(select(Person.failed_attempts).where(Person.id == person.id))
            if failed < self._settings.lockout_attempts:
                locked = None
            else:
                locked = now + timedelta(minutes=self._settings.lockout_minutes)
                session.execute(
                    update(Person)
                    .where(Person.id == person.id)
                    .values(failed_attempts=0, locked_until=locked)
                )
        if locked is None:
            self._refuse(person.login, "failed", WRONG)
        self._refuse(person.login, "refused", _locked_message(self._settings.lockout_minutes))

    def _refuse(self, name: str, outcome: str, message: str) -> NoReturn:
        self._audit.record(name, "sign_in", outcome, client=self._client, detail=message)
        raise SignInFailed(message, field="password")

    def _record(self, caller: User | str, kind: str, subject: str, parameters=None) -> None:
        self._audit.record(
            caller, kind, "ok", subject=subject, parameters=parameters, client=self._client
        )


def _locked_message(minutes: int) -> str:
    return (
        f"Too many wrong passwords: this account is locked for {minutes} more minute"
        f"{'s' * (minutes != 1)}. Try again then, or ask your Atelier admin to unlock it."
    )


def _find(session: Session, login: str) -> Person:
    person = session.scalar(select(Person).where(Person.login == (login or "").casefold()))
    if person is None:
        raise NotFound(f"No one signs in as {login!r}.", field="login")
    return person


def _keep_an_admin(session: Session, leaving: Person) -> None:
    others = session.scalar(
        select(func.count()).where(
            Person.role == "admin", Person.disabled.is_(False), Person.id != leaving.id
        )
    )
    if not others:
        raise ValidationError(
            f"{leaving.login} is the last admin: make someone else an admin first.",
            field="login",
        )


def _free_id(session: Session, name: str) -> str:
    """`name`, or `name` with a number if that id is taken by someone else."""
    candidate, number = name, 1
    while session.get(Person, candidate) is not None:
        number += 1
        candidate = f"{name}~{number}"
    return candidate
