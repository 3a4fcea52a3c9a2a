"""The pieces of signing in that need no database: session tokens, the secret that signs
them, password hashing, and the trusted reverse-proxy header.

Session tokens are signed with the standard library's `hmac` (SHA-256) rather than
`itsdangerous`: the token carries one thing itsdangerous has no slot for (the person's
session version, which revokes every session at once), the format stays ours and short,
and checking one is two dictionary-free string splits and one HMAC (microseconds).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher

from webapp.errors import Forbidden, SettingsError
from webapp.settings import Settings

log = logging.getLogger(__name__)
TOKEN_PREFIX = "v1"
MAX_TOKEN_CHARS = 1024
CLOCK_SKEW_SECONDS = 60  # a token "issued" further in the future than this is refused
SECRET_FILE = "session-secret"
SECRET_BYTES = 32
MAX_PROXY_NAME = 254


# -- session tokens ------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionClaims:
    person_id: str
    issued: int  # seconds since the epoch
    version: int  # the person's session version when it was issued


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest())


def sign_session(secret: bytes, claims: SessionClaims) -> str:
    """`v1.<id>.<issued>.<version>.<signature>`: URL- and cookie-safe."""
    payload = f"{TOKEN_PREFIX}.{_b64(claims.person_id.encode())}.{claims.issued}.{claims.version}"
    return f"{payload}.{_signature(secret, payload)}"


class InvalidSession(Exception):
    """A session token that is not (or no longer) good: `reason` says why, for the audit
    log; `person_id` is known only when the signature was right (an expired token)."""

    def __init__(self, reason: str, person_id: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.person_id = person_id


def read_session(secret: bytes, token: str, now: float, max_age: float) -> SessionClaims:
    """The claims of a token this server signed that has not expired. Anything else
    (tampered, truncated, from another server, expired, or not a token at all) raises
    InvalidSession."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise InvalidSession("not a session token")
    payload, _, signature = token.rpartition(".")
    if not hmac.compare_digest(_signature(secret, payload), signature):
        raise InvalidSession("a session token with a wrong signature (tampered or not ours)")
    parts = payload.split(".")
    try:
        if len(parts) != 4 or parts[0] != TOKEN_PREFIX:
            raise ValueError(parts[0])
        person_id = _unb64(parts[1]).decode()
        issued, version = int(parts[2]), int(parts[3])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidSession("a signed session token of an unknown form") from None
    if issued > now + CLOCK_SKEW_SECONDS:
        raise InvalidSession("a session token issued in the future", person_id)
    if issued <= now - max_age:
        raise InvalidSession("an expired session token", person_id)
    return SessionClaims(person_id, issued, version)


def load_or_create_secret(data_dir: Path) -> bytes:
    """The key that signs session tokens: made once, kept in the data dir, readable only by
    the server's user (0600). Replicas sharing the data dir share it; deleting the file
    signs everyone out."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=".", dir=data_dir)  # made with 0600
        try:
            with os.fdopen(handle, "w") as file:
                file.write(secrets.token_hex(SECRET_BYTES))
            os.link(staging, path)  # fails if another process made it first: keep theirs
        except FileExistsError:
            pass
        finally:
            os.unlink(staging)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o); made it 0600", path, mode)
        path.chmod(0o600)
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except ValueError:
        secret = b""
    if len(secret) < SECRET_BYTES:
        raise SettingsError(
            f"{path} is damaged (not {SECRET_BYTES} random bytes in hex). Delete it: a new one "
            "is made at the next start, and everyone signs in again."
        )
    return secret


# -- passwords -----------------------------------------------------------------------------


def password_hasher() -> PasswordHasher:
    """argon2id with argon2-cffi's defaults (RFC 9106's low-memory profile: 64 MiB, 3
    passes), which it raises as hardware grows; older hashes are upgraded at sign-in."""
    return PasswordHasher()


# -- the trusted reverse proxy -------------------------------------------------------------


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address((text or "").strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped  # ::ffff:10.0.0.5 is 10.0.0.5
    return address


def is_trusted_proxy(client_address: str | None, settings: Settings) -> bool:
    address = _address(client_address)
    return address is not None and any(
        address in ipaddress.ip_network(network) for network in settings.trusted_proxies
    )


def user_from_proxy(
    headers: Mapping[str, str], client_address: str | None, settings: Settings
) -> str | None:
    """The name the reverse proxy vouches for, from `settings.proxy_header`, believed only
    when the request comes from an address in `settings.trusted_proxies`.

    None: no name (the proxy sent none, or the request did not come through it and carries
    none). Forbidden: the header came from anywhere else (a forgery), or is not a name.
    """
    wanted = settings.proxy_header.lower()
    values = [value for key, value in headers.items() if key.lower() == wanted]
    if not values:
        return None
    if not is_trusted_proxy(client_address, settings):
        raise Forbidden(
            f"The {settings.proxy_header} header is accepted only from the company's sign-in "
            "proxy, and this request did not come through it.",
            field="proxy_header",
        )
    name = values[0].strip()
    if (
        len(values) > 1
        or not name
        or len(name) > MAX_PROXY_NAME
        or not name.isprintable()
        or any(ch.isspace() or ch == "," for ch in name)
    ):
        raise Forbidden(
            f"The sign-in proxy sent a {settings.proxy_header} header that is not one name.",
            field="proxy_header",
        )
    return name.casefold()


# -- the company's single sign-on (OIDC) ---------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """Who the company's sign-on says a person is: the name they sign on with (their e-mail
    when the provider vouches for it, else its subject id), how to show them, their e-mail."""

    login: str
    display_name: str | None
    email: str | None


def identity_from_claims(claims: Mapping[str, object]) -> Identity | None:
    """The identity in an OIDC provider's claims (`st.user`), or None without a usable one.

    An e-mail the provider marks unverified (`email_verified: false`) is not used: it could
    name someone else, and an e-mail in `admin_emails` makes an admin."""
    email = claims.get("email")
    verified = claims.get("email_verified", True) not in (False, "false", "False")
    email = email.strip().lower() if isinstance(email, str) and email.strip() and verified else None
    subject = claims.get("sub")
    subject = subject.strip() if isinstance(subject, str) and subject.strip() else None
    login = email or subject
    if login is None:
        return None
    name = claims.get("name") or claims.get("preferred_username")
    name = " ".join(name.split())[:100] if isinstance(name, str) else ""
    shown = name if name and name.isprintable() else None
    return Identity(login=login, display_name=shown, email=email)
