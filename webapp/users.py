"""Who is asking. Every service call and job carries a `User`: the person signed in
(webapp/ui/session.py), the terminal's operator, or in single-user mode the local user.
"""

from __future__ import annotations

from dataclasses import dataclass

from webapp.errors import Forbidden
from webapp.settings import Settings


@dataclass(frozen=True)
class User:
    id: str
    display_name: str
    is_admin: bool = False


def local_user(settings: Settings) -> User:
    """The single-user-mode user: the admin, unless the settings turn that off."""
    return User(id="local", display_name="Local user", is_admin=settings.local_user_is_admin)


def require_admin(user: User, action: str) -> None:
    if not user.is_admin:
        raise Forbidden(f"Only an admin can {action}. Ask your Atelier admin.")
