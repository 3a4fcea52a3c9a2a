"""A person as the services show them (`Account`, `User`), and what a sign-in name,
password, role, display name and e-mail may be, with the message a person sees when theirs
is not."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from webapp.errors import ValidationError
from webapp.settings import EMAIL
from webapp.store import Person
from webapp.store.tables import ROLES
from webapp.users import User

LOGIN = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
LOGIN_RULE = (
    "A sign-in name is 2 to 32 characters: lower-case letters a-z, digits, '.', '_' or '-', "
    "starting with a letter (e.g. ada.lovelace)."
)
MIN_PASSWORD, MAX_PASSWORD = 8, 1024


def check_password(password: str, login: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise ValidationError(
            f"A password needs at least {MIN_PASSWORD} characters.", field="password"
        )
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"A password has at most {MAX_PASSWORD} characters.", "password")
    if not password.strip() or password.casefold() == login.casefold():
        raise ValidationError(
            "Choose a password that is not blank and not the sign-in name.", field="password"
        )


def check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationError(f"A role is one of {', '.join(ROLES)}.", field="role")


def clean_display_name(text: str) -> str:
    name = (text or "").strip()
    if not 1 <= len(name) <= 100 or not name.isprintable():
        raise ValidationError(
            "A display name is 1 to 100 characters on one line.", field="display_name"
        )
    return name


def clean_email(text: str | None) -> str | None:
    email = (text or "").strip().lower()
    if not email:
        return None
    if len(email) > 254 or not EMAIL.match(email):
        raise ValidationError(f"{text!r} is not an e-mail address.", field="email")
    return email


def check_login(login: str) -> None:
    if not isinstance(login, str) or not LOGIN.match(login):
        raise ValidationError(LOGIN_RULE, field="login")


@dataclass(frozen=True)
class Account:
    """A person as admins see them (never their password hash)."""

    id: str
    login: str
    display_name: str
    email: str | None
    role: str
    disabled: bool
    has_password: bool
    failed_attempts: int
    locked_until: datetime | None
    created: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def account_of(person: Person) -> Account:
    return Account(
        id=person.id,
        login=person.login,
        display_name=person.display_name,
        email=person.email,
        role=person.role,
        disabled=person.disabled,
        has_password=person.password_hash is not None,
        failed_attempts=person.failed_attempts,
        locked_until=person.locked_until,
        created=person.created,
    )


def user_of(person: Person) -> User:
    return User(person.id, person.display_name, is_admin=person.role == "admin")
